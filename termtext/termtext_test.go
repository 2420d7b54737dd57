package termtext_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rayctl/rayctl/termtext"
)

func TestSanitize(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"multi\nline\twith tab", "multi\nline\twith tab"},
		{"unicode: héllo 世界 🙂 שלום", "unicode: héllo 世界 🙂 שלום"},
		{"\x1b]0;pwned\x07queue", `\x1b]0;pwned\x07queue`},             // OSC 0: set the window title
		{"boom\x1b[2J\x1b[H", `boom\x1b[2J\x1b[H`},                     // clear the screen
		{"cr\roverwrite", `cr\x0doverwrite`},                           // carriage return hides what came before
		{"nul\x00 del\x7f bs\x08", `nul\x00 del\x7f bs\x08`},           // NUL, DEL, backspace
		{"c1 \u009b31m csi \u0085 nel", `c1 \u009b31m csi \u0085 nel`}, // C1 controls as characters
		{"raw c1 \x9b31m byte", `raw c1 \x9b31m byte`},                 // an 8-bit CSI byte (not UTF-8)
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},
		{"admin\u202e)txt.exe", `admin\u202e)txt.exe`}, // right-to-left override
		{"iso\u2066late\u2069 \u200f mark \u061c", `iso\u2066late\u2069 \u200f mark \u061c`},
		{"line\u2028sep", `line\u2028sep`},
		{"surrogate \xed\xb2\x80", `surrogate \xed\xb2\x80`}, // WTF-8 lone surrogate
	}
	for _, c := range cases {
		if got := termtext.Sanitize(c.in); got != c.want {
			t.Errorf("Sanitize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got, want := termtext.Line("a\nb\tc\x1b"), `a\nb\tc\x1b`; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
}

func TestWriterSanitizesUntilPassthrough(t *testing.T) {
	var buf bytes.Buffer
	w := termtext.NewWriter(&buf)
	fmt.Fprintf(w, "queue %s\n", "\x1b]0;x\x07")
	if got := buf.String(); got != "queue \\x1b]0;x\\x07\n" {
		t.Fatalf("sanitized output %q", got)
	}
	buf.Reset()
	w.Passthrough()
	fmt.Fprint(w, "{\"q\": \"\x7f\"}")
	if got := buf.String(); got != "{\"q\": \"\x7f\"}" {
		t.Fatalf("passthrough output %q", got)
	}
	if w.Unwrap() != &buf {
		t.Fatal("Unwrap does not return the writer underneath")
	}
}

// FuzzSanitize: whatever the input, the output is valid UTF-8 with no character a terminal
// acts on, Sanitize is idempotent, and text that needs no escape is returned unchanged.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"", "ok", "\x1b[2J", "\x1b]0;t\x07", "\u009b", "\xff", "\u202e", "a\nb\tc", "\xed\xb2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, fn := range []struct {
			name string
			f    func(string) string
			keep string
		}{{"Sanitize", termtext.Sanitize, "\n\t"}, {"Line", termtext.Line, ""}} {
			out := fn.f(s)
			if !utf8.ValidString(out) {
				t.Fatalf("%s(%q) = %q: not UTF-8", fn.name, s, out)
			}
			for _, r := range out {
				if (r < 0x20 && !strings.ContainsRune(fn.keep, r)) || (r >= 0x7f && r <= 0x9f) ||
					(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c || r == 0x2028 || r == 0x2029 {
					t.Fatalf("%s(%q) = %q keeps %U", fn.name, s, out, r)
				}
			}
			if again := fn.f(out); again != out {
				t.Fatalf("%s is not idempotent: %q -> %q -> %q", fn.name, s, out, again)
			}
		}
		if termtext.Safe(s) && termtext.Sanitize(s) != s {
			t.Fatalf("Safe(%q) but Sanitize changed it", s)
		}
	})
}

// TestJSON: what encoding/json leaves raw and a terminal acts on is escaped, and the JSON
// still decodes to the same value.
func TestJSON(t *testing.T) {
	in := map[string]string{"k": "a\u009b31m b\u202e c\x7f d\u2028 e ✓ \x1b[2J"}
	enc, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := termtext.JSON(enc)
	for _, r := range string(out) {
		if r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x202e || r == 0x1b {
			t.Fatalf("%U left raw in %s", r, out)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["k"] != in["k"] {
		t.Fatalf("decoded %q %v, want %q", back["k"], err, in["k"])
	}
	if plain := []byte(`{"k":"plain ✓"}`); &termtext.JSON(plain)[0] != &plain[0] {
		t.Error("clean JSON was copied")
	}
}
