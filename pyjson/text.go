package pyjson

import (
	"strings"
	"unicode"
)

// IsSpace reports whether Python's str.isspace() is true for r: Unicode White_Space plus the
// information separators U+001C..U+001F, which Python also strips.
func IsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// Strip returns s.strip() as Python computes it (no arguments: Python whitespace).
func Strip(s string) string {
	return strings.TrimFunc(s, IsSpace)
}

// LastLine returns text.strip().split("\n")[-1]: the line django-ray parses as a Ray job's
// result (empty when the text is only whitespace).
func LastLine(text string) string {
	s := Strip(text)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
