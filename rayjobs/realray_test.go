package rayjobs_test

// The real-Ray tier: these tests submit the real django-ray 0.2.0 entrypoint to a real Ray
// head (scripts/ray.sh starts one; scripts/test.sh does it for a full run). They need
// RAY_ADDRESS (the Jobs API URL) and RAYCTL_PYTHON (the venv's python, from scripts/pyenv.sh);
// RAYCTL_PYTHONPATH (default: this repo's python/ dir) is put in each job's runtime_env so the
// entrypoint can import the test tasks and their Django settings. Without RAY_ADDRESS they
// skip, except under CI=true, where they fail.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
)

type realRay struct {
	c          *rayjobs.Client
	python     string
	pythonPath string
}

func needRealRay(t *testing.T) realRay {
	r := raytest.NeedRealRay(t, "rayctl/realray-test")
	return realRay{c: r.Client, python: r.Python, pythonPath: r.PythonPath}
}

// payloadB64 encodes a task the way django-ray 0.2.0's RayJobRunner does: compact JSON of
// {callable_path, serialized_args, serialized_kwargs} (the two inner values are JSON text made
// with Python's default separators), URL-safe base64 with padding. For ASCII input the bytes
// are Python's; Python's json.dumps also escapes non-ASCII as \uXXXX, which Go does not.
func payloadB64(callable, args, kwargs string) string {
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		CallablePath     string `json:"callable_path"`
		SerializedArgs   string `json:"serialized_args"`
		SerializedKwargs string `json:"serialized_kwargs"`
	}{callable, args, kwargs})
	return base64.URLEncoding.EncodeToString([]byte(strings.TrimSuffix(buf.String(), "\n")))
}

func (r realRay) request(id, callable, args, kwargs string) rayjobs.SubmitRequest {
	return rayjobs.SubmitRequest{
		Entrypoint:   "python -m django_ray.runtime.entrypoint --payload-b64 " + payloadB64(callable, args, kwargs),
		SubmissionID: id,
		RuntimeEnv: map[string]any{"env_vars": map[string]string{
			"DJANGO_SETTINGS_MODULE": "rayctl_testapp.settings",
			"PYTHONPATH":             r.pythonPath,
		}},
		Metadata: map[string]string{"django_ray_task_id": "1", "callable_path": callable},
	}
}

// newID is a fresh submission id in the 0.2.0-adoptable raysubmit_ namespace.
func newID(t *testing.T, tag string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "raysubmit_rayctl_" + tag + "_" + hex.EncodeToString(b[:])
}

// waitFor polls Get until done(job) or the deadline, and returns the last job seen.
func waitFor(t *testing.T, c *rayjobs.Client, id string, timeout time.Duration, done func(*rayjobs.JobDetails) bool) *rayjobs.JobDetails {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j, err := c.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("Get %s: %v", id, err)
		}
		if done(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s: %s", id, j.Status, timeout, j.Message)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func terminal(j *rayjobs.JobDetails) bool { return j.Status.Terminal() }

type envelope struct {
	Success       bool            `json:"success"`
	Result        json.RawMessage `json:"result"`
	Error         *string         `json:"error"`
	Traceback     *string         `json:"traceback"`
	ExceptionType *string         `json:"exception_type"`
}

func TestRealRayPayloadMatchesPython(t *testing.T) {
	r := needRealRay(t)
	// The same bytes django-ray 0.2.0 builds in Python (ASCII arguments; Python's json.dumps
	// escapes non-ASCII, Go's does not, which the worker's encoder must handle).
	script := `import base64, json, sys
print(base64.urlsafe_b64encode(json.dumps({"callable_path": sys.argv[1], "serialized_args": json.dumps([2, 3]), "serialized_kwargs": json.dumps({"a": "b<&>"})}, separators=(",", ":")).encode()).decode())`
	out, err := exec.Command(r.python, "-c", script, "rayctl_testapp.tasks.add").Output()
	if err != nil {
		t.Fatalf("%s: %v", r.python, err)
	}
	goB64 := payloadB64("rayctl_testapp.tasks.add", `[2, 3]`, `{"a": "b<&>"}`)
	if py := strings.TrimSpace(string(out)); py != goB64 {
		t.Errorf("payload differs from django-ray's:\npython: %s\ngo:     %s", py, goB64)
	}
}

func TestRealRayVersionAndHealth(t *testing.T) {
	r := needRealRay(t)
	ctx := t.Context()
	if err := r.c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	v, err := r.c.Version(ctx)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	t.Logf("Ray %s, Jobs API version %s, session %s", v.RayVersion, v.Version, v.SessionName)
	if v.RayVersion == "" || v.Version == "" || v.SessionName == "" || !v.RayAtLeast(2, 8) {
		t.Errorf("version = %+v", v)
	}
}

// TestRealRayEntrypoint runs the real django-ray 0.2.0 entrypoint for each kind of task and
// reads the result from the last log line, as a 0.2.0 worker does.
func TestRealRayEntrypoint(t *testing.T) {
	r := needRealRay(t)
	oversize := 2<<20 + 17 // over django-ray's 1 MiB inline limit
	tests := []struct {
		name, callable, args, kwargs string
		check                        func(t *testing.T, e envelope)
	}{
		{"add", "rayctl_testapp.tasks.add", `[2, 3]`, `{}`, func(t *testing.T, e envelope) {
			if !e.Success || string(e.Result) != "5" || e.Error != nil || e.ExceptionType != nil {
				t.Errorf("envelope %+v", e)
			}
		}},
		{"echo kwargs", "rayctl_testapp.tasks.echo", `[]`, `{"x": 1, "s": "caf\u00e9", "l": [1, null]}`, func(t *testing.T, e envelope) {
			var got map[string]any
			if err := json.Unmarshal(e.Result, &got); err != nil || !e.Success || got["s"] != "café" || got["x"] != 1.0 {
				t.Errorf("envelope %+v (%v)", e, err)
			}
		}},
		{"noise before the result", "rayctl_testapp.tasks.noisy", `[]`, `{"lines": 50, "value": "done"}`, func(t *testing.T, e envelope) {
			if !e.Success || string(e.Result) != `"done"` {
				t.Errorf("envelope %+v", e)
			}
		}},
		{"ValueError", "rayctl_testapp.tasks.fail_value", `["bad input"]`, `{}`, func(t *testing.T, e envelope) {
			if e.Success || e.ExceptionType == nil || *e.ExceptionType != "builtins.ValueError" || e.Error == nil || *e.Error != "bad input" || e.Traceback == nil || !strings.Contains(*e.Traceback, "ValueError: bad input") {
				t.Errorf("envelope %+v", e)
			}
		}},
		{"custom non-retryable error", "rayctl_testapp.tasks.fail_custom", `[]`, `{}`, func(t *testing.T, e envelope) {
			if e.Success || e.ExceptionType == nil || *e.ExceptionType != "rayctl_testapp.tasks.NonRetryableError" {
				t.Errorf("envelope %+v", e)
			}
		}},
		{"unknown callable", "rayctl_testapp.tasks.nope", `[]`, `{}`, func(t *testing.T, e envelope) {
			if e.Success || e.ExceptionType == nil || *e.ExceptionType != "builtins.AttributeError" {
				t.Errorf("envelope %+v", e)
			}
		}},
		{"oversize result", "rayctl_testapp.tasks.oversize", `[` + jsonInt(oversize) + `]`, `{}`, func(t *testing.T, e envelope) {
			var s string
			if err := json.Unmarshal(e.Result, &s); err != nil || !e.Success || len(s) != oversize {
				t.Errorf("result of %d bytes, success %v (%v); want %d", len(s), e.Success, err, oversize)
			}
		}},
	}
	ctx := t.Context()
	ids := make([]string, len(tests))
	for i, tt := range tests { // submit all first: Ray runs them side by side
		ids[i] = newID(t, "ep")
		if _, err := r.c.Submit(ctx, r.request(ids[i], tt.callable, tt.args, tt.kwargs)); err != nil {
			t.Fatalf("Submit %s: %v", tt.name, err)
		}
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := waitFor(t, r.c, ids[i], 3*time.Minute, terminal)
			// The entrypoint prints a failure envelope and exits 0: the job SUCCEEDS.
			if j.Status != rayjobs.StatusSucceeded || j.DriverExitCode == nil || *j.DriverExitCode != 0 {
				t.Fatalf("job %s: %s exit %v: %s", ids[i], j.Status, j.DriverExitCode, j.Message)
			}
			if j.Metadata["callable_path"] != tt.callable || j.StartTime.IsZero() || j.EndTime.Before(j.StartTime) {
				t.Errorf("job details %+v", j)
			}
			logs, err := r.c.Logs(ctx, ids[i])
			if err != nil {
				t.Fatal(err)
			}
			line, complete := logs.LastLine()
			if !complete {
				t.Fatalf("last line cut by the %d-byte limit", rayjobs.DefaultMaxLogBytes)
			}
			var e envelope
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("last line is not the JSON envelope: %v\n%.300s", err, logs.Text)
			}
			tt.check(t, e)
		})
	}
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestRealRayEntrypointFailure(t *testing.T) {
	r := needRealRay(t)
	ctx := t.Context()
	id := newID(t, "exit")
	req := r.request(id, "x.y", `[]`, `{}`)
	req.Entrypoint = "python -c 'import sys; print(\"about to fail\"); sys.exit(3)'"
	if _, err := r.c.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	j := waitFor(t, r.c, id, 3*time.Minute, terminal)
	t.Logf("failed job: status=%s error_type=%s message=%q", j.Status, j.ErrorType, j.Message)
	if j.Status != rayjobs.StatusFailed || j.ErrorType != "JOB_ENTRYPOINT_COMMAND_ERROR" || j.DriverExitCode == nil || *j.DriverExitCode != 3 {
		t.Errorf("job %+v", j)
	}
	if !strings.Contains(j.Message, "exit code 3") || !strings.Contains(j.Message, "about to fail") {
		t.Errorf("message %q lacks the exit code or log tail", j.Message)
	}
}

func TestRealRayStop(t *testing.T) {
	r := needRealRay(t)
	ctx := t.Context()
	id := newID(t, "stop")
	if _, err := r.c.Submit(ctx, r.request(id, "rayctl_testapp.tasks.sleep", `[600]`, `{}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.c, id, 3*time.Minute, func(j *rayjobs.JobDetails) bool { return j.Status == rayjobs.StatusRunning })
	start := time.Now()
	stopped, err := r.c.Stop(ctx, id)
	if err != nil || !stopped {
		t.Fatalf("Stop = %v, %v; want true", stopped, err)
	}
	j := waitFor(t, r.c, id, time.Minute, terminal)
	t.Logf("RUNNING -> %s %s after stop: message %q, exit %v", j.Status, time.Since(start).Round(time.Millisecond), j.Message, j.DriverExitCode)
	if j.Status != rayjobs.StatusStopped {
		t.Errorf("status %s after stop, want STOPPED", j.Status)
	}
	// Stopping a stopped job is not an error. Its answer is Ray's timing, not a contract: false
	// once the job's supervisor actor is gone, true while it still lingers (seen 146 ms after
	// the job turned STOPPED on a loaded machine).
	if again, err := r.c.Stop(ctx, id); err != nil {
		t.Errorf("second Stop = %v, %v; want no error", again, err)
	}
	if _, err := r.c.Delete(ctx, id); err != nil {
		t.Errorf("Delete stopped job: %v", err)
	}
}

func TestRealRayDuplicateSubmissionID(t *testing.T) {
	r := needRealRay(t)
	ctx := t.Context()
	id := newID(t, "dup")
	req := r.request(id, "rayctl_testapp.tasks.add", `[1, 1]`, `{}`)
	if _, err := r.c.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	got, err := r.c.Submit(ctx, req)
	if !errors.Is(err, rayjobs.ErrAlreadySubmitted) || got != id {
		t.Fatalf("second Submit = %q, %v; want %q, ErrAlreadySubmitted", got, err, id)
	}
	var e *rayjobs.Error
	errors.As(err, &e)
	t.Logf("Ray %s answers a duplicate id with HTTP %d: %s", "2.60", e.Status, e.Message)
	if e.Status != 500 && e.Status != 400 {
		t.Errorf("status %d", e.Status)
	}
	j := waitFor(t, r.c, id, 3*time.Minute, terminal)
	logs, err := r.c.Logs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.Text, "Running entrypoint for job "+id); j.Status != rayjobs.StatusSucceeded || n != 1 {
		t.Errorf("status %s, %d runs in the log; want SUCCEEDED and exactly one run", j.Status, n)
	}
	// Also while it runs: a duplicate of a RUNNING job is refused the same way.
	id2 := newID(t, "dup2")
	req2 := r.request(id2, "rayctl_testapp.tasks.sleep", `[30]`, `{}`)
	if _, err := r.c.Submit(ctx, req2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.c, id2, 3*time.Minute, func(j *rayjobs.JobDetails) bool { return j.Status == rayjobs.StatusRunning })
	if _, err := r.c.Submit(ctx, req2); !errors.Is(err, rayjobs.ErrAlreadySubmitted) {
		t.Errorf("duplicate of a running job: %v", err)
	}
	if _, err := r.c.Delete(ctx, id2); !errors.Is(err, rayjobs.ErrNotTerminal) {
		t.Errorf("Delete running job: %v, want ErrNotTerminal", err)
	}
	if _, err := r.c.Stop(ctx, id2); err != nil {
		t.Error(err)
	}
}

func TestRealRayUnknownJob(t *testing.T) {
	r := needRealRay(t)
	ctx := t.Context()
	id := newID(t, "missing")
	calls := map[string]func() error{
		"get":    func() error { _, err := r.c.Get(ctx, id); return err },
		"stop":   func() error { _, err := r.c.Stop(ctx, id); return err },
		"logs":   func() error { _, err := r.c.Logs(ctx, id); return err },
		"delete": func() error { _, err := r.c.Delete(ctx, id); return err },
	}
	for op, call := range calls {
		err := call()
		if !errors.Is(err, rayjobs.ErrNotFound) {
			t.Errorf("%s unknown job: %v, want ErrNotFound", op, err)
			continue
		}
		var e *rayjobs.Error
		errors.As(err, &e)
		if e.Message != "Job "+id+" does not exist" {
			t.Errorf("%s message %q", op, e.Message)
		}
	}
}

func TestRealRayListAndDelete(t *testing.T) {
	r := needRealRay(t)
	ctx := t.Context()
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			id := newID(t, "list")
			if _, err := r.c.Submit(ctx, r.request(id, "rayctl_testapp.tasks.add", `[1, 2]`, `{}`)); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		})
	}
	wg.Wait()
	jobs, err := r.c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, j := range jobs {
		for _, id := range ids {
			if j.SubmissionID == id && j.Type == rayjobs.TypeSubmission && j.Metadata["callable_path"] == "rayctl_testapp.tasks.add" {
				found++
			}
		}
	}
	if found != len(ids) || len(ids) != 3 {
		t.Fatalf("list has %d of our %d jobs (%d jobs in all)", found, len(ids), len(jobs))
	}
	for _, id := range ids {
		waitFor(t, r.c, id, 3*time.Minute, terminal)
		if ok, err := r.c.Delete(ctx, id); err != nil || !ok {
			t.Errorf("Delete %s = %v, %v", id, ok, err)
		}
		if _, err := r.c.Get(ctx, id); !errors.Is(err, rayjobs.ErrNotFound) {
			t.Errorf("Get after delete: %v", err)
		}
	}
}
