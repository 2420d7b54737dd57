package lifecycle

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/store"
)

// DefaultMaxInline is MAX_RESULT_SIZE_BYTES's default: 1 MiB.
const DefaultMaxInline = settings.DefaultMaxResultSizeBytes

// Backend stores result text too large to keep inline and returns its reference.
type Backend interface {
	// Name is the RESULT_STORAGE_BACKEND value: "digest", "filesystem", "s3", "gcs".
	Name() string
	// Store persists text (Python json.dumps of the value) and returns the reference that
	// goes into result_reference. ctx bounds a backend that writes over the network
	// (resultstore's s3 and gcs).
	Store(ctx context.Context, text []byte) (string, error)
}

// DigestReference is django-ray's digest-only reference: oversize://sha256/<hex>?bytes=<n>.
func DigestReference(sha256hex string, n int64) string {
	return fmt.Sprintf("oversize://sha256/%s?bytes=%d", sha256hex, n)
}

// FilesystemReference is django-ray's filesystem reference:
// resultfs://sha256/<hex>?rel=<aa>/<bb>/<hex>.json&bytes=<n>.
func FilesystemReference(sha256hex string, n int64) string {
	return fmt.Sprintf("resultfs://sha256/%s?rel=%s&bytes=%d", sha256hex, relPath(sha256hex), n)
}

func relPath(hexDigest string) string {
	return hexDigest[0:2] + "/" + hexDigest[2:4] + "/" + hexDigest + ".json"
}

func digestOf(text []byte) string {
	sum := sha256.Sum256(text)
	return hex.EncodeToString(sum[:])
}

// StreamBackend is a Backend that can also store text it is handed as a writer function,
// with its digest and size known beforehand, without the text being held in memory.
type StreamBackend interface {
	Backend
	// StoreStream persists the n bytes write produces, whose SHA-256 is sha256hex, and
	// returns the reference.
	StoreStream(ctx context.Context, sha256hex string, n int64, write func(io.Writer) error) (string, error)
}

// DigestBackend stores nothing and returns the digest reference (RESULT_STORAGE_BACKEND
// "digest", the default).
type DigestBackend struct{}

// Name implements Backend.
func (DigestBackend) Name() string { return "digest" }

// Store implements Backend.
func (DigestBackend) Store(_ context.Context, text []byte) (string, error) {
	return DigestReference(digestOf(text), int64(len(text))), nil
}

// FilesystemBackend writes the text to <Root>/<aa>/<bb>/<hex>.json (RESULT_STORAGE_BACKEND
// "filesystem" with RESULT_STORAGE_FILESYSTEM_PATH), as django-ray does: a file that already
// exists is the same content and is kept. Unlike django-ray it writes a temporary file and
// renames it, so a reader never sees a partial payload.
type FilesystemBackend struct{ Root string }

// Name implements Backend.
func (FilesystemBackend) Name() string { return "filesystem" }

// Store implements Backend.
func (b FilesystemBackend) Store(_ context.Context, text []byte) (string, error) {
	return b.put(digestOf(text), int64(len(text)), func(f *os.File) error {
		_, err := f.Write(text)
		return err
	})
}

// StoreStream implements StreamBackend: the text is written straight into the temporary
// file, checked against its digest and size, and renamed into place.
func (b FilesystemBackend) StoreStream(_ context.Context, sha256hex string, n int64, write func(io.Writer) error) (string, error) {
	return b.put(sha256hex, n, func(f *os.File) error {
		h := sha256.New()
		bw := bufio.NewWriterSize(io.MultiWriter(f, h), 64<<10)
		c := &countingWriter{w: bw}
		err := write(c)
		if err == nil {
			err = bw.Flush()
		}
		if err == nil && (c.n != n || hex.EncodeToString(h.Sum(nil)) != sha256hex) {
			err = fmt.Errorf("the result changed while it was written (%d bytes, want %d)", c.n, n)
		}
		return err
	})
}

// put stores the text of digest sha256hex and n bytes: write fills a new temporary file,
// which is renamed into place. A file already there is that text (its name is the digest)
// and is kept.
func (b FilesystemBackend) put(sha256hex string, n int64, write func(*os.File) error) (string, error) {
	if b.Root == "" {
		return "", errors.New("result storage path is not set")
	}
	full := filepath.Join(b.Root, filepath.FromSlash(relPath(sha256hex)))
	ref := FilesystemReference(sha256hex, n)
	if _, err := os.Stat(full); err == nil {
		return ref, nil
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o777); err != nil {
		return "", fmt.Errorf("failed to persist result to filesystem: %w", err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := full + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return "", fmt.Errorf("failed to persist result to filesystem: %w", err)
	}
	werr := write(f)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("failed to persist result to filesystem: %w", err)
	}
	if err := os.Rename(tmp, full); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("failed to persist result to filesystem: %w", err)
	}
	return ref, nil
}

// Load reads the text a resultfs:// reference points to under root (for tests and tools).
func (b FilesystemBackend) Load(sha256hex string) ([]byte, error) {
	if len(sha256hex) != 64 {
		return nil, fs.ErrInvalid
	}
	return os.ReadFile(filepath.Join(b.Root, filepath.FromSlash(relPath(sha256hex))))
}

// Results decides where a successful result goes.
type Results struct {
	MaxInline int64   // MAX_RESULT_SIZE_BYTES: the largest text kept inline in result_data
	Backend   Backend // for larger results; nil means DigestBackend
}

// Stored is where a result went.
type Stored struct {
	Row       store.Result // the result_data / result_reference to write
	Inline    bool
	Reference string
	Bytes     int64
	// Fallback is the storage error after which the digest reference was used instead.
	Fallback error
}

// Inline reports whether Place keeps r inline in result_data.
func (rs Results) Inline(r Result) bool {
	return (r.JSON != nil || r.Output != nil) && r.Size() <= rs.MaxInline
}

// Place returns the columns for r: result_data when it fits MaxInline (result_reference
// then NULL, clearing a stale one), else a reference from the backend, falling back to the
// digest reference on a storage error (the task still succeeds, as in django-ray). A result
// kept as captured Output is encoded here, only as far as needed: into result_data when it
// fits, streamed into a StreamBackend, or not at all for the digest backend.
func (rs Results) Place(ctx context.Context, r Result) Stored {
	size := r.Size()
	if rs.Inline(r) {
		data := string(r.JSON)
		if r.JSON == nil {
			var b strings.Builder
			_ = WriteOutputJSON(&b, r.Output)
			data = b.String()
		}
		return Stored{Row: store.Result{Data: &data}, Inline: true, Bytes: size}
	}
	backend := rs.Backend
	if backend == nil {
		backend = DigestBackend{}
	}
	var ref string
	var fallback error
	if r.JSON == nil && r.Output != nil {
		var err error
		switch b := backend.(type) {
		case DigestBackend:
			ref = DigestReference(r.SHA256, r.Bytes)
		case StreamBackend:
			ref, err = b.StoreStream(ctx, r.SHA256, r.Bytes, func(w io.Writer) error { return WriteOutputJSON(w, r.Output) })
		default:
			var buf bytes.Buffer
			_ = WriteOutputJSON(&buf, r.Output)
			ref, err = backend.Store(ctx, buf.Bytes())
		}
		if err != nil {
			fallback = err
			ref = DigestReference(r.SHA256, r.Bytes)
		}
	} else if r.JSON == nil {
		// Only the digest of the text is known (it was too large to keep): a digest
		// reference is the only one that can describe it.
		ref = DigestReference(r.SHA256, r.Bytes)
		if backend.Name() != "digest" {
			fallback = fmt.Errorf("the %d-byte result was not kept whole, so the %s backend cannot store it", r.Bytes, backend.Name())
		}
	} else {
		var err error
		ref, err = backend.Store(ctx, r.JSON)
		if err != nil {
			fallback = err
			ref = DigestReference(digestOf(r.JSON), size)
		}
	}
	return Stored{Row: store.Result{Reference: &ref}, Reference: ref, Bytes: size, Fallback: fallback}
}
