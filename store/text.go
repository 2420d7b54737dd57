package store

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// StorableText returns s as PostgreSQL's text columns accept it. Every value that goes from a
// task into a row (result_data, result_reference, error_message, error_traceback) passes
// through it inside the store's writes, so what a task prints can never make its outcome
// unstorable:
//
//   - U+0000 (NUL), which text columns refuse, becomes the four characters \x00;
//   - a lone surrogate, which Python strings can hold and pyjson carries as WTF-8 (an error
//     message from bytes decoded with surrogateescape: "\udc80"), becomes the six characters
//     \udc80, as Python's backslashreplace writes it;
//   - any other byte that is not UTF-8 becomes \xNN.
//
// Valid UTF-8 without NUL, which is nearly all text, is returned unchanged, so result_data
// (json.dumps text, always ASCII) keeps its exact size and digest.
func StorableText(s string) string {
	i := storablePrefix(s)
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		switch {
		case c == 0:
			b.WriteString(`\x00`)
			i++
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			i++
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			switch {
			case r != utf8.RuneError || n > 1:
				b.WriteString(s[i : i+n])
			case surrogateAt(s, i):
				r := rune(s[i]&0x0f)<<12 | rune(s[i+1]&0x3f)<<6 | rune(s[i+2]&0x3f)
				fmt.Fprintf(&b, `\u%04x`, r)
				n = 3
			default:
				fmt.Fprintf(&b, `\x%02x`, c)
			}
			i += n
		}
	}
	return b.String()
}

// storablePrefix returns the length of the longest prefix of s PostgreSQL accepts as is.
func storablePrefix(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == 0 {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(s)
}

// surrogateAt reports a WTF-8 encoded surrogate (U+D800..U+DFFF: ED A0..BF 80..BF) at s[i].
func surrogateAt(s string, i int) bool {
	return i+2 < len(s) && s[i] == 0xed && s[i+1] >= 0xa0 && s[i+1] <= 0xbf && s[i+2] >= 0x80 && s[i+2] <= 0xbf
}

// storable returns a copy of p made storable (nil stays nil).
func storable(p *string) *string {
	if p == nil {
		return nil
	}
	s := StorableText(*p)
	return &s
}

// storable returns e with its message and traceback made storable.
func (e ErrorInfo) storable() ErrorInfo {
	return ErrorInfo{Message: StorableText(e.Message), Traceback: storable(e.Traceback)}
}

// storable returns r with its data and reference made storable.
func (r Result) storable() Result {
	return Result{Data: storable(r.Data), Reference: storable(r.Reference)}
}
