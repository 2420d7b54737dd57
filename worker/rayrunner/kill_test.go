package rayrunner_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/rayrunner"
	"github.com/rayctl/rayctl/worker/workertest"
)

// helperMain runs this test binary as "worker A" of TestKilledWorkerIsAdopted when asked to
// (RAYRUNNER_HELPER=worker): a real worker process with the Ray runner against the fake Jobs
// API and the test schema named in the environment, until it is killed.
func helperMain() bool {
	if os.Getenv("RAYRUNNER_HELPER") != "worker" {
		return false
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	pool, err := store.Open(ctx, os.Getenv("RAYRUNNER_DSN"), func(c *pgxpool.Config) { c.MaxConns = 4 })
	if err != nil {
		fail(err)
	}
	c, err := rayjobs.New(rayjobs.Options{Address: os.Getenv("RAYRUNNER_RAY"), UserAgent: "rayctl/worker-a"})
	if err != nil {
		fail(err)
	}
	logs := &workertest.LogBuffer{}
	r, err := rayrunner.New(fastConfig(c, logs))
	if err != nil {
		fail(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = r.WaitReady(wctx) // start with the Jobs API's state known (the loop holds claims until it is ready anyway)
	cancel()
	cfg := loopConfig(logs)
	cfg.WorkerID = os.Getenv("RAYRUNNER_WORKER_ID")
	cfg.Concurrency, _ = strconv.Atoi(os.Getenv("RAYRUNNER_CONCURRENCY"))
	w, err := worker.New(cfg, store.New(pool), r)
	if err != nil {
		fail(err)
	}
	if err := w.Run(ctx); err != nil {
		fail(err)
	}
	return true
}

// TestKilledWorkerIsAdopted: worker A (another process) claims six tasks, gets four jobs into
// Ray and two POSTs stuck in flight, and dies by SIGKILL. Worker B, already running, adopts
// the four jobs Ray has and submits the two Ray never received under the ids A's claim
// recorded. Every task ends once, and no submission id is ever accepted twice.
func TestKilledWorkerIsAdopted(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	srv := raytest.New(t)
	// B first: it has seen the Ray session before A's claims, so it can tell that a job Ray
	// does not know was never submitted. It takes no tasks of its own.
	b := startLoop(t, s, sc, srv, func(c *worker.Config) { c.Queues = []string{"not-this-one"} }, nil)
	workertest.Eventually(t, 10*time.Second, "B ready", func() bool { return b.r.Ready() == nil })

	const n = 6
	var tasks []store.Task
	for i := range n {
		tasks = append(tasks, workertest.Enqueue(t, s, store.NewTask{CallablePath: fmt.Sprintf("app.task%d", i)}))
	}
	srv.Inject(raytest.Submit, raytest.Fault{Times: 4})   // four POSTs go through...
	srv.Inject(raytest.Submit, raytest.Fault{Hang: true}) // ...the rest hang

	a := exec.Command(os.Args[0], "-test.run=^$")
	a.Env = append(os.Environ(), "RAYRUNNER_HELPER=worker", "RAYRUNNER_DSN="+sc.DSN, "RAYRUNNER_RAY="+srv.URL,
		"RAYRUNNER_WORKER_ID=worker-a", "RAYRUNNER_CONCURRENCY="+strconv.Itoa(n))
	a.Stderr = os.Stderr
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Process.Kill(); _ = a.Wait() })
	workertest.Eventually(t, 30*time.Second, "A's six POSTs (four accepted, two hanging)", func() bool {
		return srv.Count(raytest.Submit) == n && len(srv.Jobs()) == 4
	})
	claimed := map[int64]string{}
	for _, tk := range tasks {
		row := workertest.Row(t, s, tk.ID)
		if row.State != store.StateRunning || str(row.ClaimedByWorker) != "worker-a" {
			t.Fatalf("not claimed by A: %+v", row)
		}
		claimed[tk.ID] = str(row.RayJobID)
	}
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()
	srv.ClearFaults()

	// B adopts all six once A's lease is stale
	for _, tk := range tasks {
		workertest.Eventually(t, 30*time.Second, fmt.Sprintf("task %d adopted by B", tk.ID), func() bool {
			return str(workertest.Row(t, s, tk.ID).ClaimedByWorker) == b.w.ID()
		})
	}
	workertest.Eventually(t, 10*time.Second, "six jobs in Ray", func() bool { return len(srv.Jobs()) == n })
	for _, j := range srv.Jobs() {
		srv.Set(t, j.SubmissionID, raytest.Succeeded, "", envelope(`"`+j.Metadata["callable_path"]+`"`)+"\n")
	}
	for i, tk := range tasks {
		got := workertest.WaitState(t, s, tk.ID, 30*time.Second, store.StateSucceeded, store.StateFailed, store.StateQueued)
		if got.State != store.StateSucceeded || got.AttemptNumber != 1 || str(got.RayJobID) != claimed[tk.ID] ||
			str(got.ResultData) != fmt.Sprintf(`"app.task%d"`, i) {
			t.Fatalf("task %d ended as %+v (claimed with %s)", tk.ID, got, claimed[tk.ID])
		}
	}
	var ids []string
	for _, id := range claimed {
		if acc, _ := accepted(srv, id); acc != 1 {
			t.Fatalf("%s accepted %d times", id, acc)
		}
		ids = append(ids, id)
	}
	var jobs []string
	for _, j := range srv.Jobs() {
		jobs = append(jobs, j.SubmissionID)
	}
	slices.Sort(ids)
	slices.Sort(jobs)
	if !slices.Equal(ids, jobs) {
		t.Fatalf("jobs in Ray %v, claimed ids %v", jobs, ids)
	}
	if n := metric(t, b.r, "rayworker_ray_orphan_checks_total", map[string]string{"result": "resubmitted"}); n != 2 {
		t.Fatalf("resubmitted %v, want the two that never reached Ray", n)
	}
}
