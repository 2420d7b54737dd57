package rayrunner_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/rayrunner"
	"github.com/rayctl/rayctl/worker/workertest"
)

// TestSubmissionContract: what reaches Ray is django-ray 0.2.0's job: the entrypoint with the
// payload Python would build (non-ASCII escaped as \uXXXX), the configured runtime_env, the
// metadata, and the submission id the claim wrote; the result comes from the last log line.
func TestSubmissionContract(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t)
	e := newRunner(t, srv, nil, nil)
	e.waitReady()
	tk := task(42, "myapp.tasks.greet", `[2, "zürich"]`, `{"name": "Ωmega", "n": 1.5}`)
	e.start(tk)
	j := e.waitJob(*tk.RayJobID)

	subs := srv.Submissions()
	if len(subs) != 1 || !subs[0].Accepted || subs[0].SubmissionID != *tk.RayJobID {
		t.Fatalf("submissions: %+v", subs)
	}
	wantPayload := `{"callable_path":"myapp.tasks.greet","serialized_args":"[2, \"z\\u00fcrich\"]","serialized_kwargs":"{\"name\": \"\\u03a9mega\", \"n\": 1.5}"}`
	if py := pythonPayload(t, "myapp.tasks.greet", `[2, "zürich"]`, `{"name": "Ωmega", "n": 1.5}`); py != "" && py != wantPayload {
		t.Fatalf("Python builds %s, the test expects %s", py, wantPayload)
	}
	prefix := "python -m django_ray.runtime.entrypoint --payload-b64 "
	if !strings.HasPrefix(j.Entrypoint, prefix) {
		t.Fatalf("entrypoint %q", j.Entrypoint)
	}
	raw, err := base64.URLEncoding.DecodeString(strings.TrimPrefix(j.Entrypoint, prefix))
	if err != nil || string(raw) != wantPayload {
		t.Fatalf("payload %q (%v), want %s", raw, err, wantPayload)
	}
	if want := map[string]string{"django_ray_task_id": "42", "callable_path": "myapp.tasks.greet"}; !reflect.DeepEqual(j.Metadata, want) {
		t.Fatalf("metadata %v", j.Metadata)
	}
	if got, _ := json.Marshal(j.RuntimeEnv); string(got) != `{"env_vars":{"DJANGO_SETTINGS_MODULE":"proj.settings"}}` {
		t.Fatalf("runtime_env %s", got)
	}
	if keys := fieldNames(subs[0].Fields); keys != "entrypoint,metadata,runtime_env,submission_id" {
		t.Fatalf("sent fields %s (only what is set may be sent)", keys)
	}

	if st := e.poll(tk)[0]; st.Phase != worker.Running {
		t.Fatalf("pending job: %+v", st)
	}
	srv.Set(t, *tk.RayJobID, raytest.Succeeded, "", "Running entrypoint for job x\nnoise\n"+envelope(`"hi \u00e9"`)+"\n")
	if got := resultOf(t, e.waitPhase(tk, worker.Done, 10*time.Second)); got != `"hi \u00e9"` {
		t.Fatalf("result %s", got)
	}
	if n := metric(t, e.r, "rayworker_ray_submissions_total", map[string]string{"result": "accepted"}); n != 1 {
		t.Fatalf("accepted submissions metric %v", n)
	}
	if n := metric(t, e.r, "rayworker_ray_submit_duration_seconds", nil); n != 1 {
		t.Fatalf("submit latency samples %v", n)
	}
	if n := srv.Count(raytest.Logs); n != 1 {
		t.Fatalf("logs read %d times, want once (on completion)", n)
	}
}

// pythonPayload returns the payload JSON django-ray 0.2.0's code builds, computed by python3
// when it is available ("" otherwise; the expected text is then taken as written).
func pythonPayload(t *testing.T, callable, args, kwargs string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required (CI=true)")
		}
		return ""
	}
	script := `import json, sys
callable_path, args, kwargs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(json.dumps({"callable_path": callable_path, "serialized_args": json.dumps(list(args)), "serialized_kwargs": json.dumps(kwargs)}, separators=(",", ":")))`
	out, err := exec.Command(py, "-c", script, callable, args, kwargs).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func fieldNames(m map[string]any) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return strings.Join(keys, ",")
}

// TestOutcomes: every terminal status and log shape ends the attempt the 0.2.0 way.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t)
	e := newRunner(t, srv, nil, nil)
	e.waitReady()
	failEnvelope := `{"success": false, "result": null, "error": "bad value", "traceback": "Traceback...\nValueError: bad value\n", "exception_type": "builtins.ValueError"}`
	cases := []struct {
		name   string
		status string
		msg    string
		logs   string
		check  func(t *testing.T, o lifecycle.Outcome)
	}{
		{"success with noise before the result line", raytest.Succeeded, "", "Runtime env is setting up.\n" + `{"success": false}` + "\n" + envelope(`{"a": [1, 2]}`) + "\n",
			func(t *testing.T, o lifecycle.Outcome) {
				if o.Kind != lifecycle.Succeeded || string(o.Result.JSON) != `{"a": [1, 2]}` {
					t.Fatalf("%+v", o)
				}
			}},
		{"app error in a SUCCEEDED job", raytest.Succeeded, "", "x\n" + failEnvelope + "\n",
			func(t *testing.T, o lifecycle.Outcome) {
				if o.Kind != lifecycle.Failed || o.Failure.ExceptionType != "builtins.ValueError" || o.Failure.Message != "bad value" {
					t.Fatalf("%+v", o)
				}
			}},
		{"logs without a JSON line: the whole log is the result (0.2.0)", raytest.Succeeded, "", "hello\nworld\n",
			func(t *testing.T, o lifecycle.Outcome) {
				if o.Kind != lifecycle.Succeeded || string(o.Result.JSON) != `"hello\nworld\n"` {
					t.Fatalf("%+v", o)
				}
			}},
		{"empty log", raytest.Succeeded, "", "",
			func(t *testing.T, o lifecycle.Outcome) {
				if o.Kind != lifecycle.Failed || o.Failure.ExceptionType != lifecycle.ExcRunnerFailed || !strings.Contains(o.Failure.Message, "SUCCEEDED, but entrypoint exited with status 0 but printed nothing") {
					t.Fatalf("%+v", o)
				}
			}},
		{"FAILED: RayJobFailed with Ray's message and the log tail", raytest.Failed,
			"Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\nModuleNotFoundError: No module named 'django_ray'",
			"Traceback (most recent call last):\nModuleNotFoundError: No module named 'django_ray'\n",
			func(t *testing.T, o lifecycle.Outcome) {
				if o.Kind != lifecycle.Failed || o.Failure.ExceptionType != "RayJobFailed" ||
					!strings.HasPrefix(o.Failure.Message, "Job entrypoint command failed with exit code 1") ||
					!strings.Contains(o.Failure.Traceback, "No module named 'django_ray'") {
					t.Fatalf("%+v", o)
				}
			}},
		{"STOPPED from outside: cancelled", raytest.Stopped, "", "",
			func(t *testing.T, o lifecycle.Outcome) {
				if o.Kind != lifecycle.Cancelled {
					t.Fatalf("%+v", o)
				}
			}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk := task(int64(100+i), "myapp.tasks.x", "[]", "{}")
			e.start(tk)
			e.waitJob(*tk.RayJobID)
			srv.Update(t, *tk.RayJobID, func(j *raytest.Job) { j.Status, j.Message, j.Logs = raytest.Running, "", "" })
			if st := e.waitPhase(tk, worker.Running, 5*time.Second); st.Phase != worker.Running {
				t.Fatal(st)
			}
			srv.Update(t, *tk.RayJobID, func(j *raytest.Job) { j.Status, j.Message, j.Logs = c.status, c.msg, c.logs })
			st := e.waitPhase(tk, worker.Done, 10*time.Second)
			c.check(t, st.Outcome)
			// Done is reported until Forget
			if again := e.poll(tk)[0]; again.Phase != worker.Done {
				t.Fatalf("second poll: %+v", again)
			}
			e.r.Forget(tk)
		})
	}
}

// TestHugeLogs: a log of hundreds of megabytes is read as a bounded tail; memory stays flat and
// the result line at its end is found. Without a result line at the end the attempt fails
// instead of storing a truncated text.
func TestHugeLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 512 MiB of log")
	}
	srv := raytest.New(t)
	e := newRunner(t, srv, func(o *rayjobs.Options) { o.MaxLogBytes = 1 << 20; o.LogsTimeout = time.Minute }, nil)
	e.waitReady()
	withResult := task(1, "myapp.tasks.x", "[]", "{}")
	noResult := task(2, "myapp.tasks.x", "[]", "{}")
	e.start(withResult)
	e.start(noResult)
	e.waitJob(*withResult.RayJobID)
	e.waitJob(*noResult.RayJobID)

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	const size = 256 << 20
	srv.Update(t, *withResult.RayJobID, func(j *raytest.Job) {
		j.Status, j.LogStream = raytest.Succeeded, raytest.RepeatLog(size, envelope(`"done"`))
	})
	srv.Update(t, *noResult.RayJobID, func(j *raytest.Job) {
		j.Status, j.LogStream = raytest.Succeeded, raytest.RepeatLog(size, "the task printed no result line")
	})
	okStatus := e.waitPhase(withResult, worker.Done, 2*time.Minute)
	badStatus := e.waitPhase(noResult, worker.Done, 2*time.Minute)
	close(stop)
	<-sampled
	if got := resultOf(t, okStatus); got != `"done"` {
		t.Fatalf("result %s", got)
	}
	if o := badStatus.Outcome; o.Kind != lifecycle.Failed || o.Failure.ExceptionType != "RayJobFailed" || !strings.Contains(o.Failure.Message, "truncated") {
		t.Fatalf("%+v", o)
	}
	if p := peak.Load(); p > 96<<20 {
		t.Fatalf("heap in use peaked at %d MiB reading two %d MiB logs with a 1 MiB tail", p>>20, size>>20)
	}
}

// TestDuplicateSubmissionID: Ray already has the id (a crash after the POST, before anything
// else): the duplicate answer counts as submitted; nothing runs twice.
func TestDuplicateSubmissionID(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusInternalServerError, http.StatusBadRequest} {
		srv := raytest.New(t, raytest.WithDuplicateStatus(code))
		e := newRunner(t, srv, nil, nil)
		e.waitReady()
		tk := task(7, "myapp.tasks.x", "[]", "{}")
		srv.AddJob(raytest.Job{SubmissionID: *tk.RayJobID, Status: raytest.Running, Entrypoint: "python -m django_ray.runtime.entrypoint --payload-b64 x"})
		e.start(tk)
		workertest.Eventually(t, 10*time.Second, "the duplicate answer", func() bool {
			return metric(t, e.r, "rayworker_ray_submissions_total", map[string]string{"result": "duplicate"}) == 1
		})
		if st := e.poll(tk)[0]; st.Phase != worker.Running {
			t.Fatalf("%+v", st)
		}
		srv.Set(t, *tk.RayJobID, raytest.Succeeded, "", envelope("5")+"\n")
		if got := resultOf(t, e.waitPhase(tk, worker.Done, 10*time.Second)); got != "5" {
			t.Fatal(got)
		}
		if acc, posts := accepted(srv, *tk.RayJobID); acc != 0 || posts != 1 || len(srv.Jobs()) != 1 {
			t.Fatalf("HTTP %d: accepted %d, posts %d, jobs %d", code, acc, posts, len(srv.Jobs()))
		}
	}
}

// TestSubmitFaults: a submit that times out, breaks off or answers 500 is never simply sent
// again: the id is looked up first. If Ray has it (the POST went through) nothing more is
// sent; if not, the same id is sent again.
func TestSubmitFaults(t *testing.T) {
	t.Parallel()
	t.Run("timeout, and the POST went through", func(t *testing.T) {
		t.Parallel()
		srv := raytest.New(t)
		e := newRunner(t, srv, func(o *rayjobs.Options) { o.SubmitTimeout = 300 * time.Millisecond }, nil)
		e.waitReady()
		srv.Inject(raytest.Submit, raytest.Fault{Hang: true, Times: 1})
		tk := task(1, "myapp.tasks.x", "[]", "{}")
		e.start(tk)
		workertest.Eventually(t, 5*time.Second, "the POST", func() bool { return srv.Count(raytest.Submit) == 1 })
		// Ray created the job; only the answer is lost.
		srv.AddJob(raytest.Job{SubmissionID: *tk.RayJobID, Status: raytest.Running})
		workertest.Eventually(t, 10*time.Second, "the id to be looked up", func() bool {
			return e.poll(tk)[0].Phase == worker.Running && srv.Count(raytest.Get)+srv.Count(raytest.List) > 0
		})
		srv.Set(t, *tk.RayJobID, raytest.Succeeded, "", envelope("1")+"\n")
		e.waitPhase(tk, worker.Done, 10*time.Second)
		if n := srv.Count(raytest.Submit); n != 1 {
			t.Fatalf("%d POSTs, want 1: the job existed", n)
		}
		assertLookedUpBeforeRepost(t, srv)
	})
	for _, f := range []struct {
		name  string
		fault raytest.Fault
	}{
		{"timeout, and the POST never arrived", raytest.Fault{Hang: true, Times: 2}},
		{"connection dropped", raytest.Fault{Drop: true, Times: 2}},
		{"500 No available agent", raytest.Fault{Status: 500, Body: "No available agent to submit job, please try again later.", Times: 2}},
		{"slow but in time", raytest.Fault{Delay: 150 * time.Millisecond, Times: 2}},
	} {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			srv := raytest.New(t)
			e := newRunner(t, srv, func(o *rayjobs.Options) { o.SubmitTimeout = 300 * time.Millisecond }, nil)
			e.waitReady()
			srv.Inject(raytest.Submit, f.fault)
			tk := task(2, "myapp.tasks.x", "[]", "{}")
			e.start(tk)
			e.waitJob(*tk.RayJobID)
			srv.Set(t, *tk.RayJobID, raytest.Succeeded, "", envelope("2")+"\n")
			if got := resultOf(t, e.waitPhase(tk, worker.Done, 20*time.Second)); got != "2" {
				t.Fatal(got)
			}
			if acc, _ := accepted(srv, *tk.RayJobID); acc != 1 {
				t.Fatalf("accepted %d times", acc)
			}
			assertLookedUpBeforeRepost(t, srv)
		})
	}
}

// assertLookedUpBeforeRepost: between two POSTs of the same id there is a GET of it.
func assertLookedUpBeforeRepost(t *testing.T, srv *raytest.Server) {
	t.Helper()
	posted := map[string]bool{}
	looked := map[string]bool{}
	for _, r := range srv.Requests() {
		switch r.Endpoint {
		case raytest.Submit:
			var body struct {
				ID string `json:"submission_id"`
			}
			_ = json.Unmarshal(r.Body, &body)
			if posted[body.ID] && !looked[body.ID] {
				t.Fatalf("%s posted again without a GET in between: %v", body.ID, srv.Requests())
			}
			posted[body.ID], looked[body.ID] = true, false
		case raytest.Get:
			looked[r.Path[strings.LastIndex(r.Path, "/")+1:]] = true
		}
	}
}

// TestStatusFaults: 500s, timeouts and slow answers while watching a job delay its outcome,
// never falsify it.
func TestStatusFaults(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t)
	e := newRunner(t, srv, func(o *rayjobs.Options) {
		o.RequestTimeout = 200 * time.Millisecond
		o.ListTimeout = 200 * time.Millisecond
	}, nil)
	e.waitReady()
	tk := task(3, "myapp.tasks.x", "[]", "{}")
	e.start(tk)
	e.waitJob(*tk.RayJobID)
	for _, ep := range []raytest.Endpoint{raytest.Get, raytest.List} {
		srv.Inject(ep, raytest.Fault{Status: 500, Body: "Traceback (most recent call last):\nRuntimeError: boom", Times: 3})
		srv.Inject(ep, raytest.Fault{Hang: true, Times: 2})
		srv.Inject(ep, raytest.Fault{Delay: 100 * time.Millisecond, Times: 2})
	}
	srv.Inject(raytest.Logs, raytest.Fault{Status: 500, Body: "Traceback (most recent call last):\nConnectionError: node gone", Times: 2})
	srv.Set(t, *tk.RayJobID, raytest.Succeeded, "", envelope("3")+"\n")
	if got := resultOf(t, e.waitPhase(tk, worker.Done, 30*time.Second)); got != "3" {
		t.Fatal(got)
	}
}

// TestStuckPending: a job PENDING past the limit is stopped and its attempt fails as
// RayJobFailed; if the stop does nothing, the attempt fails after the stop grace anyway.
func TestStuckPending(t *testing.T) {
	t.Parallel()
	t.Run("stopped", func(t *testing.T) {
		t.Parallel()
		srv := raytest.New(t)
		e := newRunner(t, srv, nil, func(c *rayrunner.Config) { c.PendingTimeout = 300 * time.Millisecond })
		e.waitReady()
		tk := task(4, "myapp.tasks.x", "[]", "{}")
		e.start(tk)
		st := e.waitPhase(tk, worker.Done, 10*time.Second)
		if o := st.Outcome; o.Kind != lifecycle.Failed || o.Failure.ExceptionType != "RayJobFailed" ||
			!strings.Contains(o.Failure.Message, "stayed PENDING for more than 300ms; stopped it") {
			t.Fatalf("%+v", o)
		}
		if j, _ := srv.Job(*tk.RayJobID); j.Status != raytest.Stopped || j.StopRequests != 1 {
			t.Fatalf("job %+v", j)
		}
		if n := metric(t, e.r, "rayworker_ray_pending_timeouts_total", nil); n != 1 {
			t.Fatalf("metric %v", n)
		}
	})
	t.Run("stop has no effect", func(t *testing.T) {
		t.Parallel()
		srv := raytest.New(t, raytest.WithStopAfter(1_000_000))
		e := newRunner(t, srv, nil, func(c *rayrunner.Config) {
			c.PendingTimeout = 200 * time.Millisecond
			c.StopGrace = 300 * time.Millisecond
		})
		e.waitReady()
		tk := task(5, "myapp.tasks.x", "[]", "{}")
		e.start(tk)
		st := e.waitPhase(tk, worker.Done, 10*time.Second)
		if o := st.Outcome; o.Kind != lifecycle.Failed || o.Failure.ExceptionType != "RayJobFailed" || !strings.Contains(o.Failure.Message, "a stop request had no effect") {
			t.Fatalf("%+v", o)
		}
	})
}

// TestDashboardRestart: a restart that forgets every job turns the jobs the runner had seen
// into TaskLost failures (retried as new attempts), never into a silent second POST of the
// same id; a job whose submission was still being retried is simply submitted.
func TestDashboardRestart(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t)
	e := newRunner(t, srv, nil, nil)
	e.waitReady()
	seen := task(6, "myapp.tasks.x", "[]", "{}")
	e.start(seen)
	e.waitJob(*seen.RayJobID)
	srv.Set(t, *seen.RayJobID, raytest.Running, "", "")
	e.waitPhase(seen, worker.Running, 5*time.Second)
	workertest.Eventually(t, 5*time.Second, "the job to be seen RUNNING", func() bool {
		j, _ := srv.Job(*seen.RayJobID)
		return j.Observed > 0
	})
	srv.Restart()
	st := e.waitPhase(seen, worker.Done, 10*time.Second)
	if o := st.Outcome; o.Kind != lifecycle.Failed || o.Failure.ExceptionType != lifecycle.ExcTaskLost || !strings.Contains(o.Failure.Message, "HTTP 404") {
		t.Fatalf("%+v", o)
	}
	if acc, posts := accepted(srv, *seen.RayJobID); acc != 1 || posts != 1 {
		t.Fatalf("the lost job was posted %d times (%d accepted)", posts, acc)
	}
	if n := metric(t, e.r, "rayworker_ray_jobs_lost_total", nil); n != 1 {
		t.Fatalf("lost metric %v", n)
	}
}

// TestCancel: Cancel stops the Ray job; the outcome is Cancelled once Ray says STOPPED. A job
// whose submission never got through is not submitted after a Cancel.
func TestCancel(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t, raytest.WithStopAfter(2))
	e := newRunner(t, srv, func(o *rayjobs.Options) { o.SubmitTimeout = 300 * time.Millisecond }, nil)
	e.waitReady()
	tk := task(8, "myapp.tasks.x", "[]", "{}")
	e.start(tk)
	e.waitJob(*tk.RayJobID)
	srv.Set(t, *tk.RayJobID, raytest.Running, "", "")
	if err := e.r.Cancel(t.Context(), tk); err != nil {
		t.Fatal(err)
	}
	if st := e.waitPhase(tk, worker.Done, 10*time.Second); st.Outcome.Kind != lifecycle.Cancelled {
		t.Fatalf("%+v", st)
	}
	if j, _ := srv.Job(*tk.RayJobID); j.Status != raytest.Stopped || j.StopRequests != 1 {
		t.Fatalf("%+v", j)
	}

	// a submission hanging when the cancel comes: looked up, found missing, never sent again
	srv.Inject(raytest.Submit, raytest.Fault{Hang: true})
	hung := task(9, "myapp.tasks.x", "[]", "{}")
	e.start(hung)
	workertest.Eventually(t, 5*time.Second, "the hanging POST", func() bool { return srv.Count(raytest.Submit) == 2 })
	if err := e.r.Cancel(t.Context(), hung); err != nil {
		t.Fatal(err)
	}
	if st := e.waitPhase(hung, worker.Done, 10*time.Second); st.Outcome.Kind != lifecycle.Cancelled {
		t.Fatalf("%+v", st)
	}
	srv.ClearFaults()
	time.Sleep(200 * time.Millisecond) // any late POST would show up by now
	if _, posts := accepted(srv, *hung.RayJobID); posts != 1 {
		t.Fatalf("%d POSTs of the cancelled job, want the one that hung", posts)
	}
	if _, ok := srv.Job(*hung.RayJobID); ok {
		t.Fatal("the cancelled job exists in Ray")
	}

	// a dead worker's job (not tracked here) is stopped synchronously
	other := task(10, "myapp.tasks.x", "[]", "{}")
	srv.AddJob(raytest.Job{SubmissionID: *other.RayJobID, Status: raytest.Running})
	if err := e.r.Cancel(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	if j, _ := srv.Job(*other.RayJobID); j.StopRequests != 1 {
		t.Fatalf("%+v", j)
	}
	// ... and one Ray does not know is nothing to stop
	if err := e.r.Cancel(t.Context(), task(11, "myapp.tasks.x", "[]", "{}")); err != nil {
		t.Fatal(err)
	}
}

// TestAuthFailure: 401 and 403 are a configuration error: one log line, one metric
// increment, Ready fails with the reason, nothing is submitted, and the check is repeated
// rarely, not in a storm. Fixing it (here: the server accepting again) resumes work.
func TestAuthFailure(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		token string
		code  string
	}{{"missing token", "", "HTTP 401"}, {"wrong token", "wrong", "HTTP 403"}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := raytest.New(t, raytest.WithToken("s3cret"))
			e := newRunner(t, srv, func(o *rayjobs.Options) { o.Token = c.token }, nil)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := e.r.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), c.code) {
				t.Fatalf("WaitReady: %v", err)
			}
			tk := task(12, "myapp.tasks.x", "[]", "{}")
			e.start(tk)
			workertest.Eventually(t, 5*time.Second, "the refusal", func() bool {
				err := e.r.Ready()
				return err != nil && strings.Contains(err.Error(), c.code) && strings.Contains(err.Error(), "refuses this worker")
			})
			time.Sleep(time.Second) // RefusedRetry is 300ms: about 3 more checks, no more
			if n := srv.Count(raytest.Version); n > 6 {
				t.Fatalf("%d version checks in ~1s: a retry storm", n)
			}
			if n := srv.Count(raytest.Submit) + srv.Count(raytest.Get) + srv.Count(raytest.List); n != 0 {
				t.Fatalf("%d job requests while refused", n)
			}
			if st := e.poll(tk)[0]; st.Phase != worker.Unknown || !strings.Contains(st.Message, c.code) {
				t.Fatalf("%+v", st)
			}
			if n := len(e.logs.Lines("refuses this worker")); n != 1 {
				t.Fatalf("%d log lines for one refusal:\n%s", n, e.logs)
			}
			if strings.Contains(e.logs.String(), "s3cret") {
				t.Fatal("the token was logged")
			}
			if n := metric(t, e.r, "rayworker_ray_config_errors_total", nil); n != 1 {
				t.Fatalf("metric %v", n)
			}
		})
	}
	t.Run("recovers", func(t *testing.T) {
		t.Parallel()
		srv := raytest.New(t, raytest.WithToken("s3cret"))
		srv.Inject(raytest.Version, raytest.Fault{Status: 401, Body: "Unauthorized: Missing authentication token", Times: 2})
		e := newRunner(t, srv, func(o *rayjobs.Options) { o.Token = "s3cret" }, nil)
		workertest.Eventually(t, 5*time.Second, "the refusal", func() bool { return e.r.Ready() != nil && srv.Count(raytest.Version) >= 1 })
		e.waitReady()
		tk := task(13, "myapp.tasks.x", "[]", "{}")
		e.start(tk)
		e.waitJob(*tk.RayJobID)
		if len(e.logs.Lines("accepts this worker again")) != 1 {
			t.Fatalf("no recovery line:\n%s", e.logs)
		}
	})
}

// TestOutage: the Jobs API going away is one outage — one log line, one metric increment —
// with jobs reported Unknown (never failed), only backed-off health checks sent, and work
// resuming by itself when it comes back.
func TestOutage(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t)
	e := newRunner(t, srv, nil, nil)
	e.waitReady()
	tk := task(14, "myapp.tasks.x", "[]", "{}")
	e.start(tk)
	e.waitJob(*tk.RayJobID)
	srv.Set(t, *tk.RayJobID, raytest.Running, "", "")
	e.waitPhase(tk, worker.Running, 5*time.Second)

	srv.SetDown(true)
	st := e.waitPhase(tk, worker.Unknown, 10*time.Second)
	if !strings.Contains(st.Message, "unreachable") || e.r.Ready() == nil {
		t.Fatalf("%+v / ready %v", st, e.r.Ready())
	}
	before := len(srv.Requests())
	time.Sleep(3 * time.Second)
	during := srv.Requests()[before:]
	for _, r := range during {
		if r.Endpoint != raytest.Health {
			t.Fatalf("%s request during the outage", r.Endpoint)
		}
	}
	if len(during) > 5 {
		t.Fatalf("%d health checks in 3s: backoff is 1s doubling", len(during))
	}
	// a second job started during the outage waits, it does not fail
	late := task(15, "myapp.tasks.x", "[]", "{}")
	e.start(late)
	if st := e.poll(late)[0]; st.Phase != worker.Unknown {
		t.Fatalf("%+v", st)
	}

	srv.SetDown(false)
	e.waitReady()
	e.waitJob(*late.RayJobID)
	srv.Set(t, *tk.RayJobID, raytest.Succeeded, "", envelope("14")+"\n")
	if got := resultOf(t, e.waitPhase(tk, worker.Done, 20*time.Second)); got != "14" {
		t.Fatal(got)
	}
	if n := len(e.logs.Lines("Ray Jobs API unreachable")); n != 1 {
		t.Fatalf("%d outage log lines:\n%s", n, e.logs)
	}
	if n := len(e.logs.Lines("reachable again")); n != 1 {
		t.Fatalf("%d recovery log lines", n)
	}
	if n := metric(t, e.r, "rayworker_ray_outages_total", nil); n != 1 {
		t.Fatalf("outages metric %v", n)
	}
	if n := metric(t, e.r, "rayworker_ray_api_up", nil); n != 1 {
		t.Fatalf("up metric %v", n)
	}
}

// TestOrphans: Poll answers for jobs the runner did not start (a dead worker's): running ones
// are Running (the loop adopts them), finished ones are Done with their outcome, and missing
// ones follow the 404 rule.
func TestOrphans(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t)
	e := newRunner(t, srv, nil, nil)
	e.waitReady()
	addr := e.r.Address()
	running := task(20, "myapp.tasks.x", "[]", "{}")
	finished := task(21, "myapp.tasks.x", "[]", "{}")
	python := task(22, "myapp.tasks.x", "[]", "{}")
	python.RayJobID = strPtr("raysubmit_aBcDeFgHiJkLmNpQ") // 0.2.0: Ray made the id
	old := task(23, "myapp.tasks.x", "[]", "{}")
	old.RayJobID = strPtr(jobID(23, 1, time.Now().Add(-time.Hour))) // claimed before this runner saw Ray
	never := task(24, "myapp.tasks.x", "[2, 3]", "{}")              // claimed now; its worker died before the POST
	// "Now" must be past the session's first sighting by more than ClockSkew (1 ms here); a
	// waitReady that returned within a millisecond of it made this row look claimed before
	// the session began, hence lost (seen once in CI): claimed 100 ms on.
	never.RayJobID = strPtr(jobID(24, 1, time.Now().Add(100*time.Millisecond)))
	never.RayAddress = &addr
	foreign := task(25, "myapp.tasks.x", "[]", "{}")
	foreign.RayAddress = strPtr("http://elsewhere:8265")
	srv.AddJob(raytest.Job{SubmissionID: *running.RayJobID, Status: raytest.Running})
	srv.AddJob(raytest.Job{SubmissionID: *finished.RayJobID, Status: raytest.Succeeded, Logs: envelope(`"orphan"`) + "\n"})

	all := []store.Task{running, finished, python, old, never, foreign}
	var st []worker.Status
	workertest.Eventually(t, 10*time.Second, "answers for every orphan", func() bool {
		st = e.poll(all...)
		return st[0].Phase == worker.Running && st[1].Phase == worker.Done && st[2].Phase == worker.Done && st[3].Phase == worker.Done && st[4].Phase == worker.Running
	})
	if got := resultOf(t, st[1]); got != `"orphan"` {
		t.Fatal(got)
	}
	for _, s := range st[2:4] {
		if s.Outcome.Kind != lifecycle.Failed || s.Outcome.Failure.ExceptionType != lifecycle.ExcTaskLost || !strings.Contains(s.Outcome.Failure.Message, "cannot tell whether it ever had it") {
			t.Fatalf("%+v", s)
		}
	}
	if st[5].Phase != worker.Unknown || !strings.Contains(st[5].Message, "elsewhere") {
		t.Fatalf("foreign: %+v", st[5])
	}
	// the never-submitted one went to Ray under its own id, exactly once
	e.waitJob(*never.RayJobID)
	if acc, posts := accepted(srv, *never.RayJobID); acc != 1 || posts != 1 {
		t.Fatalf("accepted %d, posts %d", acc, posts)
	}
	for _, id := range []string{*python.RayJobID, *old.RayJobID, *foreign.RayJobID} {
		if _, posts := accepted(srv, id); posts != 0 {
			t.Fatalf("%s was posted", id)
		}
	}
	if n := metric(t, e.r, "rayworker_ray_orphan_checks_total", map[string]string{"result": "resubmitted"}); n != 1 {
		t.Fatalf("metric %v", n)
	}
}

func strPtr(s string) *string { return &s }

// TestClosedDuringSubmission: Close sends the submissions still queued, so the next worker
// finds every job the rows name.
func TestClosedDuringSubmission(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t)
	srv.Inject(raytest.Submit, raytest.Fault{Delay: 200 * time.Millisecond, Times: 1})
	logs := &workertest.LogBuffer{}
	cfg := fastConfig(newClient(t, srv, nil), logs)
	cfg.SubmitConcurrency = 1
	r, err := rayrunner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 5*time.Second, "ready", func() bool { return r.Ready() == nil })
	var tasks []store.Task
	for i := range 5 {
		tk := task(int64(30+i), "myapp.tasks.x", "[]", "{}")
		tasks = append(tasks, tk)
		if err := r.Start(t.Context(), tk); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		if _, ok := srv.Job(*tk.RayJobID); !ok {
			t.Fatalf("%s was not submitted before Close returned", *tk.RayJobID)
		}
	}
	if err := r.Start(t.Context(), task(40, "myapp.tasks.x", "[]", "{}")); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

// TestStartRefusesRows: rows that cannot become a job fail at Start with the reason.
func TestStartRefusesRows(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t)
	e := newRunner(t, srv, nil, nil)
	noID := task(50, "myapp.tasks.x", "[]", "{}")
	noID.RayJobID = nil
	if err := e.r.Start(t.Context(), noID); err == nil || !strings.Contains(err.Error(), "AssignJobIDs") {
		t.Fatalf("%v", err)
	}
	var fe *lifecycle.FailureError
	if err := e.r.Start(t.Context(), task(51, "myapp.tasks.x", "{}", "{}")); !errors.As(err, &fe) || !fe.Failure.Permanent {
		t.Fatalf("args_json not an array: %v", err)
	}
	huge := task(52, "myapp.tasks.x", `["`+strings.Repeat("x", 100_000)+`"]`, "{}")
	if err := e.r.Start(t.Context(), huge); !errors.As(err, &fe) || !strings.Contains(fe.Failure.Message, "one process argument") {
		t.Fatalf("huge payload: %v", err)
	}
}

// TestLogReadFaultsWhileAPIAnswers: a SUCCEEDED job whose log read fails while the rest of
// the API answers (the node is gone, or a proxy answers /logs with a login page) is not
// failed at the first error, nor after five: only after five tries and LogPatience. An
// error of any kind counts alike.
func TestLogReadFaultsWhileAPIAnswers(t *testing.T) {
	t.Parallel()
	faults := map[string]raytest.Fault{
		"garbage 200": {Status: 200, Body: raytest.GarbageBody},
		"500":         {Status: 500, Body: "Traceback (most recent call last):\nConnectionError: node gone"},
		"dropped":     {Drop: true},
		"hang":        {Hang: true},
	}
	for name, f := range faults {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := raytest.New(t)
			e := newRunner(t, srv, func(o *rayjobs.Options) { o.LogsTimeout = 200 * time.Millisecond },
				func(c *rayrunner.Config) { c.LogPatience = time.Hour })
			e.waitReady()
			tk := task(11, "myapp.tasks.x", "[]", "{}")
			e.start(tk)
			e.waitJob(*tk.RayJobID)
			srv.Inject(raytest.Logs, f)
			srv.Set(t, *tk.RayJobID, raytest.Succeeded, "", envelope("3")+"\n")
			workertest.Eventually(t, 60*time.Second, "seven failed log reads", func() bool {
				if st := e.poll(tk)[0]; st.Phase == worker.Done {
					t.Fatalf("ended after %d log reads: %+v", srv.Count(raytest.Logs), st.Outcome)
				}
				return srv.Count(raytest.Logs) >= 7
			})
			if err := e.r.Ready(); err != nil {
				t.Fatalf("a /logs-only fault made the runner not ready: %v", err)
			}
			srv.ClearFaults()
			if got := resultOf(t, e.waitPhase(tk, worker.Done, 30*time.Second)); got != "3" {
				t.Fatal(got)
			}
		})
	}
	t.Run("node gone for good", func(t *testing.T) {
		t.Parallel()
		srv := raytest.New(t)
		e := newRunner(t, srv, nil, func(c *rayrunner.Config) { c.LogPatience = 300 * time.Millisecond })
		e.waitReady()
		tk := task(12, "myapp.tasks.x", "[]", "{}")
		e.start(tk)
		e.waitJob(*tk.RayJobID)
		srv.Inject(raytest.Logs, raytest.Fault{Status: 500, Body: "Traceback (most recent call last):\nConnectionError: node gone"})
		srv.Set(t, *tk.RayJobID, raytest.Succeeded, "", envelope("3")+"\n")
		st := e.waitPhase(tk, worker.Done, 30*time.Second)
		if o := st.Outcome; o.Kind != lifecycle.Failed || o.Failure.ExceptionType != lifecycle.ExcRunnerFailed ||
			!strings.Contains(o.Failure.Message, "could not be read in 5 tries") {
			t.Fatalf("%+v", o)
		}
	})
}

// TestWholeAPIOutageOfEachKind: while the whole Jobs API is out — connections refused or
// dropped, 500s, hanging, or 200s with a login page — a job that SUCCEEDED meanwhile is never
// reported as anything but not known yet, the runner reports itself not ready (the worker
// holds claims, /readyz fails, rayworker_ray_api_up is 0), and when the API is back the job's
// real outcome is reported.
func TestWholeAPIOutageOfEachKind(t *testing.T) {
	t.Parallel()
	for _, o := range []raytest.Outage{raytest.Refused, raytest.Dropped, raytest.Error500, raytest.Hang, raytest.Garbage} {
		t.Run(o.String(), func(t *testing.T) {
			t.Parallel()
			srv := raytest.New(t)
			e := newRunner(t, srv, func(o *rayjobs.Options) {
				o.RequestTimeout, o.ListTimeout, o.LogsTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
			}, func(c *rayrunner.Config) { c.LogPatience = time.Millisecond })
			e.waitReady()
			tk := task(13, "myapp.tasks.x", "[]", "{}")
			e.start(tk)
			e.waitJob(*tk.RayJobID)
			srv.Set(t, *tk.RayJobID, raytest.Succeeded, "", envelope("7")+"\n")
			srv.SetOutage(o) // before the runner reads the log, or while it does
			failedChecks := func() float64 {
				return metric(t, e.r, "rayworker_ray_requests_total", map[string]string{"endpoint": "health", "result": "unavailable"}) +
					metric(t, e.r, "rayworker_ray_requests_total", map[string]string{"endpoint": "health", "result": "error"})
			}
			workertest.Eventually(t, 60*time.Second, "the outage noticed and two failed health checks", func() bool {
				if st := e.poll(tk)[0]; st.Phase == worker.Done {
					t.Fatalf("ended during the outage: %+v", st.Outcome)
				}
				return e.r.Ready() != nil && failedChecks() >= 2
			})
			if n := metric(t, e.r, "rayworker_ray_api_up", nil); n != 0 {
				t.Fatalf("rayworker_ray_api_up %v during the outage", n)
			}
			if st := e.poll(tk)[0]; st.Phase == worker.Done {
				t.Fatalf("ended during the outage: %+v", st.Outcome)
			}
			srv.SetOutage(raytest.NoOutage)
			if got := resultOf(t, e.waitPhase(tk, worker.Done, 60*time.Second)); got != "7" {
				t.Fatal(got)
			}
			e.waitReady()
		})
	}
}

// TestFailedJobLogsBounded: a FAILED job whose logs cannot be served (its node died: the
// dashboard's request to the node's agent hangs) ends its attempt after FailedLogsTimeout,
// from Ray's message, not after the client's whole LogsTimeout.
func TestFailedJobLogsBounded(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t)
	e := newRunner(t, srv, func(o *rayjobs.Options) { o.LogsTimeout = 30 * time.Second },
		func(c *rayrunner.Config) { c.FailedLogsTimeout = 300 * time.Millisecond })
	e.waitReady()
	tk := task(6, "myapp.tasks.x", "[]", "{}")
	e.start(tk)
	e.waitJob(*tk.RayJobID)
	srv.Inject(raytest.Logs, raytest.Fault{Hang: true})
	srv.Set(t, *tk.RayJobID, raytest.Failed, "Job supervisor actor died: The actor died unexpectedly before finishing this task.", "")
	// Done within 10 s, where an unbounded read would wait out the client's 30 s LogsTimeout
	st := e.waitPhase(tk, worker.Done, 10*time.Second)
	if o := st.Outcome; o.Kind != lifecycle.Failed || o.Failure.ExceptionType != "RayJobFailed" || !strings.Contains(o.Failure.Message, "actor died") {
		t.Fatalf("%+v", o)
	}
	if n := srv.Count(raytest.Logs); n < 1 {
		t.Fatalf("%d log reads", n)
	}
}
