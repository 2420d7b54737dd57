package recovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// DefaultFetchLimit is how much of an s3:// or gs:// result TaskDetail reads unless told
// otherwise: enough to see what a result is, without pulling 100 MiB to a terminal.
const DefaultFetchLimit = 64 << 10

// MaxFetchLimit is the most TaskDetail reads of one result (MAX_RESULT_SIZE_BYTES' maximum).
const MaxFetchLimit = 100 << 20

// ObjectData is an object as an ObjectReader read it: at most the limit asked for.
type ObjectData struct {
	Data        []byte
	Size        int64 // of the whole object
	ContentType string
}

// ObjectReader reads stored results from S3 and GCS (rayctl wires resultstore's clients,
// with the workers' region and endpoint settings and this machine's credentials).
type ObjectReader interface {
	// ReadObject reads at most limit bytes of the object; scheme is "s3" or "gs". Its errors
	// say why, without secrets.
	ReadObject(ctx context.Context, scheme, bucket, key string, limit int64) (ObjectData, error)
}

// ResultObject is a stored result as rayctl read it back.
type ResultObject struct {
	Size        int64  `json:"size"` // of the whole object
	ContentType string `json:"content_type"`
	// Content is the first bytes read, as text: invalid UTF-8 replaced, and control
	// characters other than newline and tab shown as \xNN / \u00NN escapes (it is data from a
	// bucket, shown on terminals).
	Content   string `json:"content"`
	Fetched   int64  `json:"fetched_bytes"`
	Truncated bool   `json:"truncated"` // Content is only the start of the object
	// SizeMatches: the object's size is the reference's ?bytes=; DigestMatches (only when
	// read whole): its SHA-256 is the digest its key is named after.
	SizeMatches   *bool `json:"size_matches,omitempty"`
	DigestMatches *bool `json:"digest_matches,omitempty"`
}

// fetchObject reads ref's object into ref.Object, or says why not in ref.FetchError.
func fetchObject(ctx context.Context, rd ObjectReader, ref *Reference, limit int64) {
	if limit <= 0 {
		limit = DefaultFetchLimit
	}
	o, err := rd.ReadObject(ctx, ref.Scheme, ref.Bucket, ref.Key, limit)
	if err != nil {
		ref.FetchError = err.Error()
		return
	}
	ro := &ResultObject{Size: o.Size, ContentType: o.ContentType, Content: Visible(string(o.Data)), Fetched: int64(len(o.Data)),
		Truncated: int64(len(o.Data)) < o.Size}
	if ref.Bytes != nil {
		ok := o.Size == *ref.Bytes
		ro.SizeMatches = &ok
	}
	// django-ray's keys end in <sha256 hex>.json: a whole object can be checked against it
	if name := path.Base(ref.Key); !ro.Truncated && len(name) == 64+len(".json") && strings.HasSuffix(name, ".json") {
		sum := sha256.Sum256(o.Data)
		ok := hex.EncodeToString(sum[:]) == strings.ToLower(strings.TrimSuffix(name, ".json"))
		ro.DigestMatches = &ok
	}
	ref.Object = ro
}

// Visible makes text safe to print on a terminal: invalid UTF-8 becomes U+FFFD, and C0 and C1
// control characters and DEL (except newline and tab) become visible escapes, so a stored
// value cannot move the cursor, retitle the window or hide what follows.
func Visible(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !isControl(r):
			b.WriteRune(r)
		case r < utf8.RuneSelf:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

func isControl(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f)
}
