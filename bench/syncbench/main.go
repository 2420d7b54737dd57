// Command syncbench measures `rayworker --sync` throughput on trivial tasks: it enqueues N
// tasks into a fresh schema of the database at DATABASE_URL, runs the rayworker binary until
// all of them succeeded, and reports tasks/s (from the rows' started_at/finished_at), the
// worker's CPU time and peak RSS (from /proc), and the CPU time of the task processes.
// bench/sync_throughput.sh builds the binary and provides a throwaway PostgreSQL.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rayctl/rayctl/bench/internal/benchdb"
	"github.com/rayctl/rayctl/store"
)

func main() {
	var (
		bin         = flag.String("rayworker", "bin/rayworker", "the rayworker binary")
		tasks       = flag.Int("tasks", 2000, "tasks to run")
		concurrency = flag.Int("concurrency", 10, "rayworker --concurrency")
		entrypoint  = flag.String("entrypoint", "python3 testdata/contract_entrypoint.py", "rayworker --entrypoint")
		callable    = flag.String("callable", "tests.tasks.add", "callable_path of every task")
		args        = flag.String("args", "[1, 2]", "args_json of every task")
	)
	flag.Parse()
	if err := run(*bin, *tasks, *concurrency, *entrypoint, *callable, *args); err != nil {
		fmt.Fprintln(os.Stderr, "syncbench:", err)
		os.Exit(1)
	}
}

func run(bin string, n, concurrency int, entrypoint, callable, args string) error {
	ctx := context.Background()
	db, err := benchdb.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer db.Close()
	pool, s, sdsn := db.Pool, db.Store, db.DSN
	batch := make([]store.NewTask, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, store.NewTask{CallablePath: callable, ArgsJSON: args})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := s.EnqueueMany(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}

	cmd := exec.Command(bin, "--sync", "--concurrency", strconv.Itoa(concurrency), "--entrypoint", entrypoint,
		"--log-format", "json", "--worker-heartbeat-seconds", "5")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+sdsn)
	logf, err := os.CreateTemp("", "syncbench-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(logf.Name())
	cmd.Stdout, cmd.Stderr = logf, logf
	wallStart := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill() //nolint:errcheck
	var done int64
	for deadline := time.Now().Add(30 * time.Minute); ; {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM django_ray_raytaskexecution WHERE state = 'SUCCEEDED'`).Scan(&done); err != nil {
			return err
		}
		if done == int64(n) {
			break
		}
		var failed int64
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM django_ray_raytaskexecution WHERE state IN ('FAILED', 'LOST')`).Scan(&failed)
		if failed > 0 || time.Now().After(deadline) {
			out, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("%d of %d succeeded, %d failed; worker log:\n%s", done, n, failed, tail(string(out), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	wall := time.Since(wallStart)
	stat, status, err := procStats(cmd.Process.Pid)
	if err != nil {
		return err
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()

	var span float64
	if err := pool.QueryRow(ctx, `SELECT EXTRACT(EPOCH FROM max(finished_at) - min(started_at)) FROM django_ray_raytaskexecution`).Scan(&span); err != nil {
		return err
	}
	tick := 100.0 // USER_HZ on Linux
	selfCPU := (stat.utime + stat.stime) / tick
	childCPU := (stat.cutime + stat.cstime) / tick
	fmt.Printf("tasks=%d concurrency=%d entrypoint=%q cpus=%d\n", n, concurrency, entrypoint, runtime.NumCPU())
	fmt.Printf("throughput: %.1f tasks/s (%d tasks in %.2f s, first start to last finish)\n", float64(n)/span, n, span)
	fmt.Printf("rayworker CPU: %.2f s user+sys = %.1f%% of one core over %.2f s wall, %.2f ms per task\n",
		selfCPU, 100*selfCPU/wall.Seconds(), wall.Seconds(), 1000*selfCPU/float64(n))
	fmt.Printf("task processes CPU: %.2f s user+sys (%.2f ms per task)\n", childCPU, 1000*childCPU/float64(n))
	fmt.Printf("rayworker peak RSS: %s\n", status)
	fmt.Printf("| %d | %d | `%s` | %.1f | %.2f | %.0f%% | %.2f | %s |\n", n, concurrency, entrypoint, float64(n)/span,
		1000*selfCPU/float64(n), 100*selfCPU/wall.Seconds(), 1000*childCPU/float64(n), status)
	return nil
}

type cpuStat struct{ utime, stime, cutime, cstime float64 }

// procStats reads the CPU times (clock ticks) of pid and its reaped children, and VmHWM.
func procStats(pid int) (cpuStat, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuStat{}, "", err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// after the command: state(3) ... utime is field 14 overall, i.e. index 11 here
	f := func(i int) float64 { v, _ := strconv.ParseFloat(fields[i], 64); return v }
	st := cpuStat{utime: f(11), stime: f(12), cutime: f(13), cstime: f(14)}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, "", err
	}
	hwm := "?"
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			hwm = fmt.Sprintf("%.1f MiB", float64(kb)/1024)
		}
	}
	return st, hwm, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
