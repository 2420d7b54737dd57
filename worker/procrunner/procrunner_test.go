package procrunner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/pyjson"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/procgroup"
	"github.com/rayctl/rayctl/worker/workertest"
)

// TestMain lets this test binary act as procgroup's supervisor (the runner re-executes it).
func TestMain(m *testing.M) {
	procgroup.Main()
	goleak.VerifyTestMain(m)
}

var nextID int64

func task(callable, args, kwargs string) store.Task {
	nextID++
	return store.Task{ID: nextID, CallablePath: "tests.tasks." + callable, ArgsJSON: args, KwargsJSON: kwargs, AttemptNumber: 1, State: store.StateRunning}
}

func newRunner(t *testing.T, mod func(*Config)) *Runner {
	t.Helper()
	cfg := Config{Entrypoint: workertest.Entrypoint(t), KillGrace: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	workertest.CloseAtEnd(t, r, 10*time.Second)
	return r
}

// run starts a task and waits for its outcome through Events and Poll, as the loop does.
func run(t *testing.T, r *Runner, tk store.Task) lifecycle.Outcome {
	t.Helper()
	if err := r.Start(t.Context(), tk); err != nil {
		t.Fatalf("start: %v", err)
	}
	return wait(t, r, tk)
}

func wait(t *testing.T, r *Runner, tk store.Task) lifecycle.Outcome {
	t.Helper()
	return workertest.WaitDone(t, r, tk, 60*time.Second).Outcome
}

func TestOutcomes(t *testing.T) {
	r := newRunner(t, nil)
	cases := []struct {
		name     string
		task     store.Task
		kind     lifecycle.Kind
		result   string // Succeeded
		msg      string // Failed: message prefix
		exc      string
		traceTxt string
	}{
		{"args and kwargs", task("echo", `[1, "two", 3.5e16]`, `{"k": [true, null], "\u00e9": 1e-05}`), lifecycle.Succeeded,
			`{"args": [1, "two", 3.5e+16], "kwargs": {"k": [true, null], "\u00e9": 1e-05}}`, "", "", ""},
		{"app exception", task("fail", `["bad input"]`, `{}`), lifecycle.Failed, "", "bad input", "builtins.ValueError", "ValueError: bad input"},
		{"custom exception", task("no_retry", `[]`, `{}`), lifecycle.Failed, "", "do not retry", "tests.tasks.NoRetryError", "NoRetryError"},
		{"unknown callable", task("nope", `[]`, `{}`), lifecycle.Failed, "", "No module named 'tests.tasks.nope'", "builtins.ModuleNotFoundError", ""},
		{"non-JSON last line", task("non_json_last", `["all done"]`, `{}`), lifecycle.Succeeded,
			string(pyjson.EncodeBytes([]byte(`{"success": true, "result": "ignored", "error": null, "traceback": null, "exception_type": null}` + "\nall done\n"))), "", "", ""},
		{"empty output", task("silent", `[]`, `{}`), lifecycle.Failed, "", "entrypoint exited with status 0 but printed nothing", "RayJobFailed", ""},
		{"non-zero exit", task("exit", `[7, "fatal: disk full"]`, `{}`), lifecycle.Failed, "",
			"entrypoint exited with status 7 without printing a result line: fatal: disk full", "RayJobFailed", "--- stderr ---\nfatal: disk full"},
		{"payload rejected", store.Task{ID: 9001, CallablePath: "not a path!", ArgsJSON: "[]", KwargsJSON: "{}"}, lifecycle.Failed, "",
			"entrypoint exited with status 2 without printing a result line: error: invalid payload: callable_path 'not a path!' is not a dotted path", "RayJobFailed", "usage:"},
		{"runtime env vars", task("env", `["DJANGO_RAY_TEST_VAR"]`, `{}`), lifecycle.Succeeded, `"from runtime_env"`, "", "", ""},
	}
	r.cfg.Env = map[string]string{"DJANGO_RAY_TEST_VAR": "from runtime_env"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := run(t, r, c.task)
			if o.Kind != c.kind {
				t.Fatalf("kind %v, want %v: %+v", o.Kind, c.kind, o)
			}
			if c.kind == lifecycle.Succeeded && string(o.Result.JSON) != c.result {
				t.Fatalf("result %s, want %s", o.Result.JSON, c.result)
			}
			if c.kind == lifecycle.Failed {
				f := o.Failure
				if !strings.HasPrefix(f.Message, c.msg) || f.ExceptionType != c.exc || !strings.Contains(f.Traceback, c.traceTxt) {
					t.Fatalf("failure %+v\nwant message %q, type %q, traceback with %q", f, c.msg, c.exc, c.traceTxt)
				}
			}
			r.Forget(c.task)
		})
	}
}

func TestStartFailures(t *testing.T) {
	cases := []struct {
		name      string
		entry     []string
		task      store.Task
		msg       string
		permanent bool
	}{
		{"entrypoint does not exist", []string{"/nonexistent/python-for-rayworker"}, task("add", `[]`, `{}`),
			`could not run the entrypoint: fork/exec /nonexistent/python-for-rayworker: no such file or directory`, false},
		{"malformed args_json", nil, task("add", `[1, 2`, `{}`), "invalid task row: args_json is not valid JSON", true},
		{"kwargs not an object", nil, task("add", `[]`, `[]`), "invalid task row: kwargs_json is not a JSON object", true},
		{"payload too large", nil, task("echo", `["`+strings.Repeat("a", 120000)+`"]`, `{}`), "invalid task row: the payload is ", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRunner(t, func(cfg *Config) {
				if c.entry != nil {
					cfg.Entrypoint = c.entry
				}
			})
			err := r.Start(t.Context(), c.task)
			var fe *lifecycle.FailureError
			if !errors.As(err, &fe) {
				t.Fatalf("Start = %v, want a FailureError", err)
			}
			if !strings.HasPrefix(fe.Failure.Message, c.msg) || fe.Failure.Permanent != c.permanent {
				t.Fatalf("%+v, want %q permanent=%v", fe.Failure, c.msg, c.permanent)
			}
			if st, _ := r.Poll(t.Context(), []store.Task{c.task}); st[0].Phase != worker.Unknown {
				t.Fatalf("a task that did not start is %v", st[0].Phase)
			}
		})
	}
}

// TestHugeOutputBoundedMemory: a task printing far more than MaxStdout is read to the end
// with bounded memory, and its result line is still found.
func TestHugeOutputBoundedMemory(t *testing.T) {
	r := newRunner(t, func(c *Config) { c.MaxStdout = 1 << 20 })
	const spewed = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tk := task("spew", fmt.Sprint("[", spewed, "]"), `{}`)
	o := run(t, r, tk)
	runtime.ReadMemStats(&after)
	if o.Kind != lifecycle.Succeeded || string(o.Result.JSON) != `"spewed"` {
		t.Fatalf("%+v", o)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Fatalf("reading %d MiB of output allocated %d MiB", spewed>>20, alloc>>20)
	}
	out, err := r.Output(t.Context(), tk, 200)
	if err != nil || len(out) != 200 || !strings.HasSuffix(string(out), `"exception_type": null}`+"\n") {
		t.Fatalf("output tail %q, %v", out, err)
	}
}

// TestHugeOutputWithoutResultLine: django-ray stores the whole output as the result when the
// last line is not JSON; when the output did not fit, the result is its digest, exactly the
// one Python's json.dumps of the whole text would have.
func TestHugeOutputWithoutResultLine(t *testing.T) {
	r := newRunner(t, func(c *Config) { c.MaxStdout = 64 << 10 })
	const n = 3<<20 + 17
	o := run(t, r, task("spew_text", fmt.Sprint("[", n, "]"), `{}`))
	// the filler: lines of 99 "y" and a newline; the last, shorter one also ends in a newline
	line := strings.Repeat("y", 99) + "\n"
	whole := []byte(strings.Repeat(line, n/100) + strings.Repeat("y", n%100-1) + "\n")
	want := sha256.Sum256(pyjson.EncodeBytes(whole))
	if o.Kind != lifecycle.Succeeded || o.Result.JSON != nil || o.Result.SHA256 != hex.EncodeToString(want[:]) ||
		o.Result.Bytes != int64(len(pyjson.EncodeBytes(whole))) {
		t.Fatalf("%+v", o)
	}

	o = run(t, r, task("long_line", fmt.Sprint("[", 100<<10, "]"), `{}`))
	if o.Kind != lifecycle.Failed || !strings.Contains(o.Failure.Message, "last output line is longer than the 65536 bytes kept") {
		t.Fatalf("%+v", o)
	}
}

func TestCancelKillsTheProcessGroup(t *testing.T) {
	r := newRunner(t, nil)
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pids")
	tk := task("spawn_sleep", fmt.Sprintf(`[60, %q]`, pidfile), `{}`)
	if err := r.Start(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	pids := workertest.ReadPIDs(t, pidfile)
	if len(pids) != 2 {
		t.Fatalf("pids %v", pids)
	}
	if err := r.Cancel(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	if o := wait(t, r, tk); o.Kind != lifecycle.Cancelled {
		t.Fatalf("%+v", o)
	}
	workertest.WaitGone(t, 10*time.Second, pids...)
	if err := r.Cancel(t.Context(), tk); err != nil { // a finished one: no error
		t.Fatal(err)
	}
	r.Forget(tk)
	if err := r.Cancel(t.Context(), tk); err != nil { // an unknown one: no error
		t.Fatal(err)
	}
}

func TestCancelEscalatesToSIGKILL(t *testing.T) {
	r := newRunner(t, func(c *Config) { c.KillGrace = 300 * time.Millisecond })
	pidfile := filepath.Join(t.TempDir(), "pid")
	tk := task("ignore_term", fmt.Sprintf(`[60, %q]`, pidfile), `{}`)
	if err := r.Start(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	pids := workertest.ReadPIDs(t, pidfile)
	if err := r.Cancel(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	if o := wait(t, r, tk); o.Kind != lifecycle.Cancelled {
		t.Fatalf("%+v", o)
	}
	workertest.WaitGone(t, 10*time.Second, pids...)
}

func TestLeftoverChildrenAreKilled(t *testing.T) {
	r := newRunner(t, nil)
	pidfile := filepath.Join(t.TempDir(), "pid")
	o := run(t, r, task("orphan", fmt.Sprintf(`[%q]`, pidfile), `{}`))
	if o.Kind != lifecycle.Succeeded {
		t.Fatalf("%+v", o)
	}
	workertest.WaitGone(t, 10*time.Second, workertest.ReadPIDs(t, pidfile)...)
}

func TestCloseStopsRunningProcesses(t *testing.T) {
	r, err := New(Config{Entrypoint: workertest.Entrypoint(t)})
	if err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(t.TempDir(), "pid")
	if err := r.Start(t.Context(), task("sleep", fmt.Sprintf(`[60, %q]`, pidfile), `{}`)); err != nil {
		t.Fatal(err)
	}
	pids := workertest.ReadPIDs(t, pidfile)
	if r.Running() != 1 {
		t.Fatalf("running %d", r.Running())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	workertest.WaitGone(t, 5*time.Second, pids...)
}

func TestSplitCommand(t *testing.T) {
	cases := map[string][]string{
		"python -m django_ray.runtime.entrypoint": {"python", "-m", "django_ray.runtime.entrypoint"},
		`  /opt/venv/bin/python   -m  x  `:        {"/opt/venv/bin/python", "-m", "x"},
		`"/path with space/python" -X 'a b'`:      {"/path with space/python", "-X", "a b"},
		`a\ b "c\"d" 'e\f' "$HOME"`:               {"a b", `c"d`, `e\f`, "$HOME"},
		`x "" ''`:                                 {"x", "", ""},
	}
	for in, want := range cases {
		got, err := SplitCommand(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "   ", `python "unterminated`, `python 'x`} {
		if got, err := SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q) = %q, want an error", bad, got)
		}
	}
}

// TestCapture checks the bounded capture against keeping everything: the kept bytes are always
// the last max bytes, and the digest of the whole stream matches json.dumps of all of it.
func TestCapture(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab\n\"\\\x00\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff")
	for iter := 0; iter < 300; iter++ {
		max := 1 + rng.IntN(64)
		tl := NewCapture(max, true)
		var all []byte
		for w := rng.IntN(20); w > 0; w-- {
			p := make([]byte, rng.IntN(3*max))
			for i := range p {
				p[i] = alphabet[rng.IntN(len(alphabet))]
			}
			if n, err := tl.Write(p); n != len(p) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			all = append(all, p...)
			if tl.Len() > max {
				t.Fatalf("keeping %d bytes, max %d", tl.Len(), max)
			}
			if held := tl.held(); held > max+2*tl.chunk {
				t.Fatalf("holding %d bytes of chunks for at most %d kept (chunk %d)", held, max, tl.chunk)
			}
		}
		got, truncated := tl.Bytes()
		parts, _ := tl.Parts()
		if joined := bytes.Join(parts, nil); !bytes.Equal(joined, got) {
			t.Fatalf("Parts %q, Bytes %q", joined, got)
		}
		for n := 0; n <= len(got)+1; n++ {
			if last, want := tl.Last(n), got[len(got)-min(n, len(got)):]; !bytes.Equal(last, want) {
				t.Fatalf("Last(%d) = %q, want %q", n, last, want)
			}
		}
		want := all
		if len(all) > max {
			want = all[len(all)-max:]
		}
		if !bytes.Equal(got, want) || truncated != (len(all) > max) {
			t.Fatalf("max %d, wrote %q: kept %q (truncated %v), want %q", max, all, got, truncated, want)
		}
		d := tl.Digest()
		if !truncated {
			if d != nil {
				t.Fatal("digest computed for output that fit")
			}
			continue
		}
		text := pyjson.EncodeBytes(all)
		sum := sha256.Sum256(text)
		if d == nil || d.SHA256 != hex.EncodeToString(sum[:]) || d.Bytes != int64(len(text)) {
			t.Fatalf("digest %+v, want %x %d", d, sum, len(text))
		}
	}
}
