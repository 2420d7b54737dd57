package lifecycle

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/pyjson"
	"github.com/rayctl/rayctl/store"
)

// TestPayloadMatchesPython checks Payload against the --payload-b64 arguments python3 built
// with django-ray's recipe (pyjson/testdata/gen_vectors.py, kind "payload").
func TestPayloadMatchesPython(t *testing.T) {
	f, err := os.Open("../pyjson/testdata/vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := func(s string) string {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	n := 0
	for sc.Scan() {
		var v struct {
			Kind         string `json:"kind"`
			Out          string `json:"out"`
			CallablePath string `json:"callable_path"`
			ArgsJSON     string `json:"args_json"`
			KwargsJSON   string `json:"kwargs_json"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if v.Kind != "payload" {
			continue
		}
		n++
		task := store.Task{CallablePath: dec(v.CallablePath), ArgsJSON: dec(v.ArgsJSON), KwargsJSON: dec(v.KwargsJSON)}
		got, err := Payload(task)
		if err != nil {
			t.Fatalf("Payload(%+v): %v", task, err)
		}
		if want := dec(v.Out); got != want {
			t.Errorf("Payload(%q, %q, %q)\n got %s\nwant %s", task.CallablePath, task.ArgsJSON, task.KwargsJSON, got, want)
		}
	}
	if n < 10 {
		t.Fatalf("only %d payload vectors", n)
	}
}

func TestPayloadRefusesMalformedRows(t *testing.T) {
	cases := []struct{ args, kwargs, want string }{
		{`[1, 2`, `{}`, "invalid task row: args_json is not valid JSON"},
		{`{"a": 1}`, `{}`, "invalid task row: args_json is not a JSON array"},
		{`"abc"`, `{}`, "invalid task row: args_json is not a JSON array"},
		{`[]`, `[1]`, "invalid task row: kwargs_json is not a JSON object"},
		{`[]`, ``, "invalid task row: kwargs_json is not valid JSON"},
		{`[]`, `{"a": nope}`, "invalid task row: kwargs_json is not valid JSON"},
	}
	for _, c := range cases {
		_, err := Payload(store.Task{CallablePath: "a.b", ArgsJSON: c.args, KwargsJSON: c.kwargs})
		var fe *FailureError
		if !errors.As(err, &fe) {
			t.Fatalf("Payload(%q, %q) = %v, want a FailureError", c.args, c.kwargs, err)
		}
		if !strings.HasPrefix(fe.Failure.Message, c.want) || !fe.Failure.Permanent || fe.Failure.ExceptionType != ExcInvalidTask {
			t.Errorf("Payload(%q, %q): %+v, want %q, permanent", c.args, c.kwargs, fe.Failure, c.want)
		}
	}
}

func digestHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestInterpret(t *testing.T) {
	envOK := `{"success": true, "result": [5, {"b": 1e16, "a": "\u00e9"}], "error": null, "traceback": null, "exception_type": null}`
	envErr := `{"success": false, "result": null, "error": "boom", "traceback": "Traceback (most recent call last):\nValueError: boom\n", "exception_type": "builtins.ValueError"}`
	type want struct {
		kind   Kind
		result string // Succeeded: the result text
		msg    string // Failed: message prefix
		exc    string
		tb     string // substring of the traceback
	}
	cases := []struct {
		name string
		run  RunOutput
		want want
	}{
		{"envelope success", RunOutput{Stdout: []byte("log line\n" + envOK + "\n")},
			want{kind: Succeeded, result: `[5, {"b": 1e+16, "a": "\u00e9"}]`}},
		{"envelope success, trailing blank lines", RunOutput{Stdout: []byte(envOK + "\n\n  \n")},
			want{kind: Succeeded, result: `[5, {"b": 1e+16, "a": "\u00e9"}]`}},
		{"success is Python-truthy", RunOutput{Stdout: []byte(`{"success": 1, "result": 7}`)}, want{kind: Succeeded, result: `7`}},
		{"no result key is None", RunOutput{Stdout: []byte(`{"success": true}`)}, want{kind: Succeeded, result: `null`}},
		{"envelope failure", RunOutput{Stdout: []byte(envErr + "\n")},
			want{kind: Failed, msg: "boom", exc: "builtins.ValueError", tb: "ValueError: boom"}},
		{"envelope failure wins over exit status", RunOutput{Stdout: []byte(envErr + "\n"), ExitCode: 3},
			want{kind: Failed, msg: "boom", exc: "builtins.ValueError"}},
		{"failure without error text", RunOutput{Stdout: []byte(`{"success": false, "error": null, "exception_type": 5}`)},
			want{kind: Failed, msg: "Task failed (the result line has no error message)", exc: ""}},
		{"failure with non-string error", RunOutput{Stdout: []byte(`{"success": false, "error": {"code": 2}}`)},
			want{kind: Failed, msg: `{"code": 2}`}},
		{"object without success is a failure", RunOutput{Stdout: []byte(`{"status": "ok"}`)},
			want{kind: Failed, msg: "Task failed"}},
		{"non-JSON last line: the whole output is the result", RunOutput{Stdout: []byte("a\n" + envOK + "\ndone\n")},
			want{kind: Succeeded, result: string(pyjson.EncodeBytes([]byte("a\n" + envOK + "\ndone\n")))}},
		{"JSON that is not an object is not an envelope", RunOutput{Stdout: []byte("[1, 2]\n")},
			want{kind: Succeeded, result: `"[1, 2]\n"`}},
		{"empty output", RunOutput{}, want{kind: Failed, msg: "entrypoint exited with status 0 but printed nothing", exc: ExcRunnerFailed}},
		{"whitespace only", RunOutput{Stdout: []byte(" \n\t\n")}, want{kind: Failed, msg: "entrypoint exited with status 0 but printed only whitespace", exc: ExcRunnerFailed}},
		{"non-zero exit without envelope", RunOutput{Stdout: []byte("partial"), Stderr: []byte("Traceback...\nSystemExit: bad payload\n"), ExitCode: 2},
			want{kind: Failed, msg: "entrypoint exited with status 2 without printing a result line: SystemExit: bad payload", exc: ExcRunnerFailed, tb: "--- stderr ---\nTraceback"}},
		{"killed", RunOutput{Signal: "killed", ExitCode: -1}, want{kind: Failed, msg: "entrypoint was killed by signal killed without printing a result line", exc: ExcRunnerFailed}},
		{"could not start", RunOutput{Err: errors.New(`exec: "nope": executable file not found in $PATH`)},
			want{kind: Failed, msg: `could not run the entrypoint: exec: "nope": executable file not found in $PATH`, exc: ExcRunnerFailed}},
		{"truncated, envelope in the tail", RunOutput{Stdout: []byte("xxxx\n" + envOK + "\n"), StdoutTruncated: true},
			want{kind: Succeeded, result: `[5, {"b": 1e+16, "a": "\u00e9"}]`}},
		{"truncated, last line cut", RunOutput{Stdout: []byte(`xxxxxxxx"}`), StdoutTruncated: true, StdoutDigest: &Digest{"ab", 1}},
			want{kind: Failed, msg: "the entrypoint's last output line is longer than the 10 bytes kept", exc: ExcRunnerFailed}},
		{"truncated, non-JSON last line: digest of the whole output", RunOutput{Stdout: []byte("..\nnot json\n"), StdoutTruncated: true, StdoutDigest: &Digest{strings.Repeat("c", 64), 5 << 20}},
			want{kind: Succeeded}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Interpret(c.run)
			if got.Kind != c.want.kind {
				t.Fatalf("kind %v, want %v (%+v)", got.Kind, c.want.kind, got)
			}
			switch got.Kind {
			case Succeeded:
				if c.run.StdoutDigest != nil && !strings.Contains(c.name, "envelope") {
					if got.Result.JSON != nil || got.Result.SHA256 != c.run.StdoutDigest.SHA256 || got.Result.Bytes != c.run.StdoutDigest.Bytes {
						t.Fatalf("result %+v, want the digest %+v", got.Result, c.run.StdoutDigest)
					}
					return
				}
				if string(got.Result.JSON) != c.want.result {
					t.Fatalf("result %s, want %s", got.Result.JSON, c.want.result)
				}
			case Failed:
				f := got.Failure
				if !strings.HasPrefix(f.Message, c.want.msg) || f.ExceptionType != c.want.exc || !strings.Contains(f.Traceback, c.want.tb) || f.Permanent {
					t.Fatalf("failure %+v, want message %q, type %q, traceback containing %q", f, c.want.msg, c.want.exc, c.want.tb)
				}
			}
		})
	}
}

func TestJobFailed(t *testing.T) {
	o := JobFailed("", []byte("Traceback\nOOM\n"))
	if o.Kind != Failed || o.Failure.Message != "Ray job failed" || o.Failure.ExceptionType != "RayJobFailed" || o.Failure.Traceback != "Traceback\nOOM\n" {
		t.Fatalf("%+v", o)
	}
	if o := JobFailed("Job entrypoint command failed with exit code 1", nil); o.Failure.Message != "Job entrypoint command failed with exit code 1" {
		t.Fatalf("%+v", o)
	}
}

func TestPolicy(t *testing.T) {
	p := Policy{MaxAttempts: 3, Backoff: 60 * time.Second, Denylist: []string{"ValueError", "myapp.NoRetry", "TaskLost"}}
	cases := []struct {
		attempt int32
		exc     string
		retry   bool
		delay   time.Duration
		reason  string
	}{
		{1, "builtins.KeyError", true, 120 * time.Second, ""},
		{2, "builtins.KeyError", true, 240 * time.Second, ""},
		{3, "builtins.KeyError", false, 0, "max attempts (3) reached"},
		{9, "", false, 0, "max attempts (3) reached"},
		{1, "builtins.ValueError", false, 0, `exception type "builtins.ValueError" matched denylist entry "ValueError"`},
		{1, "ValueError", false, 0, `matched denylist entry "ValueError"`},
		{1, "other.ValueError", false, 0, `matched denylist entry "ValueError"`},
		{1, "myapp.NoRetry", false, 0, `matched denylist entry "myapp.NoRetry"`},
		{1, "NoRetry", false, 0, `matched denylist entry "myapp.NoRetry"`},
		{1, "TaskLost", false, 0, `matched denylist entry "TaskLost"`},
		{1, "RayJobFailed", true, 120 * time.Second, ""},
		{1, "", true, 120 * time.Second, ""},
		{1, "  ", true, 120 * time.Second, ""},
	}
	for _, c := range cases {
		d := p.Decide(c.attempt, c.exc)
		if d.Retry != c.retry || d.Delay != c.delay || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("Decide(%d, %q) = %+v, want retry %v delay %s reason %q", c.attempt, c.exc, d, c.retry, c.delay, c.reason)
		}
	}
	delays := map[int32]time.Duration{0: 60 * time.Second, 1: 120 * time.Second, 5: 1920 * time.Second, 6: time.Hour, 60: time.Hour, 1 << 30: time.Hour}
	for attempt, want := range delays {
		if got := p.Delay(attempt); got != want {
			t.Errorf("Delay(%d) = %s, want %s", attempt, got, want)
		}
	}
	if got := (Policy{MaxAttempts: 5}).Delay(3); got != 0 {
		t.Errorf("zero backoff: %s", got)
	}
	big := Policy{MaxAttempts: 100, Backoff: 2 * time.Hour}
	if got := big.Delay(1); got != time.Hour {
		t.Errorf("base above the cap: %s", got)
	}
}

func TestResultsPlace(t *testing.T) {
	dir := t.TempDir()
	text := []byte(`"` + strings.Repeat("x", 100) + `"`) // 102 bytes
	sum := digestHex(text)
	fsb := FilesystemBackend{Root: dir}
	blocked := filepath.Join(dir, "file")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		rs        Results
		r         Result
		inline    bool
		ref       string
		fallback  bool
		wantFile  bool
		wantBytes int64
	}{
		{"fits exactly", Results{MaxInline: 102}, Result{JSON: text}, true, "", false, false, 102},
		{"one byte over: digest", Results{MaxInline: 101}, Result{JSON: text}, false, "oversize://sha256/" + sum + "?bytes=102", false, false, 102},
		{"filesystem", Results{MaxInline: 101, Backend: fsb}, Result{JSON: text}, false,
			"resultfs://sha256/" + sum + "?rel=" + sum[:2] + "/" + sum[2:4] + "/" + sum + ".json&bytes=102", false, true, 102},
		{"filesystem error falls back to digest", Results{MaxInline: 101, Backend: FilesystemBackend{Root: blocked}}, Result{JSON: text}, false,
			"oversize://sha256/" + sum + "?bytes=102", true, false, 102},
		{"digest-only result", Results{MaxInline: 10}, Result{SHA256: sum, Bytes: 102}, false, "oversize://sha256/" + sum + "?bytes=102", false, false, 102},
		{"digest-only result cannot go to the filesystem", Results{MaxInline: 10, Backend: fsb}, Result{SHA256: sum, Bytes: 102}, false,
			"oversize://sha256/" + sum + "?bytes=102", true, false, 102},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := c.rs.Place(t.Context(), c.r)
			if st.Inline != c.inline || st.Bytes != c.wantBytes || (st.Fallback != nil) != c.fallback {
				t.Fatalf("%+v", st)
			}
			if c.inline {
				if st.Row.Data == nil || *st.Row.Data != string(text) || st.Row.Reference != nil {
					t.Fatalf("row %+v", st.Row)
				}
				return
			}
			if st.Row.Data != nil || st.Row.Reference == nil || *st.Row.Reference != c.ref || st.Reference != c.ref {
				t.Fatalf("row %+v, want reference %s", st.Row, c.ref)
			}
			if c.wantFile {
				got, err := fsb.Load(sum)
				if err != nil || string(got) != string(text) {
					t.Fatalf("stored file: %q, %v", got, err)
				}
			}
		})
	}
	// a second store of the same content keeps the existing file (content-addressed)
	path := filepath.Join(dir, sum[:2], sum[2:4], sum+".json")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := fsb.Store(t.Context(), text); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || !fi.ModTime().Equal(old) {
		t.Fatalf("existing file rewritten: %v %v", fi, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, sum[:2], sum[2:4], "*.tmp-*")); len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}
