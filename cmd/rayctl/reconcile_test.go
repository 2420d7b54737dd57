package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// envelope is the last line django-ray 0.2.0's entrypoint prints (Python json.dumps).
func envelope(success bool, result, errMsg, excType string) string {
	if success {
		return `{"success": true, "result": ` + result + `, "error": null, "traceback": null, "exception_type": null}`
	}
	return fmt.Sprintf(`{"success": false, "result": null, "error": %q, "traceback": "Traceback (most recent call last):\n  ...\n%s: %s\n", "exception_type": %q}`,
		errMsg, excType, errMsg, excType)
}

// reconcileStage is a database and a fake Ray with one row per divergence class.
type reconcileStage struct {
	s    *store.Store
	sc   storetest.Schema
	ray  *raytest.Server
	vars map[string]string
	rows map[string]store.Task
}

func stageReconcile(t *testing.T) *reconcileStage {
	t.Helper()
	s, sc := storetest.New(t)
	ctx := t.Context()
	fake := raytest.New(t)
	for _, l := range []store.Lease{{WorkerID: "w-live", Hostname: "a", QueueName: "default"}, {WorkerID: "w-dead", Hostname: "b", QueueName: "default"}} {
		if err := s.UpsertLease(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '10 minutes' WHERE worker_id = 'w-dead'`); err != nil {
		t.Fatal(err)
	}
	st := &reconcileStage{s: s, sc: sc, ray: fake, vars: map[string]string{"DATABASE_URL": sc.DSN, "RAY_ADDRESS": fake.URL, "USER": "oncall"},
		rows: map[string]store.Task{}}
	long := time.Now().Add(-10 * time.Minute)
	row := func(name string, state store.TaskState, owner string, attempt int32, job string, rayStatus string, j raytest.Job) {
		t.Helper()
		task := store.Task{State: state, AttemptNumber: attempt, CallablePath: "app.tasks." + name, StartedAt: storetest.Ago(20 * time.Minute),
			LastHeartbeatAt: storetest.Ago(10 * time.Minute), RayJobID: storetest.Ptr(job), RayAddress: storetest.Ptr(fake.URL)}
		if owner != "" {
			task.ClaimedByWorker = storetest.Ptr(owner)
		}
		if owner == "w-live" {
			task.LastHeartbeatAt = storetest.Ago(2 * time.Minute)
		}
		st.rows[name] = storetest.Insert(t, s, task)
		if rayStatus != "" {
			j.SubmissionID, j.Status = job, rayStatus
			if j.EndTime.IsZero() && (rayStatus == raytest.Succeeded || rayStatus == raytest.Failed || rayStatus == raytest.Stopped) {
				j.EndTime = long
			}
			fake.AddJob(j)
		}
	}
	row("succeeded", store.StateRunning, "w-dead", 1, "raysubmit_succ", raytest.Succeeded, raytest.Job{Logs: "noise\n" + envelope(true, `{"x": 1}`, "", "") + "\n"})
	row("app_error", store.StateRunning, "w-dead", 1, "raysubmit_apperr", raytest.Succeeded, raytest.Job{Logs: envelope(false, "", "bad value", "builtins.ValueError") + "\n"})
	row("job_failed", store.StateRunning, "w-dead", 3, "raysubmit_failed", raytest.Failed, raytest.Job{Message: "Job entrypoint command failed with exit code 1", Logs: "Killed\n"})
	row("stopped", store.StateRunning, "", 1, "raysubmit_stopped", raytest.Stopped, raytest.Job{})
	row("missing", store.StateRunning, "w-dead", 1, "raysubmit_missing", "", raytest.Job{})
	row("missing_live", store.StateRunning, "w-live", 1, "raysubmit_missinglive", "", raytest.Job{})
	row("orphan", store.StateRunning, "w-dead", 1, "raysubmit_orphan", raytest.Running, raytest.Job{})
	row("consistent", store.StateRunning, "w-live", 1, "raysubmit_ok", raytest.Running, raytest.Job{})
	row("cancel_live", store.StateCancelling, "w-live", 1, "raysubmit_cancellive", raytest.Running, raytest.Job{})
	row("cancel_dead", store.StateCancelling, "w-dead", 1, "raysubmit_canceldead", raytest.Running, raytest.Job{})
	row("cancel_ended", store.StateCancelling, "gone", 1, "raysubmit_cancelended", raytest.Succeeded, raytest.Job{Logs: envelope(true, "1", "", "")})
	row("just_ended", store.StateRunning, "w-live", 1, "raysubmit_justended", raytest.Succeeded, raytest.Job{EndTime: time.Now(), Logs: envelope(true, "2", "", "")})
	row("weird", store.StateRunning, "w-dead", 1, "raysubmit_weird", "RESTARTING", raytest.Job{})
	row("other", store.StateRunning, "w-dead", 1, "raysubmit_other", raytest.Running, raytest.Job{})
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET ray_address = 'http://other-head:8265' WHERE id = $1`, st.rows["other"].ID); err != nil {
		t.Fatal(err)
	}
	st.rows["other"], _ = s.GetTask(ctx, st.rows["other"].ID)
	// RUNNING without a Ray job (a --sync worker's) is not compared
	storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w-live"), StartedAt: storetest.Ago(time.Minute)})
	return st
}

type planEntry struct {
	ID        int64  `json:"id"`
	Class     string `json:"class"`
	Action    string `json:"action"`
	ToState   string `json:"to_state"`
	RayStatus string `json:"ray_status"`
	Owner     string `json:"owner"`
	Detail    string `json:"detail"`
	Result    *struct {
		Applied bool   `json:"applied"`
		ToState string `json:"to_state"`
		Stopped *bool  `json:"stopped"`
		Skipped string `json:"skipped"`
		Error   string `json:"error"`
	} `json:"result"`
}

type reconcileDoc struct {
	DryRun  bool `json:"dry_run"`
	Applied bool `json:"applied"`
	Plan    struct {
		Candidates  int64          `json:"candidates"`
		Examined    int            `json:"examined"`
		RayView     string         `json:"ray_view"`
		RayRequests int            `json:"ray_requests"`
		RayVersion  string         `json:"ray_version"`
		ByClass     map[string]int `json:"by_class"`
		ByAction    map[string]int `json:"by_action"`
		Entries     []planEntry    `json:"entries"`
	} `json:"plan"`
	Outcome *struct {
		Applied  int            `json:"applied"`
		Skipped  int            `json:"skipped"`
		Failed   int            `json:"failed"`
		Stops    int            `json:"stops"`
		ToStates map[string]int `json:"to_states"`
		AuditID  *int64         `json:"audit_id"`
		Results  []struct {
			ID      int64  `json:"id"`
			Applied bool   `json:"applied"`
			Skipped string `json:"skipped"`
		} `json:"results"`
	} `json:"outcome"`
}

func (st *reconcileStage) byName(t *testing.T, entries []planEntry) map[string]planEntry {
	t.Helper()
	byID := map[int64]planEntry{}
	for _, e := range entries {
		byID[e.ID] = e
	}
	out := map[string]planEntry{}
	for name, r := range st.rows {
		e, ok := byID[r.ID]
		if !ok {
			t.Fatalf("row %s (%d) is not in the plan", name, r.ID)
		}
		out[name] = e
	}
	return out
}

// wantPlan is the class, action and target state of each staged row.
var wantPlan = map[string][3]string{
	"succeeded":    {"finished_in_ray", "record", "SUCCEEDED"},
	"app_error":    {"finished_in_ray", "record", "QUEUED"},
	"job_failed":   {"finished_in_ray", "record", "FAILED"},
	"stopped":      {"finished_in_ray", "record", "CANCELLED"},
	"missing":      {"missing_in_ray", "mark_lost", "QUEUED"},
	"missing_live": {"missing_in_ray", "none", ""},
	"orphan":       {"owner_dead", "none", ""},
	"consistent":   {"consistent", "none", ""},
	"cancel_live":  {"cancelling_job_running", "stop", ""},
	"cancel_dead":  {"cancelling_job_running", "stop_finalize", "CANCELLED"},
	"cancel_ended": {"cancelling_job_ended", "finalize", "CANCELLED"},
	"just_ended":   {"finished_in_ray", "none", ""},
	"weird":        {"unknown", "none", ""},
	"other":        {"other_cluster", "none", ""},
}

func TestReconcileJobsPlanAndApply(t *testing.T) {
	t.Parallel()
	st := stageReconcile(t)
	ctx := t.Context()
	before := snapshot(t, st.sc.Pool)

	// the dry plan classifies every row and writes nothing
	r := rayctlWith(t, runOpts{vars: st.vars}, "reconcile-jobs", "-o", "json").expect(t, exitOK)
	var doc reconcileDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if !doc.DryRun || doc.Applied || doc.Outcome != nil || doc.Plan.Candidates != 14 || doc.Plan.Examined != 14 || doc.Plan.RayView != "get" ||
		doc.Plan.RayVersion != "2.60.0" {
		t.Fatalf("plan header: %+v", doc.Plan)
	}
	for name, e := range st.byName(t, doc.Plan.Entries) {
		w := wantPlan[name]
		if e.Class != w[0] || e.Action != w[1] || e.ToState != w[2] {
			t.Errorf("%s: class %s action %s to %q, want %v (%s)", name, e.Class, e.Action, e.ToState, w, e.Detail)
		}
	}
	if got := snapshot(t, st.sc.Pool); got != before {
		t.Fatal("the dry plan wrote to the database")
	}
	if n := st.ray.Count(raytest.Stop); n != 0 {
		t.Fatalf("the dry plan sent %d stops", n)
	}
	// one GET per row's job (below the list threshold), nothing else per row
	if got, want := st.ray.Count(raytest.Get), 14; got != want {
		t.Errorf("GETs: %d, want %d", got, want)
	}

	// the text plan lists the divergences, not the consistent row
	r = rayctlWith(t, runOpts{vars: st.vars}, "reconcile-jobs").expect(t, exitOK)
	for _, want := range []string{"reconcile-jobs: Ray 2.60.0 at " + st.ray.URL + ": 14 tasks compared with Ray (one GET per job",
		"record -> SUCCEEDED", "SUCCEEDED in Ray: record the 8-byte result inline", "builtins.ValueError: bad value): retry attempt 2 in 2m0s",
		"RayJobFailed: Job entrypoint command failed with exit code 1): FAILED, max attempts (3) reached",
		"mark_lost -> QUEUED", "stop_finalize -> CANCELLED", "left for a live worker to adopt", "left to its live owner to record",
		`Ray reports status "RESTARTING"`, "submitted to http://other-head:8265", "summary: 5 finished_in_ray, 2 missing_in_ray, 1 owner_dead, 2 cancelling_job_running, 1 cancelling_job_ended, 1 unknown, 1 other_cluster, 1 consistent; 1 live workers",
		"dry run: nothing changed; --apply performs the 8 actions above"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text plan lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "raysubmit_ok ") {
		t.Errorf("the consistent row is listed:\n%s", r.stdout)
	}

	// --apply refuses without --yes when stdin is not a terminal, and with JSON output
	rayctlWith(t, runOpts{vars: st.vars}, "reconcile-jobs", "--apply").expect(t, exitDeclined).oneLine(t, "refusing to apply 8 actions without --yes: stdin is not a terminal; nothing changed")
	rayctlWith(t, runOpts{vars: st.vars, tty: true}, "reconcile-jobs", "--apply", "-o", "jsonl").expect(t, exitDeclined).oneLine(t, "output is jsonl")
	r = rayctlWith(t, runOpts{vars: st.vars, tty: true, stdin: "no\n"}, "reconcile-jobs", "--apply").expect(t, exitDeclined)
	if !strings.Contains(r.stderr, "Apply 8 actions? [y/N] ") {
		t.Fatalf("prompt: %q", r.stderr)
	}
	if got := snapshot(t, st.sc.Pool); got != before {
		t.Fatal("a refused --apply wrote to the database")
	}

	// --apply on a terminal, confirmed: exactly the planned transitions
	r = rayctlWith(t, runOpts{vars: st.vars, tty: true, stdin: "y\n"}, "reconcile-jobs", "--apply", "--reason", "INC-7").expect(t, exitOK)
	for _, want := range []string{"applied 8 of 8 (2 now QUEUED, 1 now SUCCEEDED, 1 now FAILED, 3 now CANCELLED, 2 Ray jobs asked to stop)", "audit: entry "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("apply output lacks %q:\n%s", want, r.stdout)
		}
	}
	get := func(name string) store.Task {
		t.Helper()
		task, err := st.s.GetTask(ctx, st.rows[name].ID)
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
	if tk := get("succeeded"); tk.State != store.StateSucceeded || deref(tk.ResultData) != `{"x": 1}` || tk.ErrorMessage != nil || tk.FinishedAt == nil {
		t.Errorf("succeeded row: %+v", tk)
	}
	if tk := get("app_error"); tk.State != store.StateQueued || tk.AttemptNumber != 2 || deref(tk.ErrorMessage) != "bad value" || tk.ClaimedByWorker != nil ||
		tk.RunAfter == nil || !strings.Contains(deref(tk.ErrorTraceback), "ValueError: bad value") {
		t.Errorf("app_error row: %+v", tk)
	}
	if tk := get("job_failed"); tk.State != store.StateFailed || deref(tk.ErrorMessage) != "Job entrypoint command failed with exit code 1" ||
		!strings.Contains(deref(tk.ErrorTraceback), "Killed") {
		t.Errorf("job_failed row: %+v", tk)
	}
	if tk := get("stopped"); tk.State != store.StateCancelled {
		t.Errorf("stopped row: %+v", tk)
	}
	if tk := get("missing"); tk.State != store.StateQueued || tk.AttemptNumber != 2 || deref(tk.ErrorMessage) != store.LostMessage {
		t.Errorf("missing row: %+v", tk)
	}
	if tk := get("cancel_live"); tk.State != store.StateCancelling {
		t.Errorf("cancel_live row must stay CANCELLING for its live owner: %+v", tk)
	}
	for _, name := range []string{"cancel_dead", "cancel_ended"} {
		if tk := get(name); tk.State != store.StateCancelled {
			t.Errorf("%s row: %+v", name, tk)
		}
	}
	for _, name := range []string{"missing_live", "orphan", "consistent", "just_ended", "weird", "other"} {
		if tk := get(name); !reflect.DeepEqual(tk, st.rows[name]) {
			t.Errorf("%s row changed:\n%+v\nwas\n%+v", name, tk, st.rows[name])
		}
	}
	for id, want := range map[string]int{"raysubmit_cancellive": 1, "raysubmit_canceldead": 1, "raysubmit_orphan": 0, "raysubmit_ok": 0} {
		if j, _ := st.ray.Job(id); j.StopRequests != want {
			t.Errorf("job %s: %d stop requests, want %d", id, j.StopRequests, want)
		}
	}
	// the audit trail: the run with its reason, and every row it changed or stopped
	r = rayctlWith(t, runOpts{vars: st.vars}, "audit", "ls", "--action", "reconcile-jobs", "-o", "json").expect(t, exitOK)
	var entries []store.AuditEntry
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || len(entries) != 1 || deref(entries[0].Reason) != "INC-7" ||
		entries[0].Changed != 8 || entries[0].Skipped != 0 || !strings.HasPrefix(entries[0].Actor, "oncall@") {
		t.Fatalf("audit: %s %v", r.stdout, err)
	}
	changes, err := st.s.AuditChanges(ctx, entries[0].ID)
	if err != nil || len(changes) != 8 {
		t.Fatalf("audit changes %+v %v", changes, err)
	}
	for _, c := range changes {
		if c.ID == st.rows["cancel_live"].ID && (c.From != store.StateCancelling || c.To != store.StateCancelling) {
			t.Errorf("stop-only audit record: %+v", c)
		}
	}

	// a second run finds nothing left to do: exit 3, nothing written
	after := snapshot(t, st.sc.Pool)
	r = rayctlWith(t, runOpts{vars: st.vars}, "reconcile-jobs", "--apply", "--yes").expect(t, exitNoMatch)
	r.oneLine(t, "nothing to apply")
	if snapshot(t, st.sc.Pool) != after {
		t.Fatal("a run with nothing to apply wrote")
	}
}

// TestReconcileJobsSkipsRowsThatMovedOn stages concurrent changes deterministically with the
// BeforeJob hook: a row adopted by another worker after the plan, a CANCELLING row finalized
// by its owner, a missing job that reappears. Each is skipped and counted, never overwritten,
// and no stop is sent for the finalized row.
func TestReconcileJobsSkipsRowsThatMovedOn(t *testing.T) {
	t.Parallel()
	st := stageReconcile(t)
	ctx := t.Context()
	moved := map[int64]bool{}
	hooks := recovery.Hooks{BeforeJob: func(ctx context.Context, e recovery.JobEntry) error {
		switch e.Task.ID {
		case st.rows["succeeded"].ID: // a live worker adopted it meanwhile
			_, err := st.sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET claimed_by_worker = 'w-live' WHERE id = $1`, e.Task.ID)
			moved[e.Task.ID] = true
			return err
		case st.rows["cancel_dead"].ID: // finalized by someone else meanwhile
			_, err := st.sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET state = 'CANCELLED', finished_at = now() WHERE id = $1`, e.Task.ID)
			moved[e.Task.ID] = true
			return err
		case st.rows["missing"].ID: // Ray knows the job after all (a late submission)
			st.ray.AddJob(raytest.Job{SubmissionID: "raysubmit_missing", Status: raytest.Running})
			moved[e.Task.ID] = true
		}
		return nil
	}}
	r := rayctlWith(t, runOpts{vars: st.vars, hooks: hooks}, "reconcile-jobs", "--apply", "--yes", "-o", "json").expect(t, exitPartial)
	r.oneLine(t, "applied 5 of 8; skipped 3 that moved on")
	var doc reconcileDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Outcome == nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if doc.Outcome.Applied != 5 || doc.Outcome.Skipped != 3 || doc.Outcome.Failed != 0 || len(moved) != 3 {
		t.Fatalf("outcome %+v (moved %v)", doc.Outcome, moved)
	}
	for _, res := range doc.Outcome.Results {
		if moved[res.ID] == res.Applied || (moved[res.ID] && res.Skipped == "") {
			t.Errorf("result %+v (moved: %v)", res, moved[res.ID])
		}
	}
	if tk, _ := st.s.GetTask(ctx, st.rows["succeeded"].ID); tk.State != store.StateRunning || deref(tk.ClaimedByWorker) != "w-live" {
		t.Errorf("the adopted row was overwritten: %+v", tk)
	}
	if tk, _ := st.s.GetTask(ctx, st.rows["missing"].ID); tk.State != store.StateRunning {
		t.Errorf("the row whose job reappeared was marked lost: %+v", tk)
	}
	if j, _ := st.ray.Job("raysubmit_canceldead"); j.StopRequests != 0 {
		t.Errorf("a stop was sent for a row that had moved on")
	}
	if j, _ := st.ray.Job("raysubmit_cancellive"); j.StopRequests != 1 {
		t.Errorf("the live owner's CANCELLING job was not stopped")
	}
}

func TestReconcileJobsRayErrors(t *testing.T) {
	t.Parallel()
	st := stageReconcile(t)
	before := snapshot(t, st.sc.Pool)
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range st.vars {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	authed := raytest.New(t, raytest.WithToken("s3cret"))
	// a proxy that quotes the request's token in its refusal
	echoing := raytest.New(t)
	for _, ep := range []raytest.Endpoint{raytest.Health, raytest.Version, raytest.List, raytest.Get} {
		echoing.Inject(ep, raytest.Fault{Status: http.StatusForbidden, Body: "Forbidden: Bearer echoed-s3cret-token is not valid"})
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		vars map[string]string
		args []string
		code int
		want string
	}{
		{"unreachable", with("RAY_ADDRESS", dead), []string{"--apply", "--yes"}, exitFailed, "reconcile-jobs: cannot ask Ray at " + dead + ": ray jobs api: version: Ray Jobs API unavailable"},
		{"401", with("RAY_ADDRESS", authed.URL), []string{"--apply", "--yes"}, exitFailed, "HTTP 401: unauthorized: Unauthorized: Missing authentication token; nothing changed"},
		{"403", with("RAY_ADDRESS", authed.URL), []string{"--apply", "--yes", "--ray-token-file", tokenFile}, exitFailed, "HTTP 403: unauthorized"},
		{"token file under rayworker's flag name", with("RAY_ADDRESS", authed.URL), []string{"--apply", "--yes", "--ray-auth-token-file", tokenFile}, exitFailed, "HTTP 403: unauthorized"},
		{"CA file from rayworker's variable", with("RAY_ADDRESS", "https://127.0.0.1:1", "DJANGO_RAY_RAY_CA_FILE", "/nonexistent/ca.pem"), nil, exitUsage, "/nonexistent/ca.pem"},
		{"a refusal that echoes the token", with("RAY_ADDRESS", echoing.URL, "RAY_AUTH_TOKEN", "echoed-s3cret-token"), []string{"--apply", "--yes"}, exitFailed, "Forbidden: Bearer xxxxx is not valid"},
		{"token on the command line", st.vars, []string{"--ray-token", "s3cret"}, exitUsage, "--ray-token is not accepted"},
		{"no address", with("RAY_ADDRESS", ""), nil, exitUsage, "no Ray address: set --ray-address or RAY_ADDRESS"},
		{"auto", with("RAY_ADDRESS", "auto"), nil, exitUsage, `Ray address "auto" names no Jobs API`},
		{"ray client address", st.vars, []string{"--ray-address", "ray://head:10001"}, exitUsage, "is a Ray Client address"},
		{"missing token file", st.vars, []string{"--ray-token-file", "/nonexistent/token"}, exitUsage, "auth token file"},
		{"bad limit", st.vars, []string{"--limit", "0"}, exitUsage, "invalid --limit 0"},
		{"huge limit", st.vars, []string{"--limit", "20000"}, exitUsage, "invalid --limit 20000"},
		{"bad attempts", with("DJANGO_RAY_MAX_TASK_ATTEMPTS", "many"), nil, exitUsage, `invalid --max-task-attempts "many" (from $DJANGO_RAY_MAX_TASK_ATTEMPTS)`},
		{"filesystem without path", st.vars, []string{"--result-storage-backend", "filesystem"}, exitUsage, "needs --result-storage-filesystem-path"},
		{"bad backend", st.vars, []string{"--result-storage-backend", "ftp"}, exitUsage, `invalid --result-storage-backend "ftp": want one of digest, filesystem, s3, gcs`},
		{"s3 without bucket", with("DJANGO_RAY_RESULT_STORAGE_BACKEND", "s3"), nil, exitUsage, `needs --result-storage-s3-bucket (or $DJANGO_RAY_RESULT_STORAGE_S3_BUCKET)`},
		{"s3 prefix with ..", with("DJANGO_RAY_RESULT_STORAGE_BACKEND", "s3", "DJANGO_RAY_RESULT_STORAGE_S3_BUCKET", "b", "DJANGO_RAY_RESULT_STORAGE_S3_PREFIX", "../up"), nil, exitUsage,
			`reconcile-jobs: invalid --result-storage-s3-prefix "../up": a .. segment is refused (django-ray refuses such keys) (from $DJANGO_RAY_RESULT_STORAGE_S3_PREFIX)`},
		{"gcs without bucket", st.vars, []string{"--result-storage-backend", "gcs"}, exitUsage, `needs --result-storage-gcs-bucket`},
		{"argument", st.vars, []string{"17"}, exitUsage, `unexpected argument "17"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rayctlWith(t, runOpts{vars: c.vars}, append([]string{"reconcile-jobs"}, c.args...)...).expect(t, c.code)
			r.oneLine(t, c.want)
			if r.stdout != "" {
				t.Errorf("stdout: %q", r.stdout)
			}
			if tok := c.vars["RAY_AUTH_TOKEN"]; tok != "" && strings.Contains(r.stderr, tok) {
				t.Errorf("the token is shown: %q", r.stderr)
			}
		})
	}
	// Ray failing midway (its GETs answer 500) is an error too, before anything is written
	st.ray.Inject(raytest.Get, raytest.Fault{Status: 500, Body: "Traceback (most recent call last):\nRuntimeError: GCS unavailable"})
	rayctlWith(t, runOpts{vars: st.vars}, "reconcile-jobs", "--apply", "--yes").expect(t, exitFailed).oneLine(t, "HTTP 500: Ray Jobs API unavailable: RuntimeError: GCS unavailable; nothing changed")
	st.ray.ClearFaults()
	if snapshot(t, st.sc.Pool) != before {
		t.Fatal("a failed run wrote to the database")
	}
	// with the right token (RAY_AUTH_TOKEN) the authenticated Ray is asked: every row's job is
	// unknown there, and the plan says so
	r := rayctlWith(t, runOpts{vars: with("RAY_ADDRESS", authed.URL, "RAY_AUTH_TOKEN", "s3cret")}, "reconcile-jobs", "--all-addresses").expect(t, exitOK)
	if !strings.Contains(r.stdout, "warning: Ray knows none of these jobs") {
		t.Fatalf("plan against the empty Ray:\n%s", r.stdout)
	}
	if snapshot(t, st.sc.Pool) != before {
		t.Fatal("a dry run wrote to the database")
	}
}

func TestCancelStop(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	fake := raytest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN, "RAY_ADDRESS": fake.URL}
	if err := s.UpsertLease(ctx, store.Lease{WorkerID: "alive", Hostname: "h", QueueName: "etl"}); err != nil {
		t.Fatal(err)
	}
	running := func(job string) store.Task {
		return storetest.Insert(t, s, store.Task{QueueName: "etl", State: store.StateRunning, ClaimedByWorker: storetest.Ptr("alive"),
			StartedAt: storetest.Ago(time.Minute), RayJobID: storetest.Ptr(job)})
	}
	a, b := running("raysubmit_a"), running("raysubmit_b")
	ended, unknown, driver := running("raysubmit_ended"), running("raysubmit_unknown"), running("02000000")
	queued := storetest.Insert(t, s, store.Task{QueueName: "etl"})
	other := running("raysubmit_other")
	other.QueueName = "default"
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET queue_name = 'default' WHERE id = $1`, other.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"raysubmit_a", "raysubmit_b", "raysubmit_other"} {
		fake.AddJob(raytest.Job{SubmissionID: id, Status: raytest.Running})
	}
	fake.AddJob(raytest.Job{SubmissionID: "raysubmit_ended", Status: raytest.Succeeded})
	fake.AddJob(raytest.Job{SubmissionID: "02000000", Type: "DRIVER", Status: raytest.Running})

	// Ray down: refused before anything is written
	before := snapshot(t, sc.Pool)
	fake.SetDown(true)
	rayctlWith(t, runOpts{vars: vars}, "cancel", "--queue", "etl", "--stop", "--yes").expect(t, exitFailed).oneLine(t, "cancel --stop: cannot ask Ray at "+fake.URL)
	fake.SetDown(false)
	if snapshot(t, sc.Pool) != before || fake.Count(raytest.Stop) != 0 {
		t.Fatal("cancel --stop wrote or stopped with Ray down")
	}

	r := rayctlWith(t, runOpts{vars: vars}, "cancel", "--queue", "etl", "--stop", "--yes").expect(t, exitPartial)
	r.oneLine(t, "cancel: cancelled 6, but 1 of 5 Ray jobs could not be stopped: 02000000")
	for _, want := range []string{"cancelled 6 of 6 (1 now CANCELLED, 5 now CANCELLING)", "stop raysubmit_a (task " + itoa(a.ID) + "): stopped",
		"stop raysubmit_b (task " + itoa(b.ID) + "): stopped", "stop raysubmit_ended (task " + itoa(ended.ID) + "): the job had already ended",
		"stop raysubmit_unknown (task " + itoa(unknown.ID) + "): Ray does not know the job: nothing to stop",
		"stop 02000000 (task " + itoa(driver.ID) + "): FAILED: ray jobs api: stop 02000000: HTTP 400: request rejected: Can only stop submission type jobs"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "Ray jobs not stopped") {
		t.Errorf("--stop still lists the jobs as not stopped:\n%s", r.stdout)
	}
	for id, want := range map[string]string{"raysubmit_a": raytest.Stopped, "raysubmit_b": raytest.Stopped, "raysubmit_other": raytest.Running, "raysubmit_ended": raytest.Succeeded} {
		if j, _ := fake.Job(id); j.Status != want {
			t.Errorf("job %s is %s, want %s", id, j.Status, want)
		}
	}
	if got := states(t, s, a.ID, b.ID, queued.ID, other.ID); !reflect.DeepEqual(got, []store.TaskState{store.StateCancelling, store.StateCancelling, store.StateCancelled, store.StateRunning}) {
		t.Fatalf("states %v", got)
	}

	// the JSON report carries each job's answer; orphaned CANCELLING rows' jobs are stopped
	// too, and confirmed over before the rows are finalized
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_raytaskexecution SET claimed_by_worker = 'gone' WHERE id = $1`, b.ID); err != nil {
		t.Fatal(err)
	}
	fake.Set(t, "raysubmit_b", raytest.Running, "", "")
	r = rayctlWith(t, runOpts{vars: vars}, "cancel", "--state", "CANCELLING", "--id", itoa(b.ID), "--stop", "--yes", "-o", "json").expect(t, exitOK)
	var rep struct {
		Stops   []recovery.StopResult `json:"stops"`
		Checked bool                  `json:"ray_jobs_checked"`
		Outcome struct {
			Ended []recovery.StopResult `json:"ray_jobs_ended"`
		} `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Stops) != 0 || !rep.Checked || len(rep.Outcome.Ended) != 1 ||
		!rep.Outcome.Ended[0].Stopped || !rep.Outcome.Ended[0].Ended || rep.Outcome.Ended[0].ID != b.ID {
		t.Fatalf("stops %s %v", r.stdout, err)
	}
	if got := states(t, s, b.ID); got[0] != store.StateCancelled {
		t.Fatalf("%v", got)
	}
	// without --stop no stop is sent
	n := fake.Count(raytest.Stop)
	rayctlWith(t, runOpts{vars: vars}, "cancel", "--id", itoa(other.ID), "--state", "RUNNING", "--yes").expect(t, exitOK)
	if fake.Count(raytest.Stop) != n {
		t.Fatal("cancel without --stop stopped a job")
	}
}

func TestDoctorRayCheck(t *testing.T) {
	t.Parallel()
	_, sc := storetest.New(t)
	plain := raytest.New(t)
	authed := raytest.New(t, raytest.WithToken("s3cret"))
	// a proxy that quotes the request's token in its refusal
	echoing := raytest.New(t)
	for _, ep := range []raytest.Endpoint{raytest.Health, raytest.Version, raytest.List, raytest.Get} {
		echoing.Inject(ep, raytest.Fault{Status: http.StatusForbidden, Body: "Forbidden: Bearer echoed-s3cret-token is not valid"})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	unhealthy := raytest.New(t)
	unhealthy.Inject(raytest.Health, raytest.Fault{Status: 503, Body: "GCS is not ready"})
	for _, c := range []struct {
		name   string
		vars   map[string]string
		status string
		want   string
	}{
		{"no address", map[string]string{}, "skip", "not checked: no --ray-address or RAY_ADDRESS given"},
		{"no auth", map[string]string{"RAY_ADDRESS": plain.URL}, "ok", "Ray 2.60.0 reachable at " + plain.URL + " (auth: none (Ray asks for no token))"},
		{"token required", map[string]string{"RAY_ADDRESS": authed.URL, "RAY_AUTH_TOKEN": "s3cret"}, "ok", "(auth: token (required by Ray, accepted), from $RAY_AUTH_TOKEN)"},
		{"token not required", map[string]string{"RAY_ADDRESS": plain.URL, "RAY_AUTH_TOKEN": "s3cret"}, "ok", "(auth: token sent, but Ray does not require one, from $RAY_AUTH_TOKEN)"},
		{"token missing", map[string]string{"RAY_ADDRESS": authed.URL}, "fail", "Ray requires a token and none is configured (set RAY_AUTH_TOKEN or --ray-token-file)"},
		{"token wrong", map[string]string{"RAY_ADDRESS": authed.URL, "RAY_AUTH_TOKEN": "nope"}, "fail", "Ray refused the token from $RAY_AUTH_TOKEN"},
		{"dead", map[string]string{"RAY_ADDRESS": dead}, "fail", "Ray at " + dead + ": ray jobs api: version: Ray Jobs API unavailable"},
		{"gcs unhealthy", map[string]string{"RAY_ADDRESS": unhealthy.URL}, "fail", "the dashboard answers (Ray 2.60.0) but its GCS health check fails"},
	} {
		t.Run(c.name, func(t *testing.T) {
			vars := map[string]string{"DATABASE_URL": sc.DSN}
			for k, v := range c.vars {
				vars[k] = v
			}
			code := exitOK
			if c.status == "fail" {
				code = exitUnhealthy
			}
			r := rayctlWith(t, runOpts{vars: vars}, "doctor", "-o", "jsonl").expect(t, code)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			var ray recovery.CheckResult
			for _, l := range lines {
				var c recovery.CheckResult
				if err := json.Unmarshal([]byte(l), &c); err != nil {
					t.Fatalf("check %q: %v", l, err)
				}
				if c.Name == "ray" {
					ray = c
				}
			}
			if string(ray.Status) != c.status || !strings.Contains(ray.Summary, c.want) || strings.Contains(ray.Summary, "\n") {
				t.Fatalf("ray check %+v, want %s containing %q", ray, c.status, c.want)
			}
			if code == exitUnhealthy {
				r.oneLine(t, "doctor: unhealthy: ray")
			}
		})
	}
}
