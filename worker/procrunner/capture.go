package procrunner

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/pyjson"
)

// maxChunk is the largest piece a Capture keeps its bytes in (the size of one pipe read).
const maxChunk = 32 << 10

// Capture captures a stream (a task's stdout or stderr) with bounded memory: all of it while it
// fits in max bytes, then only its last max bytes. It costs what it keeps and little more:
// the bytes live in chunks of at most 32 KiB (max/16 for small bounds) that are filled in
// place and recycled when they fall out of the window, so a task printing gigabytes holds
// at most max + two chunks (32 MiB + 64 KiB for stdout), and allocates no more than that
// over its whole run. Nothing is
// ever copied into one contiguous buffer unless a caller asks for it (Bytes, Last).
//
// With a whole-stream digest (NewCapture(max, true)), once the output no longer fits, the size
// and SHA-256 of Python's json.dumps of the entire stream (decoded as UTF-8) are computed as
// it passes: django-ray's result for a run whose last line is not an envelope.
//
// It is the process runner's, shared with the pool runner. A Capture is safe for one writer
// and concurrent readers. Fill a lifecycle.RunOutput from it
// with Parts and Digest, without copying:
//
//	run.StdoutParts, run.StdoutTruncated = t.Parts()
//	run.StdoutDigest = t.Digest()
type Capture struct {
	mu        sync.Mutex
	max       int
	chunk     int      // chunk capacity
	chunks    [][]byte // kept bytes in order: chunks[0][head:], chunks[1], ..., the last one partly filled
	base      [][]byte // the array chunks is a window of, from its start (see push)
	head      int      // index of the oldest kept byte in chunks[0]
	size      int      // kept bytes
	total     int64    // bytes written
	truncated bool
	spare     []byte // a chunk that fell out of the window, reused for the next one
	// digest, when set, is told about the whole stream once it no longer fits (see digester).
	digest *digester
}

// NewCapture returns a Capture keeping at most max bytes (at least 1). wholeDigest computes the
// whole stream's json.dumps digest once the output no longer fits.
func NewCapture(max int, wholeDigest bool) *Capture {
	max = maxInt(max, 1)
	t := &Capture{max: max, chunk: minInt(maxChunk, maxInt(1, max/16))}
	if wholeDigest {
		t.digest = &digester{}
	}
	return t
}

// Write implements io.Writer. It never fails.
func (t *Capture) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(n)
	if !t.truncated && t.size+n > t.max {
		// The output no longer fits: from here on only its last max bytes are kept, and the
		// digest of the whole stream is computed as it passes (starting with what is held).
		t.truncated = true
		if t.digest != nil {
			t.digest.start()
			for _, c := range t.partsLocked() {
				t.digest.write(c)
			}
		}
	}
	if t.truncated && t.digest != nil {
		t.digest.write(p)
	}
	if n > t.max { // only its end can be kept
		p = p[n-t.max:]
	}
	for len(p) > 0 {
		last := len(t.chunks) - 1
		if last < 0 || len(t.chunks[last]) == t.chunk {
			// Make room first: the bytes this write pushes out of the window free the chunk
			// the next ones go into.
			t.dropTo(t.max - min(len(p), t.chunk))
			t.push(t.newChunk(len(p)))
			last = len(t.chunks) - 1
		}
		c := t.chunks[last]
		if len(c) == cap(c) { // a small first chunk that is full: it grows, up to t.chunk
			grown := make([]byte, len(c), minInt(t.chunk, maxInt(2*cap(c), len(c)+len(p))))
			copy(grown, c)
			c = grown
		}
		k := copy(c[len(c):cap(c)], p)
		t.chunks[last] = c[:len(c)+k]
		p = p[k:]
		t.size += k
	}
	t.dropTo(t.max)
	return n, nil
}

// newChunk returns an empty chunk: the spare one, or a new one. The very first chunk starts
// small, so a task that prints a line costs a line.
func (t *Capture) newChunk(need int) []byte {
	if t.spare != nil {
		c := t.spare[:0]
		t.spare = nil
		return c
	}
	if len(t.chunks) == 0 {
		return make([]byte, 0, minInt(t.chunk, maxInt(need, 512)))
	}
	return make([]byte, 0, t.chunk)
}

// push appends a chunk to the window. The window slides along its array as chunks fall out
// at the front; at the array's end it moves back to the start instead of growing, so a
// steady stream allocates nothing for its bookkeeping either.
func (t *Capture) push(c []byte) {
	if len(t.chunks) == cap(t.chunks) && len(t.chunks) < len(t.base) {
		n := copy(t.base, t.chunks)
		clear(t.base[n:])
		t.chunks = t.base[:n]
	}
	t.chunks = append(t.chunks, c)
	if cap(t.chunks) > len(t.base) { // grown into a new array
		t.base = t.chunks[:cap(t.chunks)]
	}
}

// dropTo lets go of the oldest bytes until at most limit are kept, recycling whole chunks.
func (t *Capture) dropTo(limit int) {
	limit = max(limit, 0)
	for t.size > limit {
		first := t.chunks[0]
		drop := minInt(t.size-limit, len(first)-t.head)
		t.head += drop
		t.size -= drop
		if t.head == len(first) {
			if cap(first) == t.chunk {
				t.spare = first
			}
			t.chunks[0] = nil
			t.chunks = t.chunks[1:]
			t.head = 0
		}
	}
}

// partsLocked is the kept bytes in order, as slices of the chunks.
func (t *Capture) partsLocked() [][]byte {
	out := make([][]byte, 0, len(t.chunks))
	for i, c := range t.chunks {
		if i == 0 {
			c = c[t.head:]
		}
		if len(c) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// Parts returns the kept bytes in order as slices of the Capture's own chunks (no copy), and
// whether the beginning of the stream was dropped. The slices stay valid until the next
// Write: call it once the stream has ended.
func (t *Capture) Parts() ([][]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.partsLocked(), t.truncated
}

// Bytes returns a copy of the kept bytes in order, and whether the beginning was dropped.
func (t *Capture) Bytes() ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]byte, 0, t.size)
	for _, c := range t.partsLocked() {
		out = append(out, c...)
	}
	return out, t.truncated
}

// Last returns a copy of at most n bytes from the end of what is kept.
func (t *Capture) Last(n int) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return lifecycle.Suffix(t.partsLocked(), n)
}

// Len returns how many bytes are kept.
func (t *Capture) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.size
}

// Total returns how many bytes were written.
func (t *Capture) Total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// Digest is json.dumps(output as text) over the whole stream, when it was computed
// (the Capture has a digest and the output did not fit).
func (t *Capture) Digest() *lifecycle.Digest {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.digest == nil || !t.digest.active {
		return nil
	}
	return t.digest.finish()
}

// held is the capacity of every chunk the Capture holds (for tests of its memory bound).
func (t *Capture) held() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := cap(t.spare)
	for _, c := range t.chunks {
		n += cap(c)
	}
	return n
}

func minInt(a, b int) int { return min(a, b) }
func maxInt(a, b int) int { return max(a, b) }

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

func (d *digester) start() {
	d.active = true
	d.h = sha256.New()
	d.w = pyjson.NewStringWriter(d)
}

func (d *digester) write(p []byte) { _, _ = d.w.Write(p) }

func (d *digester) finish() *lifecycle.Digest {
	if d.done == nil {
		_ = d.w.Close()
		d.done = &lifecycle.Digest{SHA256: hex.EncodeToString(d.h.Sum(nil)), Bytes: d.n}
	}
	return d.done
}
