package lifecycle

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"

	"github.com/rayctl/rayctl/pyjson"
)

// A run's output can be large (a task printing 30 MiB keeps 30 MiB) and arrives in pieces
// (procrunner.Capture keeps chunks). Interpret reads it without joining the pieces into one
// copy: it decodes only the last line, copies only the tails it records, and leaves the
// whole-output result (django-ray's rule for a last line that is not an envelope) as the
// pieces themselves, encoded by Results.Place only as far as it needs.

// inlineOutputJSON is the largest whole-output result Interpret encodes into Result.JSON at
// once; a larger one stays as the captured pieces (Result.Output) until Place.
const inlineOutputJSON = 64 << 10

// Suffix returns a copy of at most n bytes from the end of parts taken in order.
func Suffix(parts [][]byte, n int) []byte {
	total := partsLen(parts)
	n = min(max(n, 0), total)
	out := make([]byte, 0, n)
	skip := total - n
	for _, p := range parts {
		if skip >= len(p) {
			skip -= len(p)
			continue
		}
		out = append(out, p[skip:]...)
		skip = 0
	}
	return out
}

func partsLen(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// stdoutParts is the run's stdout as pieces: StdoutParts when the runner kept them so, else
// Stdout as one piece.
func (r RunOutput) stdoutParts() [][]byte {
	if r.StdoutParts != nil {
		return r.StdoutParts
	}
	if len(r.Stdout) == 0 {
		return nil
	}
	return [][]byte{r.Stdout}
}

// lastOutputLine returns text.strip().split("\n")[-1] for the text the pieces decode to
// (UTF-8, invalid bytes replaced, as Python's errors="replace"), decoding only a suffix:
// nonBlank reports whether the stripped text is not empty, newline whether it holds a "\n"
// (so the line is whole even when the output's beginning was dropped).
//
// A suffix decodes like the whole from just after any '\n' (0x0A is never inside a UTF-8
// sequence, and decoding resynchronises on it). So the answer is exact once the suffix holds
// a '\n' with something other than whitespace on both sides; the suffix starts on a
// character boundary and grows until it does, or holds everything.
func lastOutputLine(parts [][]byte) (line string, nonBlank, newline bool) {
	total := partsLen(parts)
	for w := min(total, 64<<10); ; w = min(total, 4*w) {
		b := Suffix(parts, w)
		if w < total { // skip a character cut in two; a longer suffix looks at it again
			for k := 0; k < 3 && len(b) > 0 && b[0]&0xc0 == 0x80; k++ {
				b = b[1:]
			}
		}
		text := strings.TrimRightFunc(pyjson.DecodeUTF8(b), pyjson.IsSpace)
		if i := strings.LastIndexByte(text, '\n'); i >= 0 && strings.TrimLeftFunc(text[:i], pyjson.IsSpace) != "" {
			return text[i+1:], true, true
		}
		if w == total {
			text = strings.TrimLeftFunc(text, pyjson.IsSpace)
			return text, text != "", false
		}
	}
}

// WriteOutputJSON writes json.dumps(the pieces decoded as UTF-8 text): django-ray's
// whole-output result, streamed.
func WriteOutputJSON(w io.Writer, parts [][]byte) error {
	sw := pyjson.NewStringWriter(w)
	for _, p := range parts {
		if _, err := sw.Write(p); err != nil {
			return err
		}
	}
	return sw.Close()
}

// outputResult is the whole-output result of parts: its JSON at once when small, else the
// pieces with the size and digest of their JSON (computed streaming, nothing held).
func outputResult(parts [][]byte) Result {
	h := sha256.New()
	c := &countingWriter{w: h}
	_ = WriteOutputJSON(c, parts)
	if c.n <= inlineOutputJSON {
		var b strings.Builder
		_ = WriteOutputJSON(&b, parts)
		return Result{JSON: []byte(b.String())}
	}
	return Result{Output: parts, SHA256: hex.EncodeToString(h.Sum(nil)), Bytes: c.n}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}
