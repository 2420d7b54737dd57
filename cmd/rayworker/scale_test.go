package main

// The scale-out tier (opt-in: RAYCTL_SCALE=1; docs/benchmarks.md has its figures): a
// two-node Ray cluster on this machine (a head from scripts/ray.sh, and a second node joined
// with `ray start --address`), three rayworker replicas in Ray Job mode against it and one
// database. It measures tasks/s with 1, 2 and 3 replicas, checks that the job drivers ran on
// both nodes, then kills one replica (SIGKILL) and the second Ray node (SIGKILL of every
// process it started) mid-run, and checks that nothing is lost and nothing ran twice, with
// the time each loss took to recover.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker/workertest"
)

// twoNodeRay is a private Ray cluster: a head and one more node, on 127.0.0.1.
type twoNodeRay struct {
	dir, addr, gcs, python, pythonPath string
	head, node2                        string // node ids
	node2Marker                        string // environment marker of every node-2 process
	client                             *rayjobs.Client
}

func freePort(t *testing.T) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(storetest.FreeAddr(t))
	return port
}

func startTwoNodeRay(t *testing.T) *twoNodeRay {
	t.Helper()
	root := workertest.RepoRoot()
	dir, err := os.MkdirTemp("", "rs") // short: Ray's socket paths live under it
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "scripts", "ray.sh"), "start", dir)
	cmd.Env = append(os.Environ(), "RAYCTL_RAY_CPUS=3")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	t.Cleanup(func() {
		stop := exec.Command(filepath.Join(root, "scripts", "ray.sh"), "stop", dir)
		if b, err := stop.CombinedOutput(); err != nil {
			t.Logf("ray.sh stop: %v\n%s", err, b)
		}
	})
	if err != nil {
		skipOrFailScale(t, fmt.Sprintf("scripts/ray.sh start: %v", err))
	}
	r := &twoNodeRay{dir: dir}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, "'")
		switch k {
		case "RAY_ADDRESS":
			r.addr = v
		case "RAYCTL_RAY_GCS":
			r.gcs = v
		case "RAYCTL_PYTHON":
			r.python = v
		case "RAYCTL_PYTHONPATH":
			r.pythonPath = v
		}
	}
	if r.addr == "" || r.gcs == "" || r.python == "" {
		t.Fatalf("scripts/ray.sh start printed no addresses:\n%s", out)
	}
	if r.client, err = rayjobs.New(rayjobs.Options{Address: r.addr, UserAgent: "rayctl/scale-test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.client.Close)

	// The second node: same machine, its own temp dir and ports, and a marker in its
	// environment (inherited by its raylet, workers and job drivers) so that it alone can be
	// killed. RAYCTL_RAY_DIR makes scripts/ray.sh stop clean it up with the head.
	venvBin := filepath.Dir(r.python)
	r.node2Marker = "RAYCTL_RAY_NODE=" + filepath.Join(dir, "n2")
	wmin := 45000 + (os.Getpid()%40)*100
	join := exec.Command(filepath.Join(venvBin, "ray"), "start", "--address", r.gcs, "--num-cpus", "3",
		"--node-ip-address", "127.0.0.1", "--temp-dir", filepath.Join(dir, "n2"), "--disable-usage-stats",
		"--object-store-memory", strconv.Itoa(200<<20), "--node-manager-port", freePort(t), "--object-manager-port", freePort(t),
		"--metrics-export-port", freePort(t), "--dashboard-agent-listen-port", freePort(t), "--dashboard-agent-grpc-port", freePort(t),
		"--runtime-env-agent-port", freePort(t), "--min-worker-port", strconv.Itoa(wmin), "--max-worker-port", strconv.Itoa(wmin+99))
	join.Env = append(os.Environ(), "PATH="+venvBin+":"+os.Getenv("PATH"), "RAYCTL_RAY_DIR="+dir, r.node2Marker, "RAY_USAGE_STATS_ENABLED=0")
	join.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if b, err := join.CombinedOutput(); err != nil {
		t.Fatalf("ray start --address %s: %v\n%s", r.gcs, err, b)
	}
	workertest.Eventually(t, 120*time.Second, "two ALIVE Ray nodes", func() bool {
		nodes := r.nodes(t)
		r.head, r.node2 = "", ""
		for id, n := range nodes {
			if n.State != "ALIVE" {
				continue
			}
			if n.IsHead {
				r.head = id
			} else {
				r.node2 = id
			}
		}
		return r.head != "" && r.node2 != ""
	})
	t.Logf("two-node Ray cluster up in %s: head %.12s, node 2 %.12s (Jobs API %s, GCS %s)", time.Since(start).Round(time.Second), r.head, r.node2, r.addr, r.gcs)
	return r
}

type rayNode struct {
	State  string `json:"state"`
	IsHead bool   `json:"is_head_node"`
}

// nodes reads Ray's state API (the dashboard's /api/v0/nodes).
func (r *twoNodeRay) nodes(t *testing.T) map[string]rayNode {
	t.Helper()
	resp, err := http.Get(r.addr + "/api/v0/nodes?limit=100")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result struct {
				Result []struct {
					NodeID string `json:"node_id"`
					rayNode
				} `json:"result"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil
	}
	out := map[string]rayNode{}
	for _, n := range body.Data.Result.Result {
		out[n.NodeID] = n.rayNode
	}
	return out
}

// node2PIDs lists the live processes of node 2 (its marker is in their environment).
func (r *twoNodeRay) node2PIDs() []int {
	return workertest.WithEnv(r.node2Marker)
}

// killNode2 SIGKILLs every process of node 2 at once, as a machine failure would.
func (r *twoNodeRay) killNode2(t *testing.T) int {
	t.Helper()
	killed := 0
	for round := 0; round < 50; round++ {
		pids := r.node2PIDs()
		if len(pids) == 0 {
			return killed
		}
		for _, pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("node 2 still has processes: %v", r.node2PIDs())
	return killed
}

func skipOrFailScale(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true with RAYCTL_SCALE=1, so this is a failure, not a skip")
	}
	t.Skip(msg)
}

// scaleWorker starts a replica in Ray Job mode whose job drivers each reserve a CPU, so
// Ray places them on either node.
func (r *twoNodeRay) scaleWorker(t *testing.T, dsn string, concurrency int) *proc {
	t.Helper()
	env, _ := json.Marshal(map[string]any{"env_vars": map[string]string{
		"DJANGO_SETTINGS_MODULE": "rayctl_testapp.settings", "PYTHONPATH": r.pythonPath}})
	p := startRayWorker(t, dsn, nil, "--ray-address", r.addr, "--ray-runtime-env", string(env),
		"--concurrency", strconv.Itoa(concurrency), "--ray-entrypoint-num-cpus", "1",
		"--max-task-attempts", "3", "--retry-backoff-seconds", "0",
		"--worker-heartbeat-seconds", "1", "--worker-lease-seconds", "3", "--metrics-addr", "127.0.0.1:0")
	workertest.Eventually(t, 60*time.Second, "the replica to be ready", func() bool {
		code, _ := p.get("/readyz")
		return code == http.StatusOK
	})
	return p
}

func stopWorkers(t *testing.T, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range ps {
		if code := p.exitCode(90 * time.Second); code != exitSIGTERM {
			t.Fatalf("replica exit %d, want %d", code, exitSIGTERM)
		}
	}
}

// enqueueRecords enqueues n record tasks tagged prefix-i that each take seconds.
func enqueueRecords(t *testing.T, s *store.Store, runs, prefix string, n int, seconds float64) map[int64]string {
	t.Helper()
	tasks := make([]store.NewTask, n)
	for i := range tasks {
		tasks[i] = store.NewTask{CallablePath: "rayctl_testapp.tasks.record",
			ArgsJSON: fmt.Sprintf("[%q, \"%s-%d\", %g]", runs, prefix, i, seconds)}
	}
	ids, err := s.EnqueueMany(t.Context(), tasks)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]string{}
	for i, id := range ids {
		out[id] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func rows(t *testing.T, s *store.Store, ids map[int64]string) map[int64]store.Task {
	t.Helper()
	list := make([]int64, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	got, err := s.ListTasks(t.Context(), store.TaskFilter{IDs: list})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]store.Task{}
	for _, r := range got {
		out[r.ID] = r
	}
	return out
}

func waitAllSucceeded(t *testing.T, s *store.Store, ids map[int64]string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done, bad := 0, ""
		for _, r := range rows(t, s, ids) {
			switch r.State {
			case store.StateSucceeded:
				done++
			case store.StateFailed, store.StateCancelled, store.StateLost:
				bad = fmt.Sprintf("task %d (%s) ended %s: %s", r.ID, ids[r.ID], r.State, str(r.ErrorMessage))
			}
		}
		if bad != "" {
			t.Fatal(bad)
		}
		if done == len(ids) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks SUCCEEDED after %s", done, len(ids), within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runs reads the record file: per tag, its start and end lines.
func readRuns(t *testing.T, path string) (starts, ends map[string]int) {
	t.Helper()
	starts, ends = map[string]int{}, map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		switch fields[1] {
		case "start":
			starts[fields[0]]++
		case "end":
			ends[fields[0]]++
		}
	}
	return starts, ends
}

// jobsByTask lists the Ray jobs of this test's tasks by task id (the cluster is private).
func (r *twoNodeRay) jobsByTask(t *testing.T) map[int64][]rayjobs.JobDetails {
	t.Helper()
	all, err := r.client.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64][]rayjobs.JobDetails{}
	for _, j := range all {
		if id, err := strconv.ParseInt(j.Metadata["django_ray_task_id"], 10, 64); err == nil {
			out[id] = append(out[id], j)
		}
	}
	return out
}

func TestScaleOut(t *testing.T) {
	if os.Getenv("RAYCTL_SCALE") != "1" {
		t.Skip("the scale-out tier is opt-in: RAYCTL_SCALE=1 (a two-node Ray cluster and three replicas; docs/benchmarks.md)")
	}
	ray := startTwoNodeRay(t)
	s, dsn := migratedDSN(t)
	runs := filepath.Join(ray.dir, "runs.log")
	all := map[int64]string{}

	// 1. Throughput with 1, 2 and 3 replicas: each replica has 2 slots and every driver
	// reserves one of the cluster's 6 (logical) CPUs, so 2, 4 and 6 tasks run at once. The
	// tasks wait 5 s (I/O-bound work): on this 2-core machine Ray's own cost per job (~1.5 s,
	// mostly CPU) would otherwise decide the rate whatever the number of replicas.
	const n, taskSeconds = 24, 5.0
	rates := map[int]float64{}
	for replicas := 1; replicas <= 3; replicas++ {
		var ps []*proc
		for i := 0; i < replicas; i++ {
			ps = append(ps, ray.scaleWorker(t, dsn, 2))
		}
		ids := enqueueRecords(t, s, runs, fmt.Sprintf("r%d", replicas), n, taskSeconds)
		t0 := time.Now()
		t1 := waitAllSucceeded(t, s, ids, 10*time.Minute)
		rates[replicas] = float64(n) / t1.Sub(t0).Seconds()
		t.Logf("SCALE %d replica(s) x 2 slots: %d tasks of %.0fs in %s = %.2f tasks/s", replicas, n, taskSeconds, t1.Sub(t0).Round(10*time.Millisecond), rates[replicas])
		for id, tag := range ids {
			all[id] = tag
		}
		stopWorkers(t, ps...)
	}

	// the drivers ran on both nodes
	byNode := map[string]int{}
	for id, jobs := range ray.jobsByTask(t) {
		if _, ours := all[id]; !ours {
			continue
		}
		for _, j := range jobs {
			if j.Status == rayjobs.StatusSucceeded {
				byNode[j.DriverNodeID]++
			}
		}
	}
	t.Logf("SCALE job drivers by node: head %d, node 2 %d", byNode[ray.head], byNode[ray.node2])
	if byNode[ray.head] == 0 || byNode[ray.node2] == 0 || byNode[ray.head]+byNode[ray.node2] != len(all) {
		t.Fatalf("drivers by node %v (head %.12s, node 2 %.12s); want both nodes used, %d in all", byNode, ray.head, ray.node2, len(all))
	}

	// 2. Faults: three replicas, 24 tasks of 6 s; kill one replica, then the second node.
	var ps []*proc
	for i := 0; i < 3; i++ {
		ps = append(ps, ray.scaleWorker(t, dsn, 2))
	}
	victimID := ps[0].workerID()
	ids := enqueueRecords(t, s, runs, "fault", 24, 6)
	for id, tag := range ids {
		all[id] = tag
	}
	var held []int64
	workertest.Eventually(t, 3*time.Minute, "the victim replica to run tasks", func() bool {
		held = held[:0]
		for _, r := range rows(t, s, ids) {
			if r.State == store.StateRunning && r.ClaimedByWorker != nil && *r.ClaimedByWorker == victimID && r.RayJobID != nil {
				held = append(held, r.ID)
			}
		}
		return len(held) > 0
	})
	if err := ps[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedReplica := time.Now()
	workertest.Eventually(t, 3*time.Minute, "the dead replica's tasks to be adopted", func() bool {
		cur := rows(t, s, ids)
		for _, id := range held {
			r := cur[id]
			if r.State == store.StateRunning && (r.ClaimedByWorker == nil || *r.ClaimedByWorker == victimID) {
				return false
			}
		}
		return true
	})
	replicaRecovery := time.Since(killedReplica)
	t.Logf("SCALE replica SIGKILL: its %d running tasks adopted by the other replicas in %s", len(held), replicaRecovery.Round(10*time.Millisecond))

	// the second node, while tasks run there (their start is recorded, their end not yet)
	onNode2 := map[int64]string{} // task id -> the job that died with the node
	workertest.Eventually(t, 3*time.Minute, "tasks running on node 2", func() bool {
		starts, ends := readRuns(t, runs)
		clear(onNode2)
		for id, jobs := range ray.jobsByTask(t) {
			tag, ok := ids[id]
			if !ok {
				continue
			}
			for _, j := range jobs {
				if j.DriverNodeID == ray.node2 && j.Status == rayjobs.StatusRunning && starts[tag] == 1 && ends[tag] == 0 {
					onNode2[id] = j.SubmissionID
				}
			}
		}
		return len(onNode2) >= 2
	})
	killed := ray.killNode2(t)
	killedNode := time.Now()
	t.Logf("SCALE killed node 2 (%d processes) while it ran %d drivers", killed, len(onNode2))
	requeued := map[int64]time.Duration{} // when rayworker recorded the failed attempt (the row left the dead job)
	workertest.Eventually(t, 5*time.Minute, "the lost node's tasks to run again", func() bool {
		cur := rows(t, s, ids)
		for id, job := range onNode2 {
			r := cur[id]
			if _, ok := requeued[id]; !ok && (r.RayJobID == nil || *r.RayJobID != job || r.State != store.StateRunning) {
				requeued[id] = time.Since(killedNode)
			}
		}
		for id, job := range onNode2 {
			r := cur[id]
			if r.State != store.StateSucceeded && (r.RayJobID == nil || *r.RayJobID == job || r.State != store.StateRunning) {
				return false
			}
		}
		return true
	})
	var backInQueue time.Duration
	for id := range onNode2 {
		backInQueue = max(backInQueue, requeued[id])
		t.Logf("SCALE task %d (%s): its failed attempt recorded (back in the queue) %s after the node loss", id, ids[id], requeued[id].Round(10*time.Millisecond))
	}
	nodeRecovery := time.Since(killedNode)
	// how much of that is Ray noticing (the dead jobs' end time) and how much rayworker
	var rayNoticed time.Duration
	for _, job := range onNode2 {
		j, err := ray.client.Get(t.Context(), job)
		if err != nil {
			t.Fatal(err)
		}
		if j.EndTime.IsZero() || j.Status != rayjobs.StatusFailed {
			t.Fatalf("the dead node's job %s: %s (end %v): %s", job, j.Status, j.EndTime, j.Message)
		}
		if d := j.EndTime.Sub(killedNode); d > rayNoticed {
			rayNoticed = d
		}
		t.Logf("SCALE the dead node's job %s: %s after %s: %.120s", job, j.Status, j.EndTime.Sub(killedNode).Round(10*time.Millisecond), j.Message)
	}
	t.Logf("SCALE node 2 SIGKILL: its %d tasks resubmitted in %s (Ray marked their jobs FAILED after %s; rayworker resubmitted %s after that)",
		len(onNode2), nodeRecovery.Round(10*time.Millisecond), rayNoticed.Round(10*time.Millisecond), (nodeRecovery - rayNoticed).Round(10*time.Millisecond))
	done := waitAllSucceeded(t, s, ids, 10*time.Minute)
	t.Logf("SCALE fault run: all 24 tasks SUCCEEDED %s after the node loss", done.Sub(killedNode).Round(10*time.Millisecond))
	stopWorkers(t, ps[1:]...)

	// 3. Nothing lost, nothing run twice.
	final := rows(t, s, all)
	if len(final) != len(all) {
		t.Fatalf("%d rows of %d", len(final), len(all))
	}
	starts, ends := readRuns(t, runs)
	jobs := ray.jobsByTask(t)
	var twice, restarted []string
	for id, tag := range all {
		if final[id].State != store.StateSucceeded {
			t.Errorf("task %d (%s) is %s", id, tag, final[id].State)
		}
		if ends[tag] != 1 {
			twice = append(twice, fmt.Sprintf("%s ended %d times", tag, ends[tag]))
		}
		succeeded := 0
		for _, j := range jobs[id] {
			if j.Status == rayjobs.StatusSucceeded {
				succeeded++
			}
		}
		if succeeded != 1 {
			twice = append(twice, fmt.Sprintf("%s has %d SUCCEEDED Ray jobs", tag, succeeded))
		}
		_, lost := onNode2[id]
		switch {
		case lost && starts[tag] != 2, !lost && starts[tag] != 1:
			twice = append(twice, fmt.Sprintf("%s started %d times (on the lost node: %v)", tag, starts[tag], lost))
		case lost && starts[tag] == 2:
			restarted = append(restarted, tag)
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		t.Fatalf("not exactly once:\n  %s", strings.Join(twice, "\n  "))
	}
	t.Logf("SCALE exactly once: %d tasks, each ended once and SUCCEEDED through one Ray job; the %d whose run died with node 2 ran once more, on the head",
		len(all), len(restarted))
	t.Logf("SCALE summary: tasks/s 1=%.2f 2=%.2f 3=%.2f; replica loss recovered in %s; node loss: Ray's detection %s, back in the queue %s, running again %s",
		rates[1], rates[2], rates[3], replicaRecovery.Round(10*time.Millisecond), rayNoticed.Round(10*time.Millisecond),
		backInQueue.Round(10*time.Millisecond), nodeRecovery.Round(10*time.Millisecond))
}
