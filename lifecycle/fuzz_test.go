package lifecycle

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rayctl/rayctl/pyjson"
	"github.com/rayctl/rayctl/store"
)

// FuzzInterpret: whatever an entrypoint prints (and however a capture cuts it into pieces),
// Interpret never panics, reads the last line exactly as Python's
// output.decode(errors="replace").strip().split("\n")[-1] does, gives the same outcome for the
// pieces as for the whole, and a success's result is JSON.
func FuzzInterpret(f *testing.F) {
	f.Add([]byte("log\n{\"success\": true, \"result\": 1}\n"), false, 0, uint(3), uint(9))
	f.Add([]byte(`{"success": false, "error": "x\u0000", "traceback": "\udc80", "exception_type": "builtins.ValueError"}`), false, 0, uint(0), uint(5))
	f.Add([]byte("\r\n \u2028\n\xff\xe2\x82"), true, 1, uint(1), uint(2))
	f.Add([]byte("not json\n"), false, 0, uint(4), uint(4))
	f.Add([]byte(""), true, 0, uint(0), uint(0))
	f.Fuzz(func(t *testing.T, out []byte, truncated bool, exit int, cut1, cut2 uint) {
		a, b := int(cut1%uint(len(out)+1)), int(cut2%uint(len(out)+1))
		if a > b {
			a, b = b, a
		}
		whole := RunOutput{Stdout: out, StdoutTruncated: truncated, ExitCode: exit % 3, StdoutDigest: &Digest{SHA256: strings.Repeat("a", 64), Bytes: 1}}
		parted := whole
		parted.Stdout, parted.StdoutParts = nil, [][]byte{out[:a], out[a:b], out[b:]}

		text := pyjson.DecodeUTF8(out)
		line, nonBlank, newline := lastOutputLine(parted.StdoutParts)
		if line != pyjson.LastLine(text) || nonBlank != (pyjson.Strip(text) != "") || newline != strings.Contains(pyjson.Strip(text), "\n") {
			t.Fatalf("%q: last line %q (%v %v), want %q", out, line, nonBlank, newline, pyjson.LastLine(text))
		}
		o, w := Interpret(parted), Interpret(whole)
		if o.Kind != w.Kind || o.Failure != w.Failure || !bytes.Equal(joinedJSON(o.Result), joinedJSON(w.Result)) {
			t.Fatalf("%q: pieces give %+v, the whole %+v", out, o, w)
		}
		switch o.Kind {
		case Succeeded:
			if js := joinedJSON(o.Result); js != nil {
				if _, err := pyjson.Decode(string(js)); err != nil {
					t.Fatalf("%q: result %q is not JSON: %v", out, js, err)
				}
			} else if len(o.Result.SHA256) != 64 {
				t.Fatalf("%q: a success without a result: %+v", out, o.Result)
			}
		case Failed:
			if o.Failure.Message == "" {
				t.Fatalf("%q: a failure without a message", out)
			}
		default:
			t.Fatalf("%q: outcome %v", out, o.Kind)
		}
	})
}

// FuzzPayload: any args_json/kwargs_json a row may hold either builds django-ray's payload
// (URL-safe base64 of compact JSON with the three keys, in order, whose serialized fields
// decode to an array and an object) or fails as a permanent InvalidTask, never a panic.
func FuzzPayload(f *testing.F) {
	for _, s := range [][3]string{{"app.f", `[1, "a", 2.5e16]`, `{"k": null}`}, {"x.y", `[1,`, `{}`}, {"x.y", `{"a": 1}`, `[]`},
		{"x.y", `["\ud800", NaN, 123456789012345678901234567890]`, `{"a": 1, "a": 2}`}, {"", `[]`, `{}`}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, callable, args, kwargs string) {
		p, err := Payload(store.Task{CallablePath: callable, ArgsJSON: args, KwargsJSON: kwargs})
		if err != nil {
			var fe *FailureError
			if !errors.As(err, &fe) || !fe.Failure.Permanent || fe.Failure.ExceptionType != ExcInvalidTask {
				t.Fatalf("args %q kwargs %q: %v is not a permanent InvalidTask", args, kwargs, err)
			}
			return
		}
		raw, err := base64.URLEncoding.DecodeString(p)
		if err != nil || !utf8.Valid(raw) {
			t.Fatalf("payload %q is not URL-safe base64 of UTF-8: %v", p, err)
		}
		v, err := pyjson.Decode(string(raw))
		obj, ok := v.(*pyjson.Object)
		if err != nil || !ok || obj.Len() != 3 {
			t.Fatalf("payload %s is not the 3-key object: %v", raw, err)
		}
		sargs, _ := obj.Get("serialized_args")
		skwargs, _ := obj.Get("serialized_kwargs")
		av, aerr := pyjson.Decode(sargs.(string))
		kv, kerr := pyjson.Decode(skwargs.(string))
		if _, isArr := av.([]any); aerr != nil || !isArr {
			t.Fatalf("serialized_args %q: %v", sargs, aerr)
		}
		if _, isObj := kv.(*pyjson.Object); kerr != nil || !isObj {
			t.Fatalf("serialized_kwargs %q: %v", skwargs, kerr)
		}
	})
}
