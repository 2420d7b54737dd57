// Command executors compares rayworker's executor runners with django-ray 0.2.0's own worker
// on the same PostgreSQL and the same Django project (python/rayctl_testapp), interleaved,
// round after round, so the machine's drift hits both alike:
//
//   - sync: `manage.py django_ray_worker --sync --concurrency C` against `rayworker --sync`
//     (the executor pool) at several concurrencies, on a trivial task (add) and a 50 ms
//     sleeping task: tasks/s (first start to last finish, from the rows), CPU per task of the
//     worker's whole process tree (executors included) while it ran them, and the tree's peak
//     RSS;
//   - core (with -gcs): `django_ray_worker --cluster <GCS>` against `rayworker --runner ray_core
//     --cluster <GCS>` on one Ray head: p50 latency from enqueue to SUCCEEDED over sequential
//     tasks, and tasks/s on a batch of trivial tasks.
//
// Each run gets a fresh schema, a worker started on an empty queue and given time to be ready
// (so start-up is not counted), then the whole batch enqueued at once. bench/executors.sh
// provides PostgreSQL, the venv and a Ray head, and prints the Markdown rows for
// docs/benchmarks.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/bench/internal/benchdb"
	"github.com/rayctl/rayctl/store"
)

type config struct {
	worker      string // "django-ray" or "rayworker"
	mode        string // "sync" or "core"
	concurrency int
	task        string // "add" or "sleep50"
}

func (c config) String() string {
	return fmt.Sprintf("%s %s c=%d %s", c.worker, c.mode, c.concurrency, c.task)
}

type result struct {
	tasksPerSec float64
	cpuPerTask  float64 // ms, worker process tree
	peakRSS     float64 // MiB, worker process tree, sum of RSS
	peakPSS     float64 // MiB, worker process tree, sum of PSS
	p50         float64 // s, sequential latency (core)
	load        string
}

var (
	python     = flag.String("python", os.Getenv("RAYCTL_PYTHON"), "the venv's python (django-ray 0.2.0, Django, Ray)")
	rayworker  = flag.String("rayworker", "bin/rayworker", "the rayworker binary")
	pythonPath = flag.String("pythonpath", "python", "directory holding manage.py and rayctl_testapp")
	tasks      = flag.Int("tasks", 200, "tasks per throughput run")
	rounds     = flag.Int("rounds", 3, "interleaved rounds")
	syncDR     = flag.String("django-ray-concurrency", "1,2,4,10,100", "django_ray_worker --sync concurrencies")
	syncRW     = flag.String("rayworker-concurrency", "1,2,4,10", "rayworker --sync concurrencies")
	kinds      = flag.String("tasks-kinds", "add,sleep50", "task kinds for the sync comparison")
	gcs        = flag.String("gcs", "", "Ray GCS address: also compare Ray Core modes")
	coreConc   = flag.Int("core-concurrency", 10, "concurrency of both workers in Ray Core mode")
	latencyN   = flag.Int("latency", 20, "sequential tasks for the Ray Core latency")
	skipSync   = flag.Bool("skip-sync", false, "only the Ray Core comparison")
)

func main() {
	flag.Parse()
	if *python == "" {
		fail(fmt.Errorf("-python (or RAYCTL_PYTHON) is required"))
	}
	abs, err := filepath.Abs(*pythonPath)
	if err != nil {
		fail(err)
	}
	*pythonPath = abs
	var configs []config
	if !*skipSync {
		for _, k := range strings.Split(*kinds, ",") {
			for _, c := range ints(*syncDR) {
				configs = append(configs, config{"django-ray", "sync", c, k})
			}
			for _, c := range ints(*syncRW) {
				configs = append(configs, config{"rayworker", "sync", c, k})
			}
		}
	}
	if *gcs != "" {
		configs = append(configs, config{"django-ray", "core", *coreConc, "add"}, config{"rayworker", "core", *coreConc, "add"})
	}
	results := map[string][]result{}
	for r := 1; r <= *rounds; r++ {
		for _, c := range configs {
			res, err := runOne(c)
			if err != nil {
				fail(fmt.Errorf("%s: %w", c, err))
			}
			results[c.String()] = append(results[c.String()], res)
			fmt.Fprintf(os.Stderr, "round %d %-36s %7.1f tasks/s %7.2f ms CPU/task %7.1f MiB PSS (%.1f RSS) p50 %.3fs load %s\n",
				r, c, res.tasksPerSec, res.cpuPerTask, res.peakPSS, res.peakRSS, res.p50, res.load)
		}
	}
	report(configs, results)
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "executors:", err)
	os.Exit(1)
}

func runOne(c config) (result, error) {
	ctx := context.Background()
	res := result{load: loadavg()}
	db, err := benchdb.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return res, err
	}
	defer db.Close()
	pool, s, sdsn := db.Pool, db.Store, db.DSN

	cmd := workerCommand(c, sdsn)
	logf, err := os.CreateTemp("", "bench-executors-*.log")
	if err != nil {
		return res, err
	}
	defer os.Remove(logf.Name())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	defer stop()
	peak := &peakSampler{root: cmd.Process.Pid}
	go peak.run()
	defer peak.stop()

	// ready: the lease row exists, then time for the executors (or Ray) to settle
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var n int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM django_ray_taskworkerlease WHERE is_active`).Scan(&n)
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logf.Name())
			return res, fmt.Errorf("the worker did not start; log:\n%s", tail(string(out), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c.worker == "rayworker" {
		// every executor (or the Ray driver) ready: its start is not what is measured
		want := c.concurrency
		if c.mode == "core" {
			want = 1
		}
		if err := waitExecutors(logf.Name(), want, deadline); err != nil {
			return res, err
		}
	}
	time.Sleep(time.Second)

	callable, args := "rayctl_testapp.tasks.add", "[1, 2]"
	if c.task == "sleep50" {
		callable, args = "rayctl_testapp.tasks.sleep", "[0.05]"
	}
	if c.mode == "core" {
		if res.p50, err = latency(ctx, s, pool, callable, args); err != nil {
			out, _ := os.ReadFile(logf.Name())
			return res, fmt.Errorf("%w; log:\n%s", err, tail(string(out), 3000))
		}
	}
	cpu0 := treeCPU(cmd.Process.Pid)
	batch := make([]store.NewTask, *tasks)
	for i := range batch {
		batch[i] = store.NewTask{CallablePath: callable, ArgsJSON: args}
	}
	if _, err := s.EnqueueMany(ctx, batch); err != nil {
		return res, err
	}
	if err := waitAll(ctx, pool, *tasks+map[bool]int{true: *latencyN}[c.mode == "core"], logf.Name()); err != nil {
		return res, err
	}
	cpu1 := treeCPU(cmd.Process.Pid)
	stop()
	peak.stop()
	var span float64
	// the batch is the last *tasks rows (ids are sequential in a fresh schema)
	if err := pool.QueryRow(ctx, `SELECT EXTRACT(EPOCH FROM max(finished_at) - min(started_at)) FROM
		(SELECT * FROM django_ray_raytaskexecution ORDER BY id DESC LIMIT $1) b`, *tasks).Scan(&span); err != nil {
		return res, err
	}
	res.tasksPerSec = float64(*tasks) / span
	res.cpuPerTask = 1000 * (cpu1 - cpu0) / float64(*tasks)
	res.peakRSS = float64(peak.max) / (1 << 20)
	res.peakPSS = float64(peak.maxPSS) / (1 << 20)
	return res, nil
}

func workerCommand(c config, dsn string) *exec.Cmd {
	conc := strconv.Itoa(c.concurrency)
	env := append(os.Environ(), "DATABASE_URL="+dsn, "RAYCTL_TEST_DATABASE_URL="+dsn, "PYTHONPATH="+*pythonPath,
		"DJANGO_SETTINGS_MODULE=rayctl_testapp.worker_settings", "RAY_ADDRESS=http://127.0.0.1:1")
	var cmd *exec.Cmd
	switch {
	case c.worker == "django-ray" && c.mode == "sync":
		cmd = exec.Command(*python, filepath.Join(*pythonPath, "manage.py"), "django_ray_worker", "--sync", "--concurrency", conc)
	case c.worker == "django-ray":
		cmd = exec.Command(*python, filepath.Join(*pythonPath, "manage.py"), "django_ray_worker", "--cluster", *gcs, "--concurrency", conc)
	default:
		runtimeEnv := fmt.Sprintf(`{"env_vars": {"DJANGO_SETTINGS_MODULE": "rayctl_testapp.settings", "PYTHONPATH": %q}}`, *pythonPath)
		args := []string{"--concurrency", conc, "--python", *python, "--ray-runtime-env", runtimeEnv, "--log-format", "json",
			"--metrics-addr", "127.0.0.1:0"}
		if c.mode == "sync" {
			args = append([]string{"--sync"}, args...)
		} else {
			args = append([]string{"--runner", "ray_core", "--cluster", *gcs}, args...)
		}
		cmd = exec.Command(*rayworker, args...)
	}
	cmd.Dir = *pythonPath
	cmd.Env = env
	return cmd
}

// waitExecutors reads the worker's metrics address from its JSON log and waits until
// rayworker_executors{state="idle"} reaches want.
func waitExecutors(logPath string, want int, deadline time.Time) error {
	var addr string
	for addr == "" {
		b, _ := os.ReadFile(logPath)
		for _, line := range strings.Split(string(b), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "worker started" {
				addr, _ = m["metrics_addr"].(string)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no metrics address in the worker's log:\n%s", tail(string(b), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantLine := fmt.Sprintf(`rayworker_executors{state="idle"} %d`, want)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), wantLine+"\n") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the executors did not all become ready (want %q)", wantLine)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// latency enqueues tasks one at a time, each after the previous succeeded, and returns the
// median of finished_at - created_at (both from the database's clock).
func latency(ctx context.Context, s *store.Store, pool *pgxpool.Pool, callable, args string) (float64, error) {
	var lat []float64
	for range *latencyN {
		t, err := s.Enqueue(ctx, store.NewTask{CallablePath: callable, ArgsJSON: args})
		if err != nil {
			return 0, err
		}
		deadline := time.Now().Add(time.Minute)
		for {
			var state string
			var secs *float64
			if err := pool.QueryRow(ctx, `SELECT state, EXTRACT(EPOCH FROM finished_at - created_at)::float8 FROM django_ray_raytaskexecution WHERE id = $1`,
				t.ID).Scan(&state, &secs); err != nil {
				return 0, err
			}
			if state == "SUCCEEDED" && secs != nil {
				lat = append(lat, *secs)
				break
			}
			if state == "FAILED" || time.Now().After(deadline) {
				return 0, fmt.Errorf("latency task %d: %s", t.ID, state)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	sort.Float64s(lat)
	return lat[len(lat)/2], nil
}

func waitAll(ctx context.Context, pool *pgxpool.Pool, n int, logPath string) error {
	deadline := time.Now().Add(20 * time.Minute)
	for {
		var done, failed int
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'SUCCEEDED'), count(*) FILTER (WHERE state IN ('FAILED', 'LOST'))
			FROM django_ray_raytaskexecution`).Scan(&done, &failed); err != nil {
			return err
		}
		if done == n {
			return nil
		}
		if failed > 0 || time.Now().After(deadline) {
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("%d of %d succeeded, %d failed; worker log:\n%s", done, n, failed, tail(string(out), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tree lists pid and its descendants.
func tree(root int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// treeCPU is the user+system CPU seconds of root's live process tree, including the children
// those processes have reaped.
func treeCPU(root int) float64 {
	var total float64
	for _, pid := range tree(root) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseFloat(f[i], 64)
			total += v
		}
	}
	return total / 100 // USER_HZ
}

type peakSampler struct {
	root   int
	max    int64 // sum of RSS (counts shared pages once per process)
	maxPSS int64 // sum of PSS (shared pages split among the processes sharing them)
	quit   chan struct{}
	done   chan struct{}
}

func (p *peakSampler) run() {
	p.quit, p.done = make(chan struct{}), make(chan struct{})
	defer close(p.done)
	for {
		var sum, pss int64
		for _, pid := range tree(p.root) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				if len(f) < 2 {
					continue
				}
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				switch f[0] {
				case "Rss:":
					sum += kb << 10
				case "Pss:":
					pss += kb << 10
				}
			}
		}
		p.max, p.maxPSS = max(p.max, sum), max(p.maxPSS, pss)
		select {
		case <-p.quit:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *peakSampler) stop() {
	if p.quit == nil {
		return
	}
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func report(configs []config, results map[string][]result) {
	fmt.Println("| worker | mode | concurrency | task | tasks/s (median; all rounds) | CPU ms/task | peak memory MiB, PSS (RSS) | p50 latency | load avg at start |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	med := map[string]result{}
	for _, c := range configs {
		rs := results[c.String()]
		var tps, cpu, rss, pss, p50 []float64
		var all []string
		var loads []string
		for _, r := range rs {
			tps, cpu, rss, pss, p50 = append(tps, r.tasksPerSec), append(cpu, r.cpuPerTask), append(rss, r.peakRSS), append(pss, r.peakPSS), append(p50, r.p50)
			all = append(all, fmt.Sprintf("%.1f", r.tasksPerSec))
			loads = append(loads, r.load)
		}
		m := result{tasksPerSec: median(tps), cpuPerTask: median(cpu), peakRSS: median(rss), peakPSS: median(pss), p50: median(p50)}
		med[c.String()] = m
		lat := "—"
		if c.mode == "core" {
			lat = fmt.Sprintf("%.3f s", m.p50)
		}
		fmt.Printf("| %s | %s | %d | %s | **%.1f** (%s) | %.2f | %.0f (%.0f) | %s | %s |\n", c.worker, c.mode, c.concurrency, c.task,
			m.tasksPerSec, strings.Join(all, ", "), m.cpuPerTask, m.peakPSS, m.peakRSS, lat, strings.Join(loads, "; "))
	}
	fmt.Println()
	// ratios: rayworker's best sync concurrency against django-ray at its default (10) and
	// at its best, per task kind
	for _, k := range strings.Split(*kinds, ",") {
		var bestRW, bestDR, defDR result
		var bestRWc, bestDRc int
		for _, c := range configs {
			if c.mode != "sync" || c.task != k {
				continue
			}
			m := med[c.String()]
			if c.worker == "rayworker" && m.tasksPerSec > bestRW.tasksPerSec {
				bestRW, bestRWc = m, c.concurrency
			}
			if c.worker == "django-ray" {
				if m.tasksPerSec > bestDR.tasksPerSec {
					bestDR, bestDRc = m, c.concurrency
				}
				if c.concurrency == 10 {
					defDR = m
				}
			}
		}
		if bestRW.tasksPerSec > 0 && bestDR.tasksPerSec > 0 {
			fmt.Printf("- %s: rayworker --sync (best, c=%d) %.1f tasks/s = **%.1fx** django-ray --sync at its default concurrency 10 (%.1f), **%.1fx** at its best (c=%d, %.1f)\n",
				k, bestRWc, bestRW.tasksPerSec, ratio(bestRW.tasksPerSec, defDR.tasksPerSec), defDR.tasksPerSec,
				ratio(bestRW.tasksPerSec, bestDR.tasksPerSec), bestDRc, bestDR.tasksPerSec)
		}
	}
	if *gcs != "" {
		dr, rw := med[config{"django-ray", "core", *coreConc, "add"}.String()], med[config{"rayworker", "core", *coreConc, "add"}.String()]
		fmt.Printf("- Ray Core: p50 latency %.3f s (rayworker) vs %.3f s (django-ray); throughput %.1f vs %.1f tasks/s = **%.1fx**\n",
			rw.p50, dr.p50, rw.tasksPerSec, dr.tasksPerSec, ratio(rw.tasksPerSec, dr.tasksPerSec))
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
