package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func stageLeases(t *testing.T, s *store.Store, sc storetest.Schema) (orphan, live store.Task) {
	t.Helper()
	ctx := t.Context()
	for _, l := range []store.Lease{
		{WorkerID: "w-live", Hostname: store.LeaseHostname("host-a", "pool", 4), PID: 11, QueueName: "default"},
		{WorkerID: "w-hung", Hostname: "host-b", PID: 22, QueueName: "*"},
	} {
		if err := s.UpsertLease(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '10 minutes' WHERE worker_id = 'w-hung'`); err != nil {
		t.Fatal(err)
	}
	live = storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w-live"), StartedAt: storetest.Ago(time.Minute)})
	orphan = storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w-hung"), StartedAt: storetest.Ago(20 * time.Minute),
		LastHeartbeatAt: storetest.Ago(10 * time.Minute), RayJobID: storetest.Ptr("raysubmit_abc"), CallablePath: "app.tasks.slow"})
	return orphan, live
}

func TestInspectLeasesCommand(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN}
	orphan, _ := stageLeases(t, s, sc)

	r := rayctlWith(t, runOpts{vars: vars}, "inspect-leases").expect(t, exitOK)
	for _, line := range strings.Split(r.stdout, "\n") {
		// the mode a rayworker lease carries has a column of its own; django-ray's leases have none
		if strings.HasPrefix(line, "w-live") && (!strings.Contains(line, "host-a  11   pool x4     default") || strings.Contains(line, "(rayworker")) ||
			strings.HasPrefix(line, "w-hung") && !strings.Contains(line, "host-b  22   django-ray  *") {
			t.Errorf("lease line %q", line)
		}
	}
	for _, want := range []string{"leases: 1 fresh, 1 stale, 0 expired (lease TTL 1m0s)", "w-hung", "stale",
		"orphan candidates: 1 RUNNING/CANCELLING tasks", "owner stale", "raysubmit_abc", "app.tasks.slow"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text lacks %q:\n%s", want, r.stdout)
		}
	}
	r = rayctlWith(t, runOpts{vars: vars}, "inspect-leases", "--stale-only", "-o", "json").expect(t, exitOK)
	var rep struct {
		Counts struct{ Fresh, Stale, Expired int } `json:"counts"`
		Leases []struct {
			WorkerID     string   `json:"worker_id"`
			Hostname     string   `json:"hostname"`
			Mode         string   `json:"mode"`
			PID          int      `json:"pid"`
			Queues       []string `json:"queues"`
			Verdict      string   `json:"verdict"`
			HeartbeatAge float64  `json:"heartbeat_age_seconds"`
			Running      int      `json:"running"`
			TaskIDs      []int64  `json:"task_ids"`
		} `json:"leases"`
		Orphans []struct {
			Task struct {
				ID int64 `json:"id"`
			} `json:"task"`
			Reason string `json:"reason"`
		} `json:"orphans"`
		OrphansTotal int64 `json:"orphans_total"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Counts.Fresh != 1 || len(rep.Leases) != 1 || rep.Leases[0].WorkerID != "w-hung" || rep.Leases[0].Verdict != "stale" || rep.Leases[0].Mode != "" ||
		rep.Leases[0].HeartbeatAge < 590 || rep.Leases[0].Running != 1 || rep.Leases[0].TaskIDs[0] != orphan.ID ||
		len(rep.Orphans) != 1 || rep.Orphans[0].Reason != "owner_stale" || rep.OrphansTotal != 1 {
		t.Fatalf("json: %s", r.stdout)
	}
	r = rayctlWith(t, runOpts{vars: vars}, "inspect-leases", "-o", "jsonl").expect(t, exitOK)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"kind":"lease"`) || !strings.Contains(lines[2], `"kind":"orphan"`) {
		t.Fatalf("jsonl: %s", r.stdout)
	}
	// a TTL long enough makes the hung worker fresh: no orphans
	r = rayctlWith(t, runOpts{vars: vars}, "inspect-leases", "--lease-ttl", "1h").expect(t, exitOK)
	if !strings.Contains(r.stdout, "orphan candidates: none") {
		t.Fatalf("ttl 1h:\n%s", r.stdout)
	}
	rayctlWith(t, runOpts{vars: vars}, "inspect-leases", "--lease-ttl", "-1s").expect(t, exitUsage).oneLine(t, "invalid --lease-ttl")
	rayctlWith(t, runOpts{vars: vars}, "inspect-leases", "--lease-ttl", "soon").expect(t, exitUsage).oneLine(t, `invalid --lease-ttl "soon": want a duration`)
}

func TestTasksCommands(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN}
	var failed []store.Task
	for i := 0; i < 5; i++ {
		failed = append(failed, dirtyFailed(t, s, "default", store.StateFailed))
	}
	storetest.Insert(t, s, store.Task{CallablePath: "app.tasks.mail", QueueName: "emails"})

	r := rayctlWith(t, runOpts{vars: vars}, "tasks", "ls", "--state", "failed", "--limit", "2").expect(t, exitOK)
	if !strings.HasPrefix(r.stdout, "ID  STATE   QUEUE    CALLABLE") || strings.Count(r.stdout, "billing.tasks.charge") != 2 ||
		!strings.Contains(r.stdout, fmt.Sprintf("2 of 5 shown; next page: --before %d", failed[3].ID)) {
		t.Fatalf("ls page 1:\n%s", r.stdout)
	}
	r = rayctlWith(t, runOpts{vars: vars}, "tasks", "ls", "--state", "FAILED", "--limit", "2", "--before", itoa(failed[3].ID), "-o", "json").expect(t, exitOK)
	var page struct {
		Tasks []struct {
			ID           int64  `json:"id"`
			State        string `json:"state"`
			CallablePath string `json:"callable_path"`
			QueueName    string `json:"queue_name"`
			ErrorMessage string `json:"error_message"`
		} `json:"tasks"`
		Total int64  `json:"total"`
		Next  *int64 `json:"next_before_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Tasks) != 2 || page.Tasks[0].ID != failed[2].ID || page.Total != 5 || page.Next == nil || *page.Next != failed[1].ID ||
		page.Tasks[0].ErrorMessage != "ValueError: card declined" {
		t.Fatalf("ls page 2: %s", r.stdout)
	}
	r = rayctlWith(t, runOpts{vars: vars}, "tasks", "ls", "--queue", "emails", "-o", "jsonl").expect(t, exitOK)
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `"callable_path":"app.tasks.mail"`) {
		t.Fatalf("jsonl: %q", r.stdout)
	}
	r = rayctlWith(t, runOpts{vars: vars}, "tasks", "ls", "--callable", "nothing.*").expect(t, exitOK)
	if strings.TrimSpace(r.stdout) != "no tasks match" {
		t.Fatalf("empty: %q", r.stdout)
	}
	r = rayctlWith(t, runOpts{vars: vars}, "tasks", "count", "--by", "queue").expect(t, exitOK)
	if !strings.Contains(r.stdout, "QUEUE    TASKS\ndefault  5\nemails   1") {
		t.Fatalf("count:\n%s", r.stdout)
	}
	r = rayctlWith(t, runOpts{vars: vars}, "tasks", "count", "--by", "error", "--state", "FAILED", "--newer-than", "2h", "-o", "json").expect(t, exitOK)
	if !strings.Contains(r.stdout, `"key": "ValueError: card declined"`) || !strings.Contains(r.stdout, `"count": 5`) {
		t.Fatalf("count json:\n%s", r.stdout)
	}

	// show: timeline, error, traceback, owner, args
	r = rayctlWith(t, runOpts{vars: vars}, "tasks", "show", itoa(failed[0].ID)).expect(t, exitOK)
	for _, want := range []string{fmt.Sprintf("task %d  FAILED  (attempt 3)", failed[0].ID), "ray job      raysubmit_old", "worker       w-old: unknown (no lease row)",
		"created", "started", "last heartbeat", "finished", "run after", "args\n  [\n    42\n  ]", `"cents": 100`, "error\n  ValueError: card declined",
		"traceback\n  Traceback (most recent call last): ...", "result: none"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	// a resultfs reference resolved against RESULT_STORAGE_FILESYSTEM_PATH
	dir := t.TempDir()
	digest := strings.Repeat("ab", 32)
	rel := "ab/ab/" + digest + ".json"
	if err := os.MkdirAll(filepath.Join(dir, "ab", "ab"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ab", "ab", digest+".json"), []byte(`[1, 2, 3]`), 0o644); err != nil {
		t.Fatal(err)
	}
	big := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultReference: storetest.Ptr("resultfs://sha256/" + digest + "?rel=" + rel + "&bytes=9")})
	env := map[string]string{"DATABASE_URL": sc.DSN, "RESULT_STORAGE_FILESYSTEM_PATH": dir}
	r = rayctlWith(t, runOpts{vars: env}, "tasks", "show", itoa(big.ID)).expect(t, exitOK)
	if !strings.Contains(r.stdout, "file "+rel+" (9 bytes) under RESULT_STORAGE_FILESYSTEM_PATH") ||
		!strings.Contains(r.stdout, "on this machine: "+filepath.Join(dir, "ab", "ab", digest+".json")+" (present, 9 bytes)") {
		t.Fatalf("resultfs:\n%s", r.stdout)
	}
	digestOnly := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultReference: storetest.Ptr("oversize://sha256/" + digest + "?bytes=5000000")})
	r = rayctlWith(t, runOpts{vars: vars}, "tasks", "show", itoa(digestOnly.ID), "-o", "json").expect(t, exitOK)
	var d struct {
		Result struct {
			Kind      string `json:"kind"`
			Reference struct {
				Scheme      string `json:"scheme"`
				Retrievable bool   `json:"retrievable"`
				SHA256      string `json:"sha256"`
				Bytes       int64  `json:"bytes"`
			} `json:"reference"`
		} `json:"result"`
		Timeline []struct {
			Name string `json:"name"`
		} `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.Result.Kind != "reference" || d.Result.Reference.Scheme != "oversize" ||
		d.Result.Reference.Retrievable || d.Result.Reference.SHA256 != digest || d.Result.Reference.Bytes != 5000000 || d.Timeline[0].Name != "created" {
		t.Fatalf("show json: %s %v", r.stdout, err)
	}

	rayctlWith(t, runOpts{vars: vars}, "tasks", "show", "999999").expect(t, exitNoMatch).oneLine(t, "no task with id 999999")
	rayctlWith(t, runOpts{vars: vars}, "tasks", "show", "abc").expect(t, exitUsage).oneLine(t, `invalid task ID "abc"`)
	rayctlWith(t, runOpts{vars: vars}, "tasks", "show").expect(t, exitUsage).oneLine(t, "want exactly one task ID")
	rayctlWith(t, runOpts{vars: vars}, "tasks", "ls", "--state", "DONE").expect(t, exitUsage).oneLine(t, `unknown state "DONE"`)
	rayctlWith(t, runOpts{vars: vars}, "tasks", "ls", "--limit", "0").expect(t, exitUsage).oneLine(t, "invalid --limit 0")
	rayctlWith(t, runOpts{vars: vars}, "tasks", "ls", "--newer-than", "yesterday").expect(t, exitUsage).oneLine(t, `invalid --newer-than "yesterday"`)
	rayctlWith(t, runOpts{vars: vars}, "tasks", "count", "--by", "color").expect(t, exitUsage).oneLine(t, `invalid --by "color"`)
	rayctlWith(t, runOpts{vars: vars}, "tasks", "frob").expect(t, exitUsage).oneLine(t, `unknown subcommand "frob"`)
}

func TestDoctorCommand(t *testing.T) {
	t.Parallel()
	t.Run("healthy", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		if err := s.UpsertLease(t.Context(), store.Lease{WorkerID: "w", Hostname: "h", QueueName: "*"}); err != nil {
			t.Fatal(err)
		}
		fake := raytest.New(t)
		r := rayctlWith(t, runOpts{vars: map[string]string{"DATABASE_URL": sc.DSN, "RAY_ADDRESS": fake.URL}}, "doctor").expect(t, exitOK)
		for _, want := range []string{"OK  database", "OK  schema      current (2 migrations)", "OK  clock", "OK  leases      1 live",
			"OK  ray         Ray 2.60.0 reachable at " + fake.URL + " (auth: none (Ray asks for no token))"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("doctor lacks %q:\n%s", want, r.stdout)
			}
		}
		// a skewed host clock fails the clock check
		skewed := func() time.Time { return time.Now().Add(-time.Minute) }
		r = rayctlWith(t, runOpts{vars: map[string]string{"DATABASE_URL": sc.DSN}, clock: skewed}, "doctor", "-o", "json").expect(t, exitUnhealthy)
		r.oneLine(t, "doctor: unhealthy: clock")
		var rep struct {
			OK     bool `json:"ok"`
			Checks []struct {
				Name    string `json:"name"`
				Status  string `json:"status"`
				Summary string `json:"summary"`
			} `json:"checks"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.OK || rep.Checks[2].Name != "clock" || rep.Checks[2].Status != "fail" ||
			!strings.Contains(rep.Checks[2].Summary, "behind the database") {
			t.Fatalf("json %s %v", r.stdout, err)
		}
	})
	t.Run("incident", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		storetest.Insert(t, s, store.Task{CreatedAt: time.Now().Add(-time.Hour)})
		r := rayctlWith(t, runOpts{vars: map[string]string{"DATABASE_URL": sc.DSN}}, "doctor").expect(t, exitUnhealthy)
		r.oneLine(t, "doctor: unhealthy: backlog")
		if !strings.Contains(r.stdout, "FAIL  backlog     playbook 1 (queue backlog): 1 runnable, 0 deferred, 0 running; 0 live workers; oldest runnable waited 1h, and no live worker") ||
			!strings.Contains(r.stdout, "start or restart workers") || !strings.Contains(r.stdout, "next: rayctl inspect-leases") {
			t.Fatalf("doctor:\n%s", r.stdout)
		}
	})
	t.Run("strict", func(t *testing.T) {
		t.Parallel()
		_, sc := storetest.New(t) // no worker, no work: leases warn
		rayctlWith(t, runOpts{vars: map[string]string{"DATABASE_URL": sc.DSN}}, "doctor").expect(t, exitOK)
		rayctlWith(t, runOpts{vars: map[string]string{"DATABASE_URL": sc.DSN}}, "doctor", "--strict").expect(t, exitUnhealthy).oneLine(t, "unhealthy: leases")
	})
	t.Run("database down", func(t *testing.T) {
		t.Parallel()
		dead := storetest.FreeAddr(t)
		r := rayctlWith(t, runOpts{vars: map[string]string{"DATABASE_URL": "postgres://u:hunter2@" + dead + "/x"}}, "doctor").expect(t, exitUnhealthy)
		r.oneLine(t, "doctor: unhealthy: database")
		if !strings.Contains(r.stdout, "FAIL  database") || !strings.Contains(r.stdout, "connection refused") ||
			!strings.Contains(r.stdout, "SKIP  schema      not checked: the database is unreachable") || strings.Contains(r.stdout, "hunter2") {
			t.Fatalf("doctor:\n%s", r.stdout)
		}
	})
	t.Run("bad flags", func(t *testing.T) {
		t.Parallel()
		rayctl(t, nil, "", "doctor", "--stuck-after", "0s").expect(t, exitUsage).oneLine(t, "invalid --stuck-after 0s")
		rayctl(t, nil, "", "doctor", "--max-failures", "-3").expect(t, exitUsage).oneLine(t, "invalid --max-failures -3")
	})
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetricsServe(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	for _, r := range []store.Task{{}, {}, {QueueName: "emails"}, {State: store.StateRunning}, {State: store.StateFailed}} {
		storetest.Insert(t, s, r)
	}
	addr := storetest.FreeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan result, 1)
	go func() {
		done <- rayctlWith(t, runOpts{vars: map[string]string{"DATABASE_URL": sc.DSN}, ctx: ctx}, "metrics", "serve", "--addr", addr, "--min-interval", "1h")
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("metrics serve did not listen: %+v", <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, body := get(t, "http://"+addr+"/healthz")
	if code != 200 || body != "ok\n" {
		t.Fatalf("healthz %d %q", code, body)
	}
	code, body = get(t, "http://"+addr+"/metrics")
	if code != 200 {
		t.Fatalf("metrics %d: %s", code, body)
	}
	for _, want := range []string{
		`django_ray_tasks_total{state="QUEUED"} 3`, `django_ray_tasks_total{state="RUNNING"} 1`, `django_ray_tasks_total{state="FAILED"} 1`,
		`django_ray_tasks_total{state="LOST"} 0`, `django_ray_tasks_total{state="SUCCEEDED"} 0`, `django_ray_tasks_total{state="CANCELLED"} 0`,
		`django_ray_tasks_total{state="CANCELLING"} 0`, "django_ray_tasks_queued 3", "django_ray_tasks_running 1",
		`django_ray_queue_depth{queue="default"} 2`, `django_ray_queue_depth{queue="emails"} 1`, "# TYPE django_ray_tasks_total gauge",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// cached: a new row does not show until the interval passes (1h here)
	storetest.Insert(t, s, store.Task{})
	if _, body2 := get(t, "http://"+addr+"/metrics"); !strings.Contains(body2, "django_ray_tasks_queued 3\n") {
		t.Fatalf("the scrape queried again within --min-interval:\n%s", body2)
	}
	cancel() // SIGINT/SIGTERM cancel the context in main
	select {
	case r := <-done:
		r.expect(t, exitOK)
		if !strings.Contains(r.stdout, "serving http://"+addr+"/metrics") || !strings.Contains(r.stdout, "rayctl metrics: stopped") {
			t.Fatalf("output: %q", r.stdout)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("metrics serve did not stop on cancel")
	}

	rayctl(t, nil, "", "metrics", "serve", "--addr", "nonsense").expect(t, exitUsage).oneLine(t, `invalid --addr "nonsense"`)
	rayctl(t, nil, "", "metrics", "serve", "--addr", ":99999").expect(t, exitUsage).oneLine(t, `invalid --addr ":99999"`)
}

// TestMetricsCollectorRefreshAndFailure: with no interval every scrape reads the database;
// when it cannot, the scrape fails (HTTP 500) and /healthz says 503.
func TestMetricsCollectorRefreshAndFailure(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	pool, err := store.Open(t.Context(), sc.DSN)
	if err != nil {
		t.Fatal(err)
	}
	r := &runCtx{ctx: t.Context(), pool: pool, store: store.New(pool), o: opts{dsn: sc.DSN}}
	col := newGaugeCollector(r.ctx, r.store, 0)
	h := metricsHandler(r, col)
	srv := &http.Server{Handler: h}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	base := "http://" + l.Addr().String()
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "django_ray_tasks_queued 0\n") || strings.Contains(body, "django_ray_queue_depth") {
		t.Fatalf("empty: %s", body)
	}
	storetest.Insert(t, s, store.Task{QueueName: `we"ird`})
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "django_ray_tasks_queued 1\n") || !strings.Contains(body, `django_ray_queue_depth{queue="we\"ird"} 1`) {
		t.Fatalf("refreshed: %s", body)
	}
	if col.refreshes != 2 {
		t.Fatalf("%d refreshes, want 2", col.refreshes)
	}
	pool.Close()
	if code, body := get(t, base+"/metrics"); code != http.StatusInternalServerError || !strings.Contains(body, "read the task counts") {
		t.Fatalf("dead database scrape: %d %s", code, body)
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "database unreachable") {
		t.Fatalf("dead database healthz: %d %s", code, body)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	cases := map[string]string{"bash": "complete -o bashdefault -o default -o nospace -F _rayctl_complete rayctl", "zsh": "#compdef rayctl", "fish": "complete -c rayctl"}
	for shell, want := range cases {
		r := rayctl(t, nil, "", "completion", shell).expect(t, exitOK)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("%s completion lacks %q", shell, want)
		}
	}
	if r := rayctl(t, nil, "", "completion", "fish").expect(t, exitOK); !strings.Contains(r.stdout, "requeue") || !strings.Contains(r.stdout, "inspect-leases") {
		t.Errorf("fish completion lacks commands:\n%s", r.stdout)
	}
	rayctl(t, nil, "", "completion", "tcsh").expect(t, exitUsage).oneLine(t, `unknown shell "tcsh"`)
	// what the bash and zsh scripts ask the binary (urfave/cli reads os.Args for this, so
	// it runs in a process of its own)
	complete := func(args ...string) string {
		out, err := subprocess(t, nil, append(args, "--generate-bash-completion")...).Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return string(out)
	}
	out := complete()
	for _, c := range []string{"requeue", "cancel", "inspect-leases", "tasks", "doctor", "metrics", "completion"} {
		if !strings.Contains(out, c+"\n") {
			t.Errorf("command candidates lack %s:\n%s", c, out)
		}
	}
	if out := complete("tasks"); !strings.Contains(out, "ls\n") || !strings.Contains(out, "show\n") || !strings.Contains(out, "count\n") {
		t.Errorf("tasks candidates: %q", out)
	}
	if out := complete("requeue", "--st"); !strings.Contains(out, "--state\n") || strings.Contains(out, "--batch") {
		t.Errorf("flag candidates: %q", out)
	}
}

// TestMetricsServeSignals: the real process stops gracefully on SIGTERM and SIGINT, exit 0.
func TestMetricsServeSignals(t *testing.T) {
	t.Parallel()
	_, sc := storetest.New(t)
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		addr := storetest.FreeAddr(t)
		cmd := subprocess(t, []string{"DATABASE_URL=" + sc.DSN}, "metrics", "serve", "--addr", addr)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if code, _ := getQuiet("http://" + addr + "/healthz"); code == 200 {
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("not serving: %s", out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v: exit %v, output %s", sig, err, out.String())
		}
		if !strings.Contains(out.String(), "rayctl metrics: stopped") {
			t.Fatalf("%v: output %s", sig, out.String())
		}
	}
}

func getQuiet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
