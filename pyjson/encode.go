package pyjson

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

func inf(sign int) float64 { return math.Inf(sign) }
func nan() float64         { return math.NaN() }

// Dumps returns json.dumps(v): separators ", " and ": ", ensure_ascii, Python float repr.
func Dumps(v any) ([]byte, error) {
	e := encoder{item: ", ", key: ": "}
	if err := e.value(v, 0); err != nil {
		return nil, err
	}
	return e.b, nil
}

// Compact returns json.dumps(v, separators=(",", ":")), still with ensure_ascii.
func Compact(v any) ([]byte, error) {
	e := encoder{item: ",", key: ":"}
	if err := e.value(v, 0); err != nil {
		return nil, err
	}
	return e.b, nil
}

// Canonical returns Dumps(Decode(text)): the text Python writes for a value it read.
func Canonical(text string) ([]byte, error) {
	v, err := Decode(text)
	if err != nil {
		return nil, err
	}
	return Dumps(v)
}

type encoder struct {
	b         []byte
	item, key string
}

func (e *encoder) value(v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("pyjson: value nested too deeply")
	}
	switch x := v.(type) {
	case nil:
		e.b = append(e.b, "null"...)
	case bool:
		if x {
			e.b = append(e.b, "true"...)
		} else {
			e.b = append(e.b, "false"...)
		}
	case Int:
		if !validInt(string(x)) {
			return fmt.Errorf("pyjson: invalid Int %q", string(x))
		}
		e.b = append(e.b, x...)
	case int:
		e.b = strconv.AppendInt(e.b, int64(x), 10)
	case int64:
		e.b = strconv.AppendInt(e.b, x, 10)
	case float64:
		e.b = AppendFloat(e.b, x)
	case string:
		e.b = AppendString(e.b, x)
	case []any:
		if len(x) == 0 {
			e.b = append(e.b, "[]"...)
			return nil
		}
		e.b = append(e.b, '[')
		for i, item := range x {
			if i > 0 {
				e.b = append(e.b, e.item...)
			}
			if err := e.value(item, depth+1); err != nil {
				return err
			}
		}
		e.b = append(e.b, ']')
	case *Object:
		if x.Len() == 0 {
			e.b = append(e.b, "{}"...)
			return nil
		}
		e.b = append(e.b, '{')
		for i, k := range x.Keys {
			if i > 0 {
				e.b = append(e.b, e.item...)
			}
			e.b = AppendString(e.b, k)
			e.b = append(e.b, e.key...)
			if err := e.value(x.Values[i], depth+1); err != nil {
				return err
			}
		}
		e.b = append(e.b, '}')
	case map[string]any: // Go maps have no order; sorted keys make the output deterministic
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		o := &Object{}
		for _, k := range keys {
			o.Set(k, x[k])
		}
		return e.value(o, depth)
	default:
		return fmt.Errorf("pyjson: cannot encode %T", v)
	}
	return nil
}

func validInt(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// AppendFloat appends Python's json.dumps text of f: repr(f), or NaN, Infinity, -Infinity.
// repr is the shortest text that round-trips, in fixed notation when the decimal exponent is
// in [-4, 16) and otherwise in scientific notation with a signed, at least 2-digit exponent:
// 1e+16, 1e-05, 0.0001, 1234.5, 1.0.
func AppendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	// Shortest round-trip digits and exponent: d.ddde±XX.
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	ePos := 0
	for i, c := range s {
		if c == 'e' {
			ePos = i
			break
		}
	}
	mant, expText := s[:ePos], s[ePos+1:]
	exp, _ := strconv.Atoi(string(expText))
	digits := make([]byte, 0, len(mant))
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	// decpt: the value is 0.DIGITS x 10^decpt, as Python's float_repr_style 'r' counts it.
	decpt := exp + 1
	if neg {
		b = append(b, '-')
	}
	if f == 0 {
		return append(b, "0.0"...)
	}
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			b = append(b, "0."...)
			for i := 0; i < -decpt; i++ {
				b = append(b, '0')
			}
			b = append(b, digits...)
		case decpt >= len(digits):
			b = append(b, digits...)
			for i := len(digits); i < decpt; i++ {
				b = append(b, '0')
			}
			b = append(b, ".0"...)
		default:
			b = append(b, digits[:decpt]...)
			b = append(b, '.')
			b = append(b, digits[decpt:]...)
		}
		return b
	}
	b = append(b, digits[0])
	if len(digits) > 1 {
		b = append(b, '.')
		b = append(b, digits[1:]...)
	}
	b = append(b, 'e')
	if exp < 0 {
		b = append(b, '-')
		exp = -exp
	} else {
		b = append(b, '+')
	}
	if exp < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(exp), 10)
}

const hexDigits = "0123456789abcdef"

// AppendString appends the JSON string literal of s as json.dumps writes it with
// ensure_ascii. s is UTF-8, where lone surrogates may appear in WTF-8 form (from Decode);
// any other invalid byte is written as U+FFFD.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			b = appendASCII(b, c)
			i++
			continue
		}
		// a WTF-8 lone surrogate: ED A0..BF 80..BF
		if c == 0xed && i+2 < len(s) && s[i+1] >= 0xa0 && s[i+1] <= 0xbf && s[i+2] >= 0x80 && s[i+2] <= 0xbf {
			r := rune(c&0x0f)<<12 | rune(s[i+1]&0x3f)<<6 | rune(s[i+2]&0x3f)
			b = appendU(b, r)
			i += 3
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		b = appendRune(b, r)
		i += n
	}
	return b
}

func appendASCII(b []byte, c byte) []byte {
	switch c {
	case '"':
		return append(b, '\\', '"')
	case '\\':
		return append(b, '\\', '\\')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	}
	if c < 0x20 || c == 0x7f { // ensure_ascii escapes everything outside ' '..'~'
		return appendU(b, rune(c))
	}
	return append(b, c)
}

func appendRune(b []byte, r rune) []byte {
	if r < utf8.RuneSelf {
		return appendASCII(b, byte(r))
	}
	if r >= 0x10000 {
		r -= 0x10000
		b = appendU(b, 0xd800+(r>>10))
		return appendU(b, 0xdc00+(r&0x3ff))
	}
	return appendU(b, r)
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// StringWriter streams raw bytes into the JSON string literal Python writes for
// json.dumps(data.decode("utf-8", "replace")), without holding the data: it writes the opening
// quote first, escapes each chunk (carrying a UTF-8 sequence split across chunks to the
// next), and the closing quote on Close.
type StringWriter struct {
	w       io.Writer
	pending []byte
	started bool
	buf     []byte
	err     error
}

// NewStringWriter returns a StringWriter writing to w.
func NewStringWriter(w io.Writer) *StringWriter { return &StringWriter{w: w} }

// Write escapes p. It always reports len(p) unless the underlying writer failed.
func (s *StringWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	s.buf = s.buf[:0]
	if !s.started {
		s.buf = append(s.buf, '"')
		s.started = true
	}
	data := p
	if len(s.pending) > 0 {
		data = append(s.pending, p...)
		s.pending = nil
	}
	s.buf = s.escapeBytes(s.buf, data, false)
	if _, err := s.w.Write(s.buf); err != nil {
		s.err = err
		return 0, err
	}
	return len(p), nil
}

// escapeBytes escapes data into b. Unless final, an incomplete sequence at the end is kept
// in s.pending for the next call.
func (s *StringWriter) escapeBytes(b, data []byte, final bool) []byte {
	for len(data) > 0 {
		c := data[0]
		if c < utf8.RuneSelf {
			b = appendASCII(b, c)
			data = data[1:]
			continue
		}
		r, n, ok := decodeRune(data, final)
		if n == 0 { // incomplete at the end of this chunk
			s.pending = append([]byte(nil), data...)
			return b
		}
		if !ok {
			r = utf8.RuneError
		}
		b = appendRune(b, r)
		data = data[n:]
	}
	return b
}

// Close flushes an incomplete trailing sequence (as U+FFFD) and writes the closing quote.
func (s *StringWriter) Close() error {
	if s.err != nil {
		return s.err
	}
	b := s.buf[:0]
	if !s.started {
		b = append(b, '"')
		s.started = true
	}
	b = s.escapeBytes(b, s.pending, true)
	s.pending = nil
	b = append(b, '"')
	_, s.err = s.w.Write(b)
	return s.err
}

// EncodeBytes returns json.dumps(data.decode("utf-8", "replace")).
func EncodeBytes(data []byte) []byte {
	var sb byteSink
	w := NewStringWriter(&sb)
	_, _ = w.Write(data)
	_ = w.Close()
	return sb.b
}

type byteSink struct{ b []byte }

func (s *byteSink) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
