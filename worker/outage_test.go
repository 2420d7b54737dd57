package worker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/workertest"
)

// flakyProxy forwards TCP to the database and can cut it off: down() drops every connection
// and refuses new ones until up().
type flakyProxy struct {
	ln     net.Listener
	target string
	up_    atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.up_.Store(true)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.down()
		p.wg.Wait()
	})
	return p
}

func (p *flakyProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.up_.Load() {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(s, c)
		go pipe(c, s)
	}
}

func (p *flakyProxy) down() {
	p.up_.Store(false)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *flakyProxy) up() { p.up_.Store(true) }

// TestDatabaseOutage: the worker keeps running while the database is unreachable (healthy
// but not ready), keeps the outcome of a task that finished meanwhile, and writes it once
// the database is back.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, proxy := e.viaProxy()
	viaProxy := env{t: t, s: s, sc: e.sc}
	h := viaProxy.start(nil, nil)

	release, started, runs := filepath.Join(h.dir, "release"), filepath.Join(h.dir, "started"), filepath.Join(h.dir, "runs")
	task := enqueue(t, e.s, store.NewTask{CallablePath: "block", ArgsJSON: fmt.Sprintf(`[%q, %q, %q]`, release, started, runs)})
	var pid int
	workertest.Eventually(t, 30*time.Second, "the task to start", func() bool {
		entries, _ := os.ReadDir(started)
		if len(entries) != 1 {
			return false
		}
		pid, _ = strconv.Atoi(entries[0].Name())
		return pid > 0
	})
	proxy.down()
	workertest.Eventually(t, 30*time.Second, "the worker to report the outage", func() bool {
		code, body := probe(t, h.w, "/readyz")
		return code == http.StatusServiceUnavailable && body == "database unreachable"
	})
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	workertest.WaitGone(t, 30*time.Second, pid) // the task finished during the outage
	if got := workertest.Row(t, e.s, task.ID); got.State != store.StateRunning {
		t.Fatalf("written during the outage? %+v", got)
	}
	if code, _ := probe(t, h.w, "/healthz"); code != http.StatusOK {
		t.Fatal("the loop stalled during the outage")
	}
	proxy.up()
	if got := waitState(t, e.s, task.ID, store.StateSucceeded); str(got.ResultData) != strconv.Itoa(pid) || got.AttemptNumber != 1 {
		t.Fatalf("%+v", got)
	}
	// the result held through the outage is the one run's: it ran once, to its end
	if text, err := os.ReadFile(runs); err != nil || strings.Count(string(text), "start ") != 1 || strings.Count(string(text), "end ") != 1 {
		t.Fatalf("runs %q %v, want one start and one end", text, err)
	}
	workertest.Eventually(t, 30*time.Second, "readiness after the outage", func() bool {
		code, _ := probe(t, h.w, "/readyz")
		return code == http.StatusOK
	})
	after := enqueue(t, e.s, store.NewTask{CallablePath: "add", ArgsJSON: "[1]"})
	waitState(t, e.s, after.ID, store.StateSucceeded)
	waitIdle(t, h)
	if len(h.logs.Lines(`"msg":"database call failed"`)) == 0 {
		t.Fatal("the outage was not logged")
	}
}

// TestRowMovedOnStopsTheProcess: when an operator finishes or deletes a row the worker is
// running, the worker stops the process and leaves the row as the operator left it.
func TestRowMovedOnStopsTheProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.start(nil, nil)
	ctx := t.Context()
	for _, how := range []string{
		`UPDATE django_ray_raytaskexecution SET state = 'FAILED', finished_at = now(), error_message = 'operator' WHERE id = $1`,
		`DELETE FROM django_ray_raytaskexecution WHERE id = $1`,
	} {
		pidfile := filepath.Join(h.dir, fmt.Sprint("pid", len(how)))
		task := enqueue(t, e.s, store.NewTask{CallablePath: "sleep", ArgsJSON: fmt.Sprintf(`[60, %q]`, pidfile)})
		pids := workertest.ReadPIDs(t, pidfile)
		if _, err := storetest.DB(e.s).Exec(ctx, how, task.ID); err != nil {
			t.Fatal(err)
		}
		workertest.WaitGone(t, 30*time.Second, pids...)
		if got, err := e.s.GetTask(ctx, task.ID); err == nil && (got.State != store.StateFailed || str(got.ErrorMessage) != "operator") {
			t.Fatalf("row changed: %+v", got)
		}
	}
	h.waitLines(2, `"msg":"task moved on while running; stopping it"`)
}

// failingStart is a runner whose Start fails after cutting the database off, so the failure
// cannot be written at once.
type failingStart struct {
	*fakeRunner
	onStart func()
}

func (f failingStart) Start(context.Context, store.Task) error {
	f.onStart()
	return fmt.Errorf("cluster unreachable")
}

// TestStartFailureDuringOutage: an attempt that could not start while the database was also
// unreachable keeps its outcome and writes it when the database is back.
func TestStartFailureDuringOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, proxy := e.viaProxy()
	var once sync.Once
	down := make(chan struct{})
	r := failingStart{fakeRunner: newFake(worker.Capabilities{Name: "failing"}), onStart: func() {
		once.Do(func() { proxy.down(); close(down) })
	}}
	viaProxy := env{t: t, s: s, sc: e.sc}
	h := viaProxy.startWith(func(c *worker.Config) { c.Policy = lifecycle.Policy{MaxAttempts: 1} }, r)
	task := enqueue(t, e.s, store.NewTask{CallablePath: "myapp.tasks.x"})
	<-down
	h.waitLines(1, `"msg":"database call failed"`, `"op":"complete"`)
	if got := workertest.Row(t, e.s, task.ID); got.State != store.StateRunning {
		t.Fatalf("%+v", got)
	}
	proxy.up()
	if got := waitState(t, e.s, task.ID, store.StateFailed); str(got.ErrorMessage) != "could not start the task: cluster unreachable" {
		t.Fatalf("%+v", got)
	}
}

// viaProxy returns a store whose connections go through a new flakyProxy to the test's
// database, and the proxy.
func (e env) viaProxy() (*store.Store, *flakyProxy) {
	t := e.t
	t.Helper()
	u, err := url.Parse(e.sc.DSN)
	if err != nil || u.Host == "" {
		t.Skip("DATABASE_URL is not a host:port URL")
	}
	proxy := newFlakyProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	pool, err := store.Open(t.Context(), u.String(), func(c *pgxpool.Config) { c.MaxConns = 4 })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return store.New(pool), proxy
}

// runs counts the "start" and "end" lines the block callable wrote to log.
func runs(t *testing.T, log string) (starts, ends int) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "start "):
			starts++
		case strings.HasPrefix(l, "end "):
			ends++
		}
	}
	return starts, ends
}

// waitStale waits until, by the database's clock, none of the rows has been heartbeated for
// longer than d and no lease has been heartbeated for longer than d either.
func waitStale(t *testing.T, s *store.Store, d time.Duration, ids []int64) {
	t.Helper()
	workertest.Eventually(t, 60*time.Second, fmt.Sprintf("rows and leases without a heartbeat for %s", d), func() bool {
		var fresh bool
		err := storetest.DB(s).QueryRow(t.Context(), `SELECT
			EXISTS (SELECT 1 FROM django_ray_raytaskexecution WHERE id = ANY($1) AND last_heartbeat_at >= now() - make_interval(secs => $2))
			OR EXISTS (SELECT 1 FROM django_ray_taskworkerlease WHERE is_active AND last_heartbeat_at >= now() - make_interval(secs => $2))`,
			ids, d.Seconds()).Scan(&fresh)
		if err != nil {
			t.Fatal(err)
		}
		return !fresh
	})
}

// outageConfig: a 1 s stuck timeout and a 2 s lease, retries at once (so a task marked LOST
// by mistake would run again at once).
func outageConfig(c *worker.Config) {
	c.StuckAfter, c.LeaseTTL, c.Concurrency = time.Second, 2*time.Second, 2
	c.Policy = lifecycle.Policy{MaxAttempts: 3}
}

// TestOutageLongerThanStuckTimeout: two workers lose the database for longer than the stuck
// timeout and the lease TTL, with tasks finishing during the outage and tasks still running
// after it. When it ends, neither marks the other's tasks LOST (each has watched the database
// for less than a lease TTL while the other heartbeats again): every task runs once and
// succeeds in its first attempt.
func TestOutageLongerThanStuckTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, proxy := e.viaProxy()
	viaProxy := env{t: t, s: s, sc: e.sc}
	a := viaProxy.start(outageConfig, nil)
	b := viaProxy.start(outageConfig, nil)
	dir := t.TempDir()
	early, late, started := filepath.Join(dir, "early"), filepath.Join(dir, "late"), filepath.Join(dir, "started")
	var ids []int64
	var logs []string
	for i := range 4 {
		release := early
		if i%2 == 1 {
			release = late
		}
		logs = append(logs, filepath.Join(dir, fmt.Sprint("log", i)))
		ids = append(ids, enqueue(t, e.s, store.NewTask{CallablePath: "block", ArgsJSON: fmt.Sprintf(`[%q, %q, %q]`, release, started, logs[i])}).ID)
	}
	workertest.Eventually(t, 30*time.Second, "four tasks running", func() bool {
		entries, _ := os.ReadDir(started)
		return len(entries) == 4
	})
	proxy.down()
	waitStale(t, e.s, 3*time.Second, ids) // past the stuck timeout and the lease TTL
	if err := os.WriteFile(early, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 30*time.Second, "the early tasks to finish during the outage", func() bool {
		_, e0 := runs(t, logs[0])
		_, e2 := runs(t, logs[2])
		return e0 == 1 && e2 == 1
	})
	proxy.up()
	for _, h := range []*running{a, b} {
		workertest.Eventually(t, 30*time.Second, "readiness after the outage", func() bool {
			code, _ := probe(t, h.w, "/readyz")
			return code == http.StatusOK
		})
	}
	if err := os.WriteFile(late, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		got := waitState(t, e.s, id, store.StateSucceeded, store.StateFailed, store.StateLost)
		if got.State != store.StateSucceeded || got.AttemptNumber != 1 {
			t.Errorf("task %d: %+v", i, got)
		}
		if starts, ends := runs(t, logs[i]); starts != 1 || ends != 1 {
			t.Errorf("task %d ran %d times (%d ended)", i, starts, ends)
		}
	}
	for _, h := range []*running{a, b} {
		if n := len(h.logs.Lines(`"msg":"task lost`)); n != 0 {
			t.Errorf("%d tasks marked lost", n)
		}
	}
}

// TestReclaimAfterPartition: worker A is cut off from the database while worker B is not. B
// marks A's tasks LOST (retried later, or not at all once attempts are exhausted), as it
// must. When A is back, it takes its rows back (nobody claimed them meanwhile) and records
// the outcome it held, or goes on running the task: no task runs twice.
func TestReclaimAfterPartition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, proxy := e.viaProxy()
	cfg := func(c *worker.Config) {
		outageConfig(c)
		c.Concurrency = 3
		c.Policy = lifecycle.Policy{MaxAttempts: 3, Backoff: time.Hour} // B claims no retry meanwhile
	}
	dir := t.TempDir()
	early, late, started := filepath.Join(dir, "early"), filepath.Join(dir, "late"), filepath.Join(dir, "started")
	var ids []int64
	var logs []string
	for i, release := range []string{early, late, early} {
		logs = append(logs, filepath.Join(dir, fmt.Sprint("log", i)))
		ids = append(ids, enqueue(t, e.s, store.NewTask{CallablePath: "block", ArgsJSON: fmt.Sprintf(`[%q, %q, %q]`, release, started, logs[i])}).ID)
	}
	// the third task is in its last attempt: B marks it LOST for good
	if _, err := storetest.DB(e.s).Exec(t.Context(), `UPDATE django_ray_raytaskexecution SET attempt_number = 3 WHERE id = $1`, ids[2]); err != nil {
		t.Fatal(err)
	}
	a := env{t: t, s: s, sc: e.sc}.start(cfg, nil)
	workertest.Eventually(t, 30*time.Second, "three tasks running", func() bool {
		entries, _ := os.ReadDir(started)
		return len(entries) == 3
	})
	b := e.start(cfg, nil)
	proxy.down()
	for i, want := range []store.TaskState{store.StateQueued, store.StateQueued, store.StateLost} {
		if got := waitState(t, e.s, ids[i], want); str(got.ErrorMessage) != store.LostMessage {
			t.Fatalf("task %d: %+v", i, got)
		}
	}
	if err := os.WriteFile(early, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 30*time.Second, "the early tasks to finish while A is cut off", func() bool {
		_, e0 := runs(t, logs[0])
		_, e2 := runs(t, logs[2])
		return e0 == 1 && e2 == 1
	})
	proxy.up()
	waitState(t, e.s, ids[0], store.StateSucceeded)
	waitState(t, e.s, ids[2], store.StateSucceeded)
	workertest.Eventually(t, 30*time.Second, "A to take back the running task", func() bool {
		got := workertest.Row(t, e.s, ids[1])
		return got.State == store.StateRunning && str(got.ClaimedByWorker) == a.w.ID()
	})
	if err := os.WriteFile(late, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		got := waitState(t, e.s, id, store.StateSucceeded)
		if got.AttemptNumber != []int32{1, 1, 3}[i] || str(got.ClaimedByWorker) != a.w.ID() || got.ErrorMessage != nil {
			t.Errorf("task %d: %+v", i, got)
		}
		if starts, ends := runs(t, logs[i]); starts != 1 || ends != 1 {
			t.Errorf("task %d ran %d times (%d ended)", i, starts, ends)
		}
	}
	a.waitLines(3, `"msg":"task taken back`)
	if m := scrape(t, a.w); m[`rayworker_tasks_recovered_total{kind="reclaimed"}`] != 3 {
		t.Errorf("reclaimed metric %v", m[`rayworker_tasks_recovered_total{kind="reclaimed"}`])
	}
	b.waitLines(2, `"msg":"task lost, retry scheduled"`)
}
