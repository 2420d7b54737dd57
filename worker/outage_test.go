package worker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
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
	u, err := url.Parse(e.sc.DSN)
	if err != nil || u.Host == "" {
		t.Skip("DATABASE_URL is not a host:port URL")
	}
	proxy := newFlakyProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	ctx := context.Background()
	pool, err := store.Open(ctx, u.String(), func(c *pgxpool.Config) { c.MaxConns = 4 })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	viaProxy := env{t: t, s: store.New(pool), sc: e.sc}
	h := viaProxy.start(nil, nil)

	pidfile := filepath.Join(h.dir, "pid")
	task := enqueue(t, e.s, store.NewTask{CallablePath: "sleep", ArgsJSON: fmt.Sprintf(`[1.0, %q]`, pidfile)})
	pids := workertest.ReadPIDs(t, pidfile)
	proxy.down()
	workertest.Eventually(t, 30*time.Second, "the worker to report the outage", func() bool {
		code, body := probe(t, h.w, "/readyz")
		return code == http.StatusServiceUnavailable && body == "database unreachable"
	})
	workertest.WaitGone(t, 30*time.Second, pids...) // the task finished during the outage
	if got := workertest.Row(t, e.s, task.ID); got.State != store.StateRunning {
		t.Fatalf("written during the outage? %+v", got)
	}
	if code, _ := probe(t, h.w, "/healthz"); code != http.StatusOK {
		t.Fatal("the loop stalled during the outage")
	}
	proxy.up()
	if got := waitState(t, e.s, task.ID, store.StateSucceeded); str(got.ResultData) != `"slept"` {
		t.Fatalf("%+v", got)
	}
	workertest.Eventually(t, 30*time.Second, "readiness after the outage", func() bool {
		code, _ := probe(t, h.w, "/readyz")
		return code == http.StatusOK
	})
	after := enqueue(t, e.s, store.NewTask{CallablePath: "add", ArgsJSON: "[1]"})
	waitState(t, e.s, after.ID, store.StateSucceeded)
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
	ctx := context.Background()
	for _, how := range []string{
		`UPDATE django_ray_raytaskexecution SET state = 'FAILED', finished_at = now(), error_message = 'operator' WHERE id = $1`,
		`DELETE FROM django_ray_raytaskexecution WHERE id = $1`,
	} {
		pidfile := filepath.Join(h.dir, fmt.Sprint("pid", len(how)))
		task := enqueue(t, e.s, store.NewTask{CallablePath: "sleep", ArgsJSON: fmt.Sprintf(`[60, %q]`, pidfile)})
		pids := workertest.ReadPIDs(t, pidfile)
		if _, err := e.s.DB().Exec(ctx, how, task.ID); err != nil {
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
	u, err := url.Parse(e.sc.DSN)
	if err != nil || u.Host == "" {
		t.Skip("DATABASE_URL is not a host:port URL")
	}
	proxy := newFlakyProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	pool, err := store.Open(context.Background(), u.String(), func(c *pgxpool.Config) { c.MaxConns = 4 })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var once sync.Once
	down := make(chan struct{})
	r := failingStart{fakeRunner: newFake(worker.Capabilities{Name: "failing"}), onStart: func() {
		once.Do(func() { proxy.down(); close(down) })
	}}
	viaProxy := env{t: t, s: store.New(pool), sc: e.sc}
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
