// Package termtext makes untrusted text safe to write to a terminal. Every value that comes
// from a task (queue and callable names, errors, tracebacks, args, results, worker ids and
// hostnames) is data from whoever enqueued it: written raw, an escape sequence in it could set
// the terminal's title, clear the screen, rewrite what the operator sees or, on some
// terminals, make the terminal answer with input of its own.
//
// Sanitize shows every character a terminal would act on instead of print, as a visible
// escape:
//
//   - C0 controls (U+0000..U+001F) other than newline and tab, and DEL: \x1b, \x07, \x0d, \x7f
//   - C1 controls (U+0080..U+009F), which some terminals read as ESC sequences: \u009b
//   - bytes that are not UTF-8: \xff (an 8-bit C1 byte such as 0x9b is one of them)
//   - the bidirectional formatting characters, which reorder what is shown so that text reads
//     differently from what it is ("Trojan Source", CVE-2021-42574): U+202A..U+202E,
//     U+2066..U+2069, U+200E, U+200F and U+061C, as \u202e
//   - the Unicode line and paragraph separators U+2028 and U+2029: \u2028
//
// Everything else is kept, including all printable non-ASCII text. A backslash is not
// escaped, so a task that prints the four characters \x1b shows the same as one that printed
// ESC: both are harmless. Line is Sanitize for a single line (a table cell): newline and tab
// are escaped too (\n, \t).
//
// The package imports only the standard library; rayctl's text output (a Writer around
// stdout and stderr) and rayctl top's views use it. JSON output goes through JSON instead:
// the values stay unchanged, and what encoding/json leaves raw (DEL, C1, bidi) is escaped.
package termtext

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Sanitize returns s with every control character, escape sequence introducer, invalid byte
// and bidirectional formatting character shown as a visible escape. Newlines and tabs are
// kept. Text without any of them is returned unchanged.
func Sanitize(s string) string { return sanitize(s, false) }

// Line is Sanitize for a single line: newlines and tabs are escaped as \n and \t as well.
func Line(s string) string { return sanitize(s, true) }

// Safe reports whether s would be written unchanged by Sanitize.
func Safe(s string) bool { return cut(s, false) == len(s) }

func sanitize(s string, line bool) string {
	i := cut(s, line)
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case line && r == '\n':
			b.WriteString(`\n`)
		case line && r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 && r != '\n' && r != '\t', r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// cut returns the length of the longest prefix of s that needs no escape.
func cut(s string, line bool) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && (line || (c != '\n' && c != '\t'))) || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n <= 1) || unsafeRune(r) {
			return i
		}
		i += n
	}
	return len(s)
}

// JSON returns encoded JSON (encoding/json's output) with every character a terminal would
// act on written as a \uXXXX escape: DEL, the C1 controls and the bidi and line-separator
// characters, which encoding/json leaves raw. The JSON value is unchanged (outside strings
// encoded JSON is ASCII, so only string contents are touched); C0 controls are escaped by
// encoding/json already.
func JSON(b []byte) []byte {
	i := 0
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if r == 0x7f || unsafeRune(r) {
			break
		}
		i += n
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:i]...)
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if r == 0x7f || unsafeRune(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

// unsafeRune reports a non-ASCII character a terminal acts on or that reorders the display.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// Writer sanitizes everything written through it (Sanitize: newlines and tabs pass) until
// Passthrough is called. Each Write is sanitized on its own, so a character split across two
// writes shows as \x escapes; fmt and text/tabwriter never split one.
type Writer struct {
	w   io.Writer
	raw bool
}

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Passthrough stops sanitizing: what follows is written unchanged (JSON output).
func (w *Writer) Passthrough() { w.raw = true }

// Unwrap returns the writer underneath (for a program that drives the terminal itself).
func (w *Writer) Unwrap() io.Writer { return w.w }

// Write implements io.Writer. It reports len(p) when everything was written.
func (w *Writer) Write(p []byte) (int, error) {
	if w.raw {
		return w.w.Write(p)
	}
	s := string(p)
	clean := Sanitize(s)
	if _, err := io.WriteString(w.w, clean); err != nil {
		return 0, err
	}
	return len(p), nil
}
