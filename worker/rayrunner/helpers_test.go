package rayrunner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/rayrunner"
	"github.com/rayctl/rayctl/worker/workertest"
)

// TestMain checks that no test leaves a goroutine behind (storetest's admin pool has one
// health-check goroutine for the whole binary).
func TestMain(m *testing.M) {
	if helperMain() {
		os.Exit(0)
	}
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))
}

func newClient(t testing.TB, srv *raytest.Server, mod func(*rayjobs.Options)) *rayjobs.Client {
	t.Helper()
	o := rayjobs.Options{Address: srv.URL, UserAgent: "rayctl/rayrunner-test", SubmitTimeout: 2 * time.Second,
		RequestTimeout: time.Second, ListTimeout: 2 * time.Second, LogsTimeout: 5 * time.Second}
	if mod != nil {
		mod(&o)
	}
	c, err := rayjobs.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runnerEnv is a runner over a fake Jobs API.
type runnerEnv struct {
	t    *testing.T
	srv  *raytest.Server
	r    *rayrunner.Runner
	logs *workertest.LogBuffer
}

var testRuntimeEnv = map[string]any{"env_vars": map[string]any{"DJANGO_SETTINGS_MODULE": "proj.settings"}}

// fastConfig has short intervals for tests.
func fastConfig(c *rayjobs.Client, logs io.Writer) rayrunner.Config {
	return rayrunner.Config{
		Client:          c,
		RuntimeEnv:      testRuntimeEnv,
		MinPollInterval: 20 * time.Millisecond,
		MaxPollInterval: 200 * time.Millisecond,
		StopGrace:       2 * time.Second,
		ClockSkew:       time.Millisecond,
		RefusedRetry:    300 * time.Millisecond,
		SessionCheck:    time.Second,
		Logger:          slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func newRunner(t *testing.T, srv *raytest.Server, cmod func(*rayjobs.Options), mod func(*rayrunner.Config)) *runnerEnv {
	t.Helper()
	logs := &workertest.LogBuffer{}
	cfg := fastConfig(newClient(t, srv, cmod), logs)
	if mod != nil {
		mod(&cfg)
	}
	r, err := rayrunner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Close(ctx)
		if t.Failed() {
			t.Logf("runner log:\n%s", logs.String())
		}
	})
	return &runnerEnv{t: t, srv: srv, r: r, logs: logs}
}

// waitReady waits for the runner's first successful health check.
func (e *runnerEnv) waitReady() {
	e.t.Helper()
	workertest.Eventually(e.t, 10*time.Second, "the runner to be ready", func() bool { return e.r.Ready() == nil })
}

// jobID is a submission id as the claim makes it (store.JobIDFormat), claimed at `at`.
func jobID(row int64, attempt int, at time.Time) string {
	return fmt.Sprintf("raysubmit_t%d_a%d_%x", row, attempt, at.UnixMicro())
}

// task is a claimed row with a fresh submission id.
func task(id int64, callable, args, kwargs string) store.Task {
	started := time.Now()
	jid := jobID(id, 1, started)
	owner := "worker-a"
	return store.Task{ID: id, TaskID: store.NewUUID(), CallablePath: callable, QueueName: "default", State: store.StateRunning,
		AttemptNumber: 1, RayJobID: &jid, StartedAt: &started, ClaimedByWorker: &owner, ArgsJSON: args, KwargsJSON: kwargs}
}

func (e *runnerEnv) start(t store.Task) {
	e.t.Helper()
	if err := e.r.Start(e.t.Context(), t); err != nil {
		e.t.Fatalf("start: %v", err)
	}
}

func (e *runnerEnv) poll(ts ...store.Task) []worker.Status {
	e.t.Helper()
	st, err := e.r.Poll(e.t.Context(), ts)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(st) != len(ts) {
		e.t.Fatalf("%d statuses for %d tasks", len(st), len(ts))
	}
	return st
}

// waitPhase polls until the task reaches phase and returns its status.
func (e *runnerEnv) waitPhase(t store.Task, phase worker.Phase, within time.Duration) worker.Status {
	e.t.Helper()
	var st worker.Status
	workertest.Eventually(e.t, within, "task "+fmt.Sprint(t.ID)+" to be "+phase.String(), func() bool {
		st = e.poll(t)[0]
		return st.Phase == phase
	})
	return st
}

// waitJob waits until the fake has the job and returns it.
func (e *runnerEnv) waitJob(id string) raytest.Job {
	e.t.Helper()
	var j raytest.Job
	workertest.Eventually(e.t, 10*time.Second, "job "+id+" in Ray", func() bool {
		var ok bool
		j, ok = e.srv.Job(id)
		return ok
	})
	return j
}

// accepted counts accepted submissions of id; posts counts every POST naming it (faulted
// ones included).
func accepted(srv *raytest.Server, id string) (accepted, posts int) {
	for _, s := range srv.Submissions() {
		if s.Accepted && s.SubmissionID == id {
			accepted++
		}
	}
	for _, r := range srv.Requests() {
		var body struct {
			ID string `json:"submission_id"`
		}
		if r.Endpoint == raytest.Submit && json.Unmarshal(r.Body, &body) == nil && body.ID == id {
			posts++
		}
	}
	return accepted, posts
}

// metric reads one sample from a collector by name and labels ("" for none).
func metric(t *testing.T, c prometheus.Collector, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	return 0
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

func envelope(result string) string {
	return `{"success": true, "result": ` + result + `, "error": null, "traceback": null, "exception_type": null}`
}

func resultOf(t *testing.T, st worker.Status) string {
	t.Helper()
	if st.Phase != worker.Done || st.Outcome.Kind != lifecycle.Succeeded {
		t.Fatalf("not a success: %+v", st)
	}
	return string(st.Outcome.Result.JSON)
}
