package lifecycle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/pyjson"
)

// joinedJSON is the result text of o, whether kept as JSON or as captured output.
func joinedJSON(r Result) []byte {
	if r.Output == nil {
		return r.JSON
	}
	var b bytes.Buffer
	_ = WriteOutputJSON(&b, r.Output)
	return b.Bytes()
}

// split cuts b into pieces at random points (some empty).
func split(rng *rand.Rand, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := rng.IntN(len(b) + 1)
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, nil)
}

// TestInterpretPartsAsWhole: Interpret reads captured pieces exactly as it reads the same
// bytes whole, whatever the split (a multi-byte character or a CRLF cut in two included).
func TestInterpretPartsAsWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	env := `{"success": true, "result": [1, "é"], "error": null, "traceback": null, "exception_type": null}`
	fail := `{"success": false, "error": "bad", "traceback": "tb", "exception_type": "builtins.ValueError"}`
	pieces := []string{"log line\n", env, fail, "\n", "\r\n", "  ", "\t", "\u2028", "é", "\xff", "\xe2\x82", "\xac", "x", "[1, 2]", "\u00a0", "\x1c"}
	for iter := 0; iter < 3000; iter++ {
		var b []byte
		for n := rng.IntN(8); n > 0; n-- {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		if iter%50 == 0 { // long runs force the suffix to grow
			b = append(bytes.Repeat([]byte("line\n"), 20000+rng.IntN(9)), b...)
			b = append(b, bytes.Repeat([]byte("z"), 70000*rng.IntN(3))...)
		}
		truncated := rng.IntN(3) == 0
		whole := RunOutput{Stdout: b, StdoutTruncated: truncated, StdoutDigest: &Digest{SHA256: "d", Bytes: 9}, ExitCode: rng.IntN(2)}
		parted := whole
		parted.Stdout, parted.StdoutParts = nil, split(rng, b)
		// the suffix-only reading agrees with decoding the whole text, as Python does
		text := pyjson.DecodeUTF8(b)
		stripped := pyjson.Strip(text)
		line, nonBlank, newline := lastOutputLine(parted.StdoutParts)
		if line != pyjson.LastLine(text) || nonBlank != (stripped != "") || newline != strings.Contains(stripped, "\n") {
			t.Fatalf("output %q: last line %q (%v, %v), want %q", b, line, nonBlank, newline, pyjson.LastLine(text))
		}
		got, want := Interpret(parted), Interpret(whole)
		if got.Kind != want.Kind || got.Failure != want.Failure || !bytes.Equal(joinedJSON(got.Result), joinedJSON(want.Result)) ||
			got.Result.SHA256 != want.Result.SHA256 && want.Result.JSON == nil {
			t.Fatalf("output %q in %d pieces:\n got %+v\nwant %+v", b, len(parted.StdoutParts), got, want)
		}
	}
}

// TestWholeOutputResultIsNotCopied: a large non-envelope output becomes a result that points
// at the captured pieces, with the size and digest of its json.dumps; Place stores it inline,
// as a digest, or streamed to a file, exactly as if it had been encoded whole.
func TestWholeOutputResultIsNotCopied(t *testing.T) {
	out := []byte(strings.Repeat("a line of output é\x00\n", 20000) + "not an envelope\n")
	parts := [][]byte{out[:7], out[7:100001], out[100001:]}
	o := Interpret(RunOutput{StdoutParts: parts})
	if o.Kind != Succeeded || o.Result.JSON != nil || len(o.Result.Output) != 3 || &o.Result.Output[1][0] != &parts[1][0] {
		t.Fatalf("a large whole-output result must keep the captured pieces: %+v", o.Kind)
	}
	text := pyjson.EncodeBytes(out)
	sum := sha256.Sum256(text)
	if o.Result.Bytes != int64(len(text)) || o.Result.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("size/digest %d %s, want %d %x", o.Result.Bytes, o.Result.SHA256, len(text), sum)
	}

	if st := (Results{MaxInline: int64(len(text))}).Place(t.Context(), o.Result); !st.Inline || *st.Row.Data != string(text) {
		t.Fatalf("inline placement: %+v", st)
	}
	if st := (Results{MaxInline: 1024}).Place(t.Context(), o.Result); st.Reference != DigestReference(o.Result.SHA256, o.Result.Bytes) || st.Fallback != nil {
		t.Fatalf("digest placement: %+v", st)
	}
	dir := t.TempDir()
	st := (Results{MaxInline: 1024, Backend: FilesystemBackend{Root: dir}}).Place(t.Context(), o.Result)
	if st.Fallback != nil || st.Reference != FilesystemReference(o.Result.SHA256, o.Result.Bytes) {
		t.Fatalf("filesystem placement: %+v", st)
	}
	stored, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(relPath(o.Result.SHA256))))
	if err != nil || !bytes.Equal(stored, text) {
		t.Fatalf("stored file differs from json.dumps of the output (%v)", err)
	}
	if !(Results{MaxInline: int64(len(text))}).Inline(o.Result) || (Results{MaxInline: 1024}).Inline(o.Result) {
		t.Fatal("Inline disagrees with Place")
	}
}
