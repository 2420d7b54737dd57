package pyjson

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// vector is one line of testdata/vectors.jsonl (see testdata/gen_vectors.py).
type vector struct {
	Kind         string `json:"kind"`
	Note         string `json:"note"`
	In           string `json:"in"`
	Out          string `json:"out"`
	SHA256       string `json:"sha256"`
	Bytes        int    `json:"bytes"`
	Bits         string `json:"bits"`
	Unit         string `json:"unit"`
	Count        int    `json:"count"`
	CallablePath string `json:"callable_path"`
	ArgsJSON     string `json:"args_json"`
	KwargsJSON   string `json:"kwargs_json"`
}

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("bad base64 in vectors: %v", err)
	}
	return b
}

func loadVectors(t *testing.T) map[string][]vector {
	t.Helper()
	f, err := os.Open("testdata/vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]vector{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var v vector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		out[v.Kind] = append(out[v.Kind], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestPythonVectors checks every vector python3 generated: decode + dumps/compact output,
// byte counts and SHA-256 digests, refusals, float repr, raw-bytes-to-string encoding, the
// last-line rule, and large values around the 1 MiB result threshold.
func TestPythonVectors(t *testing.T) {
	vs := loadVectors(t)
	for _, kind := range []string{"dumps", "compact", "reject", "float", "text", "strip", "repeat", "result", "payload"} {
		if len(vs[kind]) == 0 {
			t.Fatalf("no %q vectors: regenerate testdata/vectors.jsonl", kind)
		}
	}
	t.Run("dumps", func(t *testing.T) {
		for _, v := range vs["dumps"] {
			in := string(unb64(t, v.In))
			got, err := Canonical(in)
			if err != nil {
				t.Errorf("%s: Decode(%q): %v", v.Note, trunc(in), err)
				continue
			}
			want := unb64(t, v.Out)
			if !bytes.Equal(got, want) {
				t.Errorf("%s: Dumps(%q)\n got %q\nwant %q", v.Note, trunc(in), trunc(string(got)), trunc(string(want)))
			}
			if len(got) != v.Bytes || sum(got) != v.SHA256 {
				t.Errorf("%s: size/digest %d %s, want %d %s", v.Note, len(got), sum(got), v.Bytes, v.SHA256)
			}
		}
	})
	t.Run("compact", func(t *testing.T) {
		for _, v := range vs["compact"] {
			val, err := Decode(string(unb64(t, v.In)))
			if err != nil {
				t.Errorf("%s: %v", v.Note, err)
				continue
			}
			got, err := Compact(val)
			if err != nil || !bytes.Equal(got, unb64(t, v.Out)) {
				t.Errorf("%s: Compact = %q, %v; want %q", v.Note, trunc(string(got)), err, trunc(string(unb64(t, v.Out))))
			}
		}
	})
	t.Run("reject", func(t *testing.T) {
		for _, v := range vs["reject"] {
			in := string(unb64(t, v.In))
			if got, err := Decode(in); err == nil {
				t.Errorf("%s: Decode(%q) = %#v, want an error as json.loads raises", v.Note, trunc(in), got)
			}
		}
	})
	t.Run("float", func(t *testing.T) {
		for _, v := range vs["float"] {
			bits, err := strconv.ParseUint(v.Bits, 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			f := math.Float64frombits(bits)
			if got, want := string(AppendFloat(nil, f)), string(unb64(t, v.Out)); got != want {
				t.Errorf("float %s (%v): got %s, want %s", v.Bits, f, got, want)
			}
		}
	})
	t.Run("text", func(t *testing.T) {
		for _, v := range vs["text"] {
			raw, want := unb64(t, v.In), unb64(t, v.Out)
			if got := EncodeBytes(raw); !bytes.Equal(got, want) {
				t.Errorf("EncodeBytes(%q) = %q, want %q", raw, got, want)
			}
			if got := AppendString(nil, DecodeUTF8(raw)); !bytes.Equal(got, want) {
				t.Errorf("AppendString(DecodeUTF8(%q)) = %q, want %q", raw, got, want)
			}
			// streamed one byte at a time, so every split of a sequence is exercised
			var sb bytes.Buffer
			w := NewStringWriter(&sb)
			for i := range raw {
				if _, err := w.Write(raw[i : i+1]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sb.Bytes(), want) || sb.Len() != v.Bytes || sum(sb.Bytes()) != v.SHA256 {
				t.Errorf("streamed %q = %q, want %q", raw, sb.Bytes(), want)
			}
		}
	})
	t.Run("strip", func(t *testing.T) {
		for _, v := range vs["strip"] {
			in, want := string(unb64(t, v.In)), string(unb64(t, v.Out))
			if got := LastLine(in); got != want {
				t.Errorf("LastLine(%q) = %q, want %q", in, got, want)
			}
		}
	})
	t.Run("repeat", func(t *testing.T) {
		for _, v := range vs["repeat"] {
			unit := string(unb64(t, v.Unit))
			text := "[" + strings.Repeat(unit+", ", v.Count-1) + unit + "]"
			got, err := Canonical(text)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != v.Bytes || sum(got) != v.SHA256 {
				t.Errorf("%d x %s: %d bytes sha256 %s, want %d %s", v.Count, unit, len(got), sum(got), v.Bytes, v.SHA256)
			}
		}
	})
	t.Run("result", func(t *testing.T) {
		for _, v := range vs["result"] {
			got, err := Canonical(string(unb64(t, v.In)))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != v.Bytes || sum(got) != v.SHA256 {
				t.Errorf("%q: %d %s, want %d %s", trunc(string(unb64(t, v.In))), len(got), sum(got), v.Bytes, v.SHA256)
			}
		}
	})
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func TestObjectOrderAndTruthy(t *testing.T) {
	v, err := Decode(`{"b": 1, "a": 2, "b": 3}`)
	if err != nil {
		t.Fatal(err)
	}
	o := v.(*Object)
	if got := strings.Join(o.Keys, ","); got != "b,a" {
		t.Fatalf("keys %s", got)
	}
	if b, _ := o.Get("b"); b != Int("3") {
		t.Fatalf("b = %#v", b)
	}
	if _, ok := o.Get("c"); ok {
		t.Fatal("c present")
	}
	truthy := map[string]bool{`null`: false, `false`: false, `true`: true, `0`: false, `-0`: false, `7`: true,
		`0.0`: false, `-0.0`: false, `0.5`: true, `NaN`: true, `""`: false, `"x"`: true, `[]`: false, `[0]`: true, `{}`: false, `{"a": 0}`: true}
	for text, want := range truthy {
		v, err := Decode(text)
		if err != nil {
			t.Fatal(err)
		}
		if got := Truthy(v); got != want {
			t.Errorf("Truthy(%s) = %v, want %v", text, got, want)
		}
	}
}

func TestEncodeGoValues(t *testing.T) {
	got, err := Dumps(map[string]any{"z": 1, "a": []any{int64(2), "é", 1e16, nil, true}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a": [2, "\u00e9", 1e+16, null, true], "z": 1}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if _, err := Dumps(struct{}{}); err == nil {
		t.Fatal("encoding an unsupported type succeeded")
	}
	if _, err := Dumps(Int("01")); err == nil {
		t.Fatal("encoding an invalid Int succeeded")
	}
}

// FuzzCanonical: whatever Decode accepts, Dumps writes text that decodes to the same text
// again (Python's dumps(loads(dumps(x))) == dumps(x)), and Decode never panics.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"a": [1, 2.5, "\u00e9"]}`, `"\ud800"`, `[NaN, -Infinity]`, `1e16`, `{"a":1,"a":2}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once, err := Canonical(s)
		if err != nil {
			return
		}
		twice, err := Canonical(string(once))
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("not stable: %q -> %q -> %q (%v)", s, once, twice, err)
		}
	})
}

// FuzzStringWriter: json.dumps of output streamed in pieces (a capture's chunks, split
// anywhere, inside a multi-byte character too) is exactly EncodeBytes of the whole.
func FuzzStringWriter(f *testing.F) {
	f.Add([]byte("a\"b\\c\x00é\xff\xe2\x82\xac🙂\n"), uint(3), uint(7))
	f.Add([]byte("\xed\xa0\x80\xf0\x9f"), uint(1), uint(4))
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint) {
		a, b := int(cut1%uint(len(data)+1)), int(cut2%uint(len(data)+1))
		if a > b {
			a, b = b, a
		}
		var out bytes.Buffer
		w := NewStringWriter(&out)
		for _, p := range [][]byte{data[:a], data[a:b], data[b:]} {
			if _, err := w.Write(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if want := EncodeBytes(data); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("%q split at %d,%d: %q, want %q", data, a, b, out.Bytes(), want)
		}
	})
}
