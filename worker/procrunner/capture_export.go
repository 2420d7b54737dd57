package procrunner

import "github.com/rayctl/rayctl/lifecycle"

// Capture is the process runner's bounded output capture, for other runners that capture a
// task's output the same way (the pool runner): it keeps at most max bytes from the end of
// the stream and, when asked for, the digest of the whole stream (django-ray's result for a
// run whose last line is not JSON).
type Capture struct{ t *tail }

// NewCapture returns a capture of at most max bytes.
func NewCapture(max int, withDigest bool) *Capture { return &Capture{t: newTail(max, withDigest)} }

// Write implements io.Writer.
func (c *Capture) Write(p []byte) (int, error) { return c.t.Write(p) }

// Bytes returns the kept output in order, and whether its beginning was dropped.
func (c *Capture) Bytes() ([]byte, bool) { return c.t.bytes() }

// Last returns at most n bytes from the end.
func (c *Capture) Last(n int) []byte { return c.t.last(n) }

// Digest is the digest of the whole stream, when the capture was truncated and asked for one.
func (c *Capture) Digest() *lifecycle.Digest { return c.t.wholeDigest() }
