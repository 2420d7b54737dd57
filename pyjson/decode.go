// Package pyjson reads and writes JSON exactly as Python's json module does, so that text,
// byte sizes and SHA-256 digests the Go worker produces match django-ray's byte for byte.
//
// Decode follows json.loads: NaN, Infinity and -Infinity are accepted, integers are kept exact
// (as decimal text), an object keeps its keys in first-seen order with the last value of a
// duplicate key, and lone UTF-16 surrogates written as \uXXXX escapes survive (they are held in
// Go strings as WTF-8). Dumps follows json.dumps with its defaults: separators ", " and ": ",
// ensure_ascii (non-ASCII as \uXXXX, astral characters as surrogate pairs), float repr
// (1e+16, 1e-05, 0.0001, Infinity, NaN), no HTML escaping. Compact uses "," and ":" as
// django-ray's Ray Job payload does.
//
// Values are: nil (None), bool, Int (exact decimal digits), float64, string, []any and
// *Object. testdata/gen_vectors.py generates the test vectors with the machine's python3.
package pyjson

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Int is a JSON integer kept exactly, as Python's int keeps it: optional '-' and decimal digits.
type Int string

// Object is a JSON object with its keys in Python dict order.
type Object struct {
	Keys   []string
	Values []any
	index  map[string]int
}

// Get returns the value of key and whether it is present.
func (o *Object) Get(key string) (any, bool) {
	if o == nil {
		return nil, false
	}
	if o.index != nil {
		i, ok := o.index[key]
		if !ok {
			return nil, false
		}
		return o.Values[i], true
	}
	for i, k := range o.Keys {
		if k == key {
			return o.Values[i], true
		}
	}
	return nil, false
}

// Set adds key (at the end) or replaces its value (in place), as a Python dict assignment does.
func (o *Object) Set(key string, v any) {
	if o.index == nil {
		o.index = make(map[string]int, len(o.Keys)+1)
		for i, k := range o.Keys {
			o.index[k] = i
		}
	}
	if i, ok := o.index[key]; ok {
		o.Values[i] = v
		return
	}
	o.index[key] = len(o.Keys)
	o.Keys = append(o.Keys, key)
	o.Values = append(o.Values, v)
}

// Len returns the number of keys.
func (o *Object) Len() int {
	if o == nil {
		return 0
	}
	return len(o.Keys)
}

// maxDepth bounds nesting so a hostile document cannot exhaust the stack. Python raises
// RecursionError near 1000 levels; anything this deep is refused here as well.
const maxDepth = 10000

// maxIntDigits is Python's default int_max_str_digits: json.loads refuses longer integers.
const maxIntDigits = 4300

// SyntaxError is a document json.loads would refuse.
type SyntaxError struct {
	Msg    string
	Offset int // byte offset in the text
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset) }

// Decode parses one JSON document as Python's json.loads does. text must be valid UTF-8
// (decode raw bytes with DecodeUTF8 first, as Python decodes them).
func Decode(text string) (any, error) {
	d := decoder{s: text}
	d.skipSpace()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.i != len(d.s) {
		return nil, d.errorf("extra data")
	}
	return v, nil
}

type decoder struct {
	s string
	i int
}

func (d *decoder) errorf(format string, a ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, a...), Offset: d.i}
}

// skipSpace skips JSON whitespace: only space, tab, LF and CR, as Python's json module.
func (d *decoder) skipSpace() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.errorf("document nested too deeply")
	}
	if d.i >= len(d.s) {
		return nil, d.errorf("expecting value")
	}
	switch c := d.s[d.i]; {
	case c == '"':
		return d.str()
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '-' || (c >= '0' && c <= '9'):
		if strings.HasPrefix(d.s[d.i:], "-Infinity") {
			d.i += len("-Infinity")
			return negInf, nil
		}
		return d.number()
	}
	for _, lit := range literals {
		if strings.HasPrefix(d.s[d.i:], lit.text) {
			d.i += len(lit.text)
			return lit.value, nil
		}
	}
	return nil, d.errorf("expecting value")
}

var (
	posInf   = inf(1)
	negInf   = inf(-1)
	literals = []struct {
		text  string
		value any
	}{{"null", nil}, {"true", true}, {"false", false}, {"NaN", nan()}, {"Infinity", posInf}}
)

func (d *decoder) number() (any, error) {
	start := d.i
	if d.s[d.i] == '-' {
		d.i++
	}
	if d.i >= len(d.s) || !isDigit(d.s[d.i]) {
		d.i = start
		return nil, d.errorf("expecting value")
	}
	if d.s[d.i] == '0' {
		d.i++
	} else {
		for d.i < len(d.s) && isDigit(d.s[d.i]) {
			d.i++
		}
	}
	isFloat := false
	// A fraction or exponent counts only when complete, as Python's NUMBER_RE matches:
	// "1." is the integer 1 followed by extra data.
	if d.i+1 < len(d.s) && d.s[d.i] == '.' && isDigit(d.s[d.i+1]) {
		d.i += 2
		for d.i < len(d.s) && isDigit(d.s[d.i]) {
			d.i++
		}
		isFloat = true
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		j := d.i + 1
		if j < len(d.s) && (d.s[j] == '+' || d.s[j] == '-') {
			j++
		}
		if j < len(d.s) && isDigit(d.s[j]) {
			for j < len(d.s) && isDigit(d.s[j]) {
				j++
			}
			d.i = j
			isFloat = true
		}
	}
	text := d.s[start:d.i]
	if !isFloat {
		digits := strings.TrimPrefix(text, "-")
		if len(digits) > maxIntDigits {
			d.i = start
			return nil, d.errorf("integer has more than %d digits (Python's int_max_str_digits)", maxIntDigits)
		}
		if digits == "0" {
			return Int("0"), nil
		}
		return Int(text), nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		d.i = start
		return nil, d.errorf("invalid number %q", text)
	}
	return f, nil // out of range: ±Inf or 0, as Python's float()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (d *decoder) str() (string, error) {
	d.i++ // opening quote
	var b strings.Builder
	start := d.i
	for {
		if d.i >= len(d.s) {
			return "", d.errorf("unterminated string")
		}
		c := d.s[d.i]
		switch {
		case c == '"':
			if b.Len() == 0 {
				s := d.s[start:d.i]
				d.i++
				return s, nil
			}
			b.WriteString(d.s[start:d.i])
			d.i++
			return b.String(), nil
		case c < 0x20:
			return "", d.errorf("invalid control character")
		case c == '\\':
			b.WriteString(d.s[start:d.i])
			if err := d.escape(&b); err != nil {
				return "", err
			}
			start = d.i
		default:
			d.i++
		}
	}
}

// escape decodes one backslash escape at d.i into b. A high surrogate escape immediately
// followed by a low surrogate escape is one character; any other surrogate stays lone (WTF-8).
func (d *decoder) escape(b *strings.Builder) error {
	if d.i+1 >= len(d.s) {
		return d.errorf("unterminated string")
	}
	c := d.s[d.i+1]
	if simple, ok := unescapes[c]; ok {
		b.WriteByte(simple)
		d.i += 2
		return nil
	}
	if c != 'u' {
		return d.errorf("invalid \\escape")
	}
	r, ok := hex4(d.s, d.i+2)
	if !ok {
		return d.errorf("invalid \\uXXXX escape")
	}
	d.i += 6
	if r >= 0xd800 && r <= 0xdbff && d.i+1 < len(d.s) && d.s[d.i] == '\\' && d.s[d.i+1] == 'u' {
		if lo, ok := hex4(d.s, d.i+2); ok && lo >= 0xdc00 && lo <= 0xdfff {
			d.i += 6
			b.WriteRune(0x10000 + (r-0xd800)<<10 + (lo - 0xdc00))
			return nil
		}
	}
	if r >= 0xd800 && r <= 0xdfff {
		writeSurrogate(b, r)
		return nil
	}
	b.WriteRune(r)
	return nil
}

var unescapes = map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// writeSurrogate writes a lone surrogate code point as WTF-8 (the 3-byte form UTF-8 forbids).
func writeSurrogate(b *strings.Builder, r rune) {
	b.WriteByte(0xe0 | byte(r>>12))
	b.WriteByte(0x80 | byte(r>>6)&0x3f)
	b.WriteByte(0x80 | byte(r)&0x3f)
}

func (d *decoder) array(depth int) ([]any, error) {
	out := []any{}
	if d.empty(']') {
		return out, nil
	}
	for {
		d.skipSpace()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		end, err := d.next(']')
		if err != nil {
			return nil, err
		}
		if end {
			return out, nil
		}
	}
}

// empty consumes a container's opening bracket and reports whether its closing one, close,
// follows (consumed too): an empty array or object.
func (d *decoder) empty(close byte) bool {
	d.i++
	d.skipSpace()
	if d.i < len(d.s) && d.s[d.i] == close {
		d.i++
		return true
	}
	return false
}

// next consumes what follows an element of a container: ',' (another element follows) or its
// closing bracket, close (end reports true).
func (d *decoder) next(close byte) (end bool, err error) {
	d.skipSpace()
	if d.i < len(d.s) {
		switch d.s[d.i] {
		case ',':
			d.i++
			return false, nil
		case close:
			d.i++
			return true, nil
		}
	}
	return false, d.errorf("expecting ',' delimiter")
}

func (d *decoder) object(depth int) (*Object, error) {
	o := &Object{}
	if d.empty('}') {
		return o, nil
	}
	for {
		d.skipSpace()
		if d.i >= len(d.s) || d.s[d.i] != '"' {
			return nil, d.errorf("expecting property name enclosed in double quotes")
		}
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return nil, d.errorf("expecting ':' delimiter")
		}
		d.i++
		d.skipSpace()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		o.Set(key, v)
		end, err := d.next('}')
		if err != nil {
			return nil, err
		}
		if end {
			return o, nil
		}
	}
}

// Truthy reports Python truthiness: false for None, False, 0, 0.0, "", [] and {}.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case Int:
		return x != "0"
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case *Object:
		return x.Len() > 0
	}
	return true
}

// DecodeUTF8 decodes bytes as Python's bytes.decode("utf-8", "replace") does: each maximal
// invalid subsequence becomes one U+FFFD.
func DecodeUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 16)
	for len(b) > 0 {
		r, n, ok := decodeRune(b, true)
		if !ok {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.WriteRune(r)
		}
		b = b[n:]
	}
	return sb.String()
}

// decodeRune decodes one UTF-8 sequence at the start of b. On an invalid sequence it reports
// ok=false and n = the length of the maximal subpart (at least 1) that becomes one U+FFFD.
// When final is false and b ends inside a sequence that may still complete, it returns n=0.
func decodeRune(b []byte, final bool) (r rune, n int, ok bool) {
	c := b[0]
	if c < 0x80 {
		return rune(c), 1, true
	}
	var need int
	lo, hi := byte(0x80), byte(0xbf)
	switch {
	case c >= 0xc2 && c <= 0xdf:
		need, r = 1, rune(c&0x1f)
	case c == 0xe0:
		need, r, lo = 2, rune(c&0x0f), 0xa0
	case c >= 0xe1 && c <= 0xec, c == 0xee, c == 0xef:
		need, r = 2, rune(c&0x0f)
	case c == 0xed:
		need, r, hi = 2, rune(c&0x0f), 0x9f
	case c == 0xf0:
		need, r, lo = 3, rune(c&0x07), 0x90
	case c >= 0xf1 && c <= 0xf3:
		need, r = 3, rune(c&0x07)
	case c == 0xf4:
		need, r, hi = 3, rune(c&0x07), 0x8f
	default:
		return utf8.RuneError, 1, false
	}
	for k := 1; k <= need; k++ {
		if k >= len(b) {
			if !final {
				return 0, 0, false
			}
			return utf8.RuneError, k, false
		}
		cb := b[k]
		if k == 1 {
			if cb < lo || cb > hi {
				return utf8.RuneError, 1, false
			}
		} else if cb < 0x80 || cb > 0xbf {
			return utf8.RuneError, k, false
		}
		r = r<<6 | rune(cb&0x3f)
	}
	return r, need + 1, true
}
