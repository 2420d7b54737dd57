package rayjobs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// GET /api/jobs/{id}/logs answers {"logs": "<the whole driver log>"}: one JSON string that can
// be hundreds of megabytes. decodeLogsTail streams it and keeps only the last limit bytes of
// the decoded text, so memory stays O(limit) whatever Ray sends, and the last line (where
// django-ray's entrypoint prints its result) survives.

var errLogsSyntax = errors.New("logs body is not the JSON object Ray sends")

// tailBuffer keeps the last limit bytes written to it, in O(limit) memory.
type tailBuffer struct {
	buf   []byte
	limit int
	total int64
}

func (t *tailBuffer) Write(p []byte) {
	t.total += int64(len(p))
	if len(p) >= t.limit {
		t.buf = append(t.buf[:0], p[len(p)-t.limit:]...)
		return
	}
	if len(t.buf)+len(p) > 2*t.limit {
		keep := t.limit - len(p)
		copy(t.buf, t.buf[len(t.buf)-keep:])
		t.buf = t.buf[:keep]
	}
	t.buf = append(t.buf, p...)
}

// result returns the kept tail as Logs. A tail that lost its beginning starts after its first
// line break (so its first line is whole) when a line follows that break.
func (t *tailBuffer) result() Logs {
	b := t.buf
	if len(b) > t.limit {
		b = b[len(b)-t.limit:]
	}
	out := Logs{Size: t.total, Truncated: t.total > int64(len(b))}
	if out.Truncated {
		if i := bytes.IndexByte(b, '\n'); i >= 0 && len(bytes.TrimSpace(b[i+1:])) > 0 {
			b = b[i+1:]
		} else {
			out.Partial = true
			for len(b) > 0 && !utf8.RuneStart(b[0]) {
				b = b[1:]
			}
		}
	}
	out.Text = strings.ToValidUTF8(string(b), "\uFFFD")
	// Ray >= 2.55 or so may cut the log itself (RAY_JOB_LOG_MAX_READ_BYTES, 16 MiB default)
	// and say so in a first line.
	if strings.HasPrefix(out.Text, "[LOG TRUNCATED") {
		out.Truncated = true
	}
	return out
}

// decodeLogsTail reads Ray's logs object from r and returns the tail of the "logs" string.
// Other keys are skipped; a missing or null "logs" gives an empty log.
func decodeLogsTail(r io.Reader, limit int) (Logs, error) {
	d := &jsonStream{r: bufio.NewReaderSize(r, 64<<10)}
	tail := &tailBuffer{limit: limit}
	if err := d.expect('{'); err != nil {
		return Logs{}, err
	}
	first := true
	for {
		c, err := d.peekNonSpace()
		if err != nil {
			return Logs{}, err
		}
		if c == '}' {
			d.r.Discard(1)
			return tail.result(), nil
		}
		if !first {
			if err := d.expect(','); err != nil {
				return Logs{}, err
			}
		}
		first = false
		if err := d.expect('"'); err != nil {
			return Logs{}, err
		}
		var key []byte
		if err := d.readString(func(p []byte) error {
			if len(key)+len(p) > 1024 {
				return fmt.Errorf("%w: key longer than 1 KiB", errLogsSyntax)
			}
			key = append(key, p...)
			return nil
		}); err != nil {
			return Logs{}, err
		}
		if err := d.expect(':'); err != nil {
			return Logs{}, err
		}
		c, err = d.peekNonSpace()
		if err != nil {
			return Logs{}, err
		}
		if string(key) == "logs" && c == '"' {
			d.r.Discard(1)
			if err := d.readString(func(p []byte) error { tail.Write(p); return nil }); err != nil {
				return Logs{}, err
			}
			continue
		}
		if err := d.skipValue(); err != nil {
			return Logs{}, err
		}
	}
}

// jsonStream is a minimal streaming JSON reader: just enough to walk one object and stream
// one string out of it without holding it in memory.
type jsonStream struct {
	r       *bufio.Reader
	scratch []byte
}

func (d *jsonStream) peekNonSpace() (byte, error) {
	for {
		b, err := d.r.Peek(1)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("%w: %w", errLogsSyntax, io.ErrUnexpectedEOF)
			}
			return 0, err
		}
		switch b[0] {
		case ' ', '\t', '\n', '\r':
			d.r.Discard(1)
		default:
			return b[0], nil
		}
	}
}

func (d *jsonStream) expect(want byte) error {
	c, err := d.peekNonSpace()
	if err != nil {
		return err
	}
	if c != want {
		return fmt.Errorf("%w: want %q, got %q", errLogsSyntax, want, c)
	}
	d.r.Discard(1)
	return nil
}

// readString decodes a JSON string whose opening quote was consumed, passing the decoded
// bytes to sink in chunks, and consumes the closing quote.
func (d *jsonStream) readString(sink func([]byte) error) error {
	for {
		if _, err := d.r.Peek(1); err != nil {
			return d.eof(err)
		}
		b, _ := d.r.Peek(d.r.Buffered())
		out := d.scratch[:0]
		i := 0
		// Next quote and backslash positions in b, found with IndexByte (linear overall).
		q, bs := -1, -1
		done := false
	scan:
		for i < len(b) {
			if q < i {
				if q = bytes.IndexByte(b[i:], '"'); q >= 0 {
					q += i
				} else {
					q = len(b)
				}
			}
			if bs < i {
				if bs = bytes.IndexByte(b[i:], '\\'); bs >= 0 {
					bs += i
				} else {
					bs = len(b)
				}
			}
			next := min(q, bs)
			out = append(out, b[i:next]...)
			i = next
			if i == len(b) {
				break
			}
			if b[i] == '"' {
				i++
				done = true
				break
			}
			// An escape: needs 2 bytes, 6 for \uXXXX, 12 for a surrogate pair.
			if len(b)-i < 2 {
				break
			}
			switch e := b[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				if len(b)-i < 6 {
					break scan
				}
				r1, ok := hex4(b[i+2 : i+6])
				if !ok {
					return fmt.Errorf("%w: bad \\u escape", errLogsSyntax)
				}
				if utf16.IsSurrogate(r1) && r1 < 0xDC00 {
					lone := (len(b)-i >= 7 && b[i+6] != '\\') || (len(b)-i >= 8 && b[i+7] != 'u')
					if !lone && len(b)-i < 12 {
						break scan
					}
					if !lone {
						if r2, ok := hex4(b[i+8 : i+12]); ok && utf16.DecodeRune(r1, r2) != utf8.RuneError {
							out = utf8.AppendRune(out, utf16.DecodeRune(r1, r2))
							i += 12
							continue
						}
					}
					r1 = utf8.RuneError
				} else if utf16.IsSurrogate(r1) {
					r1 = utf8.RuneError
				}
				out = utf8.AppendRune(out, r1)
				i += 6
				continue
			default:
				return fmt.Errorf("%w: bad escape \\%c", errLogsSyntax, e)
			}
			i += 2
		}
		d.scratch = out
		if len(out) > 0 {
			if err := sink(out); err != nil {
				return err
			}
		}
		d.r.Discard(i)
		if done {
			return nil
		}
		if i == 0 {
			// An escape split across the buffer's end: wait for more bytes.
			if _, err := d.r.Peek(len(b) + 1); err != nil {
				return d.eof(err)
			}
		}
	}
}

func (d *jsonStream) eof(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", errLogsSyntax, io.ErrUnexpectedEOF)
	}
	return err
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skipValue consumes one JSON value of any kind without keeping it.
func (d *jsonStream) skipValue() error {
	depth := 0
	for {
		c, err := d.peekNonSpace()
		if err != nil {
			return err
		}
		switch c {
		case '"':
			d.r.Discard(1)
			if err := d.readString(func([]byte) error { return nil }); err != nil {
				return err
			}
		case '{', '[':
			d.r.Discard(1)
			depth++
			continue
		case '}', ']':
			if depth == 0 {
				return fmt.Errorf("%w: unexpected %q", errLogsSyntax, c)
			}
			d.r.Discard(1)
			depth--
		case ',', ':':
			if depth == 0 {
				return fmt.Errorf("%w: unexpected %q", errLogsSyntax, c)
			}
			d.r.Discard(1)
			continue
		default: // number, true, false, null
			n := 0
			for {
				b, err := d.r.Peek(1)
				if err != nil {
					return d.eof(err)
				}
				if !strings.ContainsRune("+-.0123456789eEtrufalsn", rune(b[0])) {
					break
				}
				d.r.Discard(1)
				n++
			}
			if n == 0 {
				return fmt.Errorf("%w: unexpected %q", errLogsSyntax, c)
			}
		}
		if depth == 0 {
			return nil
		}
	}
}
