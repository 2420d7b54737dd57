package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker/workertest"
)

// startRayWorker runs the binary in a Ray Job mode (args name the Jobs API) with JSON logs.
// env is added to the test's environment.
func startRayWorker(t *testing.T, dsn string, env []string, args ...string) *proc {
	t.Helper()
	p := startBinary(t, dsn, env, append([]string{"--log-format", "json"}, args...)...)
	p.grace = 30 * time.Second
	return p
}

// get fetches a path from the worker's metrics server.
func (p *proc) get(path string) (int, string) {
	p.t.Helper()
	var addr string
	workertest.Eventually(p.t, 30*time.Second, "the metrics address", func() bool {
		var ok bool
		addr, ok = p.logField("worker started", "metrics_addr")
		return ok && addr != ""
	})
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue reads one sample line ("name{labels} value") from /metrics; -1 when absent.
func (p *proc) metricValue(sample string) float64 {
	p.t.Helper()
	_, body := p.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				p.t.Fatalf("metrics line %q", line)
			}
			return v
		}
	}
	return -1
}

func submittedIDs(srv *raytest.Server) map[string]int {
	out := map[string]int{}
	for _, s := range srv.Submissions() {
		if s.Accepted {
			out[s.SubmissionID]++
		}
	}
	return out
}

// TestBinaryRayKill9: worker A (the real binary, Ray Job mode, against the fake Jobs API in
// this test process) claims six tasks, gets four jobs into Ray and two POSTs stuck, and dies
// by SIGKILL. Worker B adopts the four (same ids, same attempt). The two Ray never received
// were claimed before B first saw the Ray session, so B cannot prove Ray never had them: they
// are retried as TaskLost under new ids, never POSTed again under the old ones. Every task
// ends once; no id is accepted twice.
func TestBinaryRayKill9(t *testing.T) {
	t.Parallel()
	s, dsn := migratedDSN(t)
	srv := raytest.New(t)
	common := []string{"--cluster", srv.URL, "--worker-heartbeat-seconds", "1", "--worker-lease-seconds", "3", "--retry-backoff-seconds", "0",
		"--metrics-addr", "127.0.0.1:0"}
	const n = 6
	var ids []int64
	for i := range n {
		ids = append(ids, enqueueE2E(t, s, fmt.Sprintf("task%d", i), "[]").ID)
	}
	srv.Inject(raytest.Submit, raytest.Fault{Times: 4})   // four POSTs go through...
	srv.Inject(raytest.Submit, raytest.Fault{Hang: true}) // ...the rest hang

	a := startRayWorker(t, dsn, nil, append(common, "--concurrency", strconv.Itoa(n))...)
	aID := a.workerID()
	workertest.Eventually(t, 30*time.Second, "A's six POSTs (four accepted, two hanging)", func() bool {
		return srv.Count(raytest.Submit) == n && len(srv.Jobs()) == 4
	})
	claimed := map[int64]string{}
	for _, id := range ids {
		row := waitRow(t, s, id, "A's claim", func(r store.Task) bool { return r.ClaimedByWorker != nil && *r.ClaimedByWorker == aID })
		claimed[id] = *row.RayJobID
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := a.exitCode(10 * time.Second); code != -1 {
		t.Fatalf("A exited %d, want killed", code)
	}
	srv.ClearFaults()

	b := startRayWorker(t, dsn, nil, common...)
	bID := b.workerID()
	for _, id := range ids {
		waitRow(t, s, id, "B to take the task over (adoption, or a retry it claims)", func(r store.Task) bool {
			return r.ClaimedByWorker != nil && *r.ClaimedByWorker == bID
		})
	}
	// Ray runs whatever it is given: finish every job the fake holds, as they appear.
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			for _, j := range srv.Jobs() {
				if j.Status == raytest.Pending || j.Status == raytest.Running {
					srv.Update(t, j.SubmissionID, func(j *raytest.Job) {
						j.Status, j.Logs = raytest.Succeeded, `{"success": true, "result": "`+j.Metadata["callable_path"]+`"}`+"\n"
					})
				}
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	adopted, retried := 0, 0
	for i, id := range ids {
		got := waitRow(t, s, id, "the task to succeed", func(r store.Task) bool { return r.State == store.StateSucceeded })
		if str(got.ClaimedByWorker) != bID || str(got.ResultData) != fmt.Sprintf(`"tests.tasks.task%d"`, i) {
			t.Fatalf("%+v", got)
		}
		switch {
		case got.AttemptNumber == 1 && str(got.RayJobID) == claimed[id]:
			adopted++
		case got.AttemptNumber == 2 && str(got.RayJobID) != claimed[id] && got.ErrorMessage == nil:
			retried++
			if _, ok := srv.Job(claimed[id]); ok {
				t.Fatalf("task %d: its first id %s reached Ray after all", id, claimed[id])
			}
		default:
			t.Fatalf("task %d (claimed by A as %s) ended as %+v", id, claimed[id], got)
		}
	}
	if adopted != 4 || retried != 2 {
		t.Fatalf("adopted %d, retried %d; want 4 and 2", adopted, retried)
	}
	for id, k := range submittedIDs(srv) {
		if k != 1 {
			t.Fatalf("%s accepted %d times", id, k)
		}
	}
	posts := map[string]int{} // every POST, the hung ones included
	for _, r := range srv.Requests() {
		var body struct {
			ID string `json:"submission_id"`
		}
		if r.Endpoint == raytest.Submit && json.Unmarshal(r.Body, &body) == nil {
			posts[body.ID]++
		}
	}
	for id, k := range posts {
		if k != 1 {
			t.Fatalf("%s was POSTed %d times", id, k)
		}
	}
	if len(posts) != n+2 {
		t.Fatalf("%d ids POSTed, want %d (six claims by A, two retries by B)", len(posts), n+2)
	}
	if v := b.metricValue(`rayworker_tasks_recovered_total{kind="adopted"}`); v != 4 {
		t.Fatalf("adopted metric %v", v)
	}
	if v := b.metricValue(`rayworker_ray_orphan_checks_total{result="lost"}`); v != 2 {
		t.Fatalf("lost orphans metric %v", v)
	}
}

// TestBinaryRayAuth: a rejected token is a configuration error: the worker claims nothing,
// /readyz fails naming it, one log line and one metric increment, no retry storm, and the
// token never appears in the log. With the right token (from a token file) it works.
func TestBinaryRayAuth(t *testing.T) {
	t.Parallel()
	s, dsn := migratedDSN(t)
	srv := raytest.New(t, raytest.WithToken("s3cret-token"))
	task := enqueueE2E(t, s, "add", "[2, 3]")

	bad := startRayWorker(t, dsn, []string{"RAY_AUTH_TOKEN=wrong-token-value"}, "--cluster", srv.URL, "--metrics-addr", "127.0.0.1:0")
	workertest.Eventually(t, 30*time.Second, "/readyz to fail on the token", func() bool {
		code, body := bad.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "runner not ready") && strings.Contains(body, "HTTP 403")
	})
	time.Sleep(2 * time.Second)
	if got := waitRow(t, s, task.ID, "the row", func(store.Task) bool { return true }); got.State != store.StateQueued {
		t.Fatalf("claimed with a refused token: %+v", got)
	}
	if v := bad.metricValue("rayworker_ray_config_errors_total"); v != 1 {
		t.Fatalf("config errors metric %v", v)
	}
	if v := bad.metricValue("rayworker_ray_api_up"); v != 0 {
		t.Fatalf("up metric %v", v)
	}
	if k := strings.Count(bad.logs.String(), `"msg":"Ray Jobs API refuses this worker`); k != 1 {
		t.Fatalf("%d refusal lines:\n%s", k, bad.logs)
	}
	if n := srv.Count(raytest.Version); n > 3 {
		t.Fatalf("%d version checks in a few seconds: a retry storm", n)
	}
	if strings.Contains(bad.logs.String(), "wrong-token-value") {
		t.Fatal("the token was logged")
	}
	_ = bad.cmd.Process.Signal(syscall.SIGTERM)
	if code := bad.exitCode(30 * time.Second); code != exitSIGTERM {
		t.Fatalf("exit %d", code)
	}

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := startRayWorker(t, dsn, []string{"RAY_AUTH_TOKEN_PATH=" + tokenFile}, "--cluster", srv.URL)
	good.workerID()
	row := waitRow(t, s, task.ID, "the claim", func(r store.Task) bool { return r.State == store.StateRunning && r.RayJobID != nil })
	workertest.Eventually(t, 30*time.Second, "the job in Ray", func() bool { _, ok := srv.Job(*row.RayJobID); return ok })
	srv.Set(t, *row.RayJobID, raytest.Succeeded, "", `{"success": true, "result": 5}`+"\n")
	if got := waitRow(t, s, task.ID, "success", func(r store.Task) bool { return r.State == store.StateSucceeded }); str(got.ResultData) != "5" {
		t.Fatalf("%+v", got)
	}
	for _, r := range srv.Requests() {
		if r.Endpoint == raytest.Submit && r.Header.Get("Authorization") != "Bearer s3cret-token" {
			t.Fatalf("submit without the token: %v", r.Header)
		}
	}
	if strings.Contains(good.logs.String(), "s3cret-token") {
		t.Fatal("the token was logged")
	}
	var cfg map[string]any
	for _, line := range strings.Split(good.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"configuration"`) {
			_ = json.Unmarshal([]byte(line), &cfg)
		}
	}
	if cfg["mode"] != "cluster" || cfg["ray_address"] != srv.URL || cfg["ray_address_from"] != "--cluster" {
		t.Fatalf("configuration line: %v", cfg)
	}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// TestBinaryRayTLS: an https Jobs API (a TLS proxy in front of Ray) with a private CA works
// through --ray-ca-file; without it the certificate is a configuration error, not an outage.
func TestBinaryRayTLS(t *testing.T) {
	t.Parallel()
	s, dsn := migratedDSN(t)
	srv := raytest.NewTLS(t)
	task := enqueueE2E(t, s, "add", "[2, 3]")

	untrusted := startRayWorker(t, dsn, nil, "--cluster", srv.URL, "--metrics-addr", "127.0.0.1:0")
	workertest.Eventually(t, 30*time.Second, "/readyz to name the certificate", func() bool {
		code, body := untrusted.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "certificate")
	})
	if v := untrusted.metricValue("rayworker_ray_config_errors_total"); v != 1 {
		t.Fatalf("config errors metric %v", v)
	}
	if v := untrusted.metricValue("rayworker_ray_outages_total"); v != 0 {
		t.Fatalf("an untrusted certificate counted as an outage: %v", v)
	}
	_ = untrusted.cmd.Process.Signal(syscall.SIGTERM)
	untrusted.exitCode(30 * time.Second)

	startRayWorker(t, dsn, nil, "--cluster", srv.URL, "--ray-ca-file", srv.CAFile(t))
	row := waitRow(t, s, task.ID, "the claim", func(r store.Task) bool { return r.State == store.StateRunning && r.RayJobID != nil })
	workertest.Eventually(t, 30*time.Second, "the job in Ray", func() bool { _, ok := srv.Job(*row.RayJobID); return ok })
	srv.Set(t, *row.RayJobID, raytest.Succeeded, "", `{"success": true, "result": 5}`+"\n")
	if got := waitRow(t, s, task.ID, "success", func(r store.Task) bool { return r.State == store.StateSucceeded }); str(got.ResultData) != "5" {
		t.Fatalf("%+v", got)
	}
}

// TestBinaryEchoedTokenNeverShown: a proxy or a Ray that echoes the request's token in its
// error answer (seen with auth proxies) does not get it into rayworker's log, /readyz or
// stderr: the client redacts the token from every answer it quotes.
func TestBinaryEchoedTokenNeverShown(t *testing.T) {
	t.Parallel()
	_, dsn := migratedDSN(t)
	const token = "s3cret-echoed-token"
	srv := raytest.New(t)
	echo := raytest.Fault{Status: http.StatusForbidden, Body: "Forbidden: token " + token + " (Authorization: Bearer " + token + ") rejected"}
	srv.Inject(raytest.Health, echo)
	srv.Inject(raytest.Version, echo)
	p := startRayWorker(t, dsn, []string{"RAY_AUTH_TOKEN=" + token}, "--cluster", srv.URL, "--metrics-addr", "127.0.0.1:0")
	var body string
	workertest.Eventually(t, 30*time.Second, "/readyz to fail on the refusal", func() bool {
		var code int
		code, body = p.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "HTTP 403")
	})
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(30 * time.Second); code != exitSIGTERM {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(p.logs.String(), "Forbidden: token") {
		t.Fatalf("the log does not quote Ray's answer at all:\n%s", p.logs)
	}
	if strings.Contains(p.logs.String()+body, token) {
		t.Fatalf("the echoed token was shown:\n%s\n%s", body, p.logs)
	}
}
