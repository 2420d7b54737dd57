package procrunner

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/pyjson"
)

// tail keeps at most max bytes: all of the output while it fits, then only its end (a ring).
// Memory grows with the output up to max, never beyond.
type tail struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	start     int // ring mode: index of the oldest byte
	total     int64
	truncated bool
	// digest, when set, is told about the whole stream once it no longer fits (see digester).
	digest *digester
}

func newTail(max int, withDigest bool) *tail {
	t := &tail{max: max}
	if withDigest {
		t.digest = &digester{}
	}
	return t
}

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(n)
	switch {
	case !t.truncated && len(t.buf)+n <= t.max:
		t.buf = append(t.buf, p...)
	case !t.truncated:
		// The output no longer fits: from here on only its last max bytes are kept, and the
		// digest of the whole stream is computed as it passes (starting with what is held).
		if t.digest != nil {
			t.digest.start(t.buf)
			t.digest.write(p)
		}
		ring := make([]byte, t.max)
		if n >= t.max {
			copy(ring, p[n-t.max:])
		} else {
			keep := t.max - n
			copy(ring, t.buf[len(t.buf)-keep:])
			copy(ring[keep:], p)
		}
		t.buf, t.start, t.truncated = ring, 0, true
	default:
		if t.digest != nil {
			t.digest.write(p)
		}
		if n >= t.max {
			copy(t.buf, p[n-t.max:])
			t.start = 0
			break
		}
		// overwrite the oldest bytes, wrapping around
		k := copy(t.buf[t.start:], p)
		copy(t.buf, p[k:])
		t.start = (t.start + n) % t.max
	}
	return n, nil
}

// bytes returns the kept output in order, and whether its beginning was dropped.
func (t *tail) bytes() ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]byte, 0, len(t.buf))
	out = append(out, t.buf[t.start:]...)
	out = append(out, t.buf[:t.start]...)
	return out, t.truncated
}

// last returns at most n bytes from the end.
func (t *tail) last(n int) []byte {
	b, _ := t.bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return b
}

// wholeDigest is json.dumps(output as text) over the whole stream, when it was computed.
func (t *tail) wholeDigest() *lifecycle.Digest {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.digest == nil || !t.digest.active {
		return nil
	}
	return t.digest.finish()
}

// digester computes the size and SHA-256 of Python's json.dumps of the output decoded as
// UTF-8 (django-ray's result for a run whose last line is not JSON) without keeping it.
type digester struct {
	active bool
	h      hash.Hash
	n      int64
	w      *pyjson.StringWriter
	done   *lifecycle.Digest
}

func (d *digester) Write(p []byte) (int, error) {
	d.h.Write(p)
	d.n += int64(len(p))
	return len(p), nil
}

func (d *digester) start(head []byte) {
	d.active = true
	d.h = sha256.New()
	d.w = pyjson.NewStringWriter(d)
	d.write(head)
}

func (d *digester) write(p []byte) { _, _ = d.w.Write(p) }

func (d *digester) finish() *lifecycle.Digest {
	if d.done == nil {
		_ = d.w.Close()
		d.done = &lifecycle.Digest{SHA256: hex.EncodeToString(d.h.Sum(nil)), Bytes: d.n}
	}
	return d.done
}
