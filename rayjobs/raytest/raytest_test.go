package raytest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rayctl/rayctl/rayjobs/raytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// do sends a raw request, as a client other than rayjobs would.
func do(t *testing.T, method, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The fake refuses what Ray 2.60 refuses, so a client bug shows up against it.
func TestFakeRefusesWhatRayRefuses(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path, body string
		hdr        map[string]string
		wantCode   int
		wantBody   string
	}{
		{"submit without the trailing slash", "POST", "/api/jobs", `{"entrypoint":"true"}`, nil, 404, "404: Not Found"},
		{"unknown key", "POST", "/api/jobs/", `{"entrypoint":"true","retry_policy":{}}`, nil, 400, "unexpected keyword argument 'retry_policy'"},
		{"missing entrypoint", "POST", "/api/jobs/", `{"submission_id":"a"}`, nil, 400, "'entrypoint'"},
		{"metadata not strings", "POST", "/api/jobs/", `{"entrypoint":"true","metadata":{"a":1}}`, nil, 400, "metadata values must be strings"},
		{"float memory", "POST", "/api/jobs/", `{"entrypoint":"true","entrypoint_memory":1.5}`, nil, 400, "entrypoint_memory must be an int"},
		{"not JSON", "POST", "/api/jobs/", `entrypoint=true`, nil, 500, "JSONDecodeError"},
		{"browser user agent", "POST", "/api/jobs/", `{"entrypoint":"true"}`, map[string]string{"User-Agent": "Mozilla/5.0"}, 405, "browser traffic"},
		{"origin header", "POST", "/api/jobs/", `{"entrypoint":"true"}`, map[string]string{"Origin": "http://x"}, 405, "browser traffic"},
		{"null keys are stripped", "POST", "/api/jobs/", `{"entrypoint":"true","submission_id":"raysubmit_n","runtime_env":null,"not_a_field":null}`, nil, 200, `"submission_id": "raysubmit_n"`},
		{"unknown job", "GET", "/api/jobs/raysubmit_x", "", nil, 404, "Job raysubmit_x does not exist"},
		{"wrong method", "PUT", "/api/jobs/raysubmit_x", "", nil, 405, "405"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := raytest.New(t)
			code, body := do(t, tt.method, srv.URL+tt.path, tt.body, tt.hdr)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("got %d %q, want %d containing %q", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestFakeWireFormat(t *testing.T) {
	srv := raytest.New(t)
	srv.AddJob(raytest.Job{SubmissionID: "raysubmit_w", Status: raytest.Running, Metadata: map[string]string{"k": "é"}, Logs: "héllo \"x\"\n"})
	code, body := do(t, "GET", srv.URL+"/api/jobs/raysubmit_w", "", nil)
	if code != 200 {
		t.Fatalf("get: %d %s", code, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	// Every key Ray 2.60 sends, null or not, spelled as Ray spells it.
	for _, k := range []string{"type", "job_id", "submission_id", "driver_info", "status", "entrypoint", "message", "error_type", "start_time", "end_time", "metadata", "runtime_env", "driver_agent_http_address", "driver_node_id", "driver_exit_code"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from %s", k, body)
		}
	}
	if m["error_type"] != nil || m["end_time"] != nil || m["status"] != "RUNNING" {
		t.Errorf("unexpected values: %s", body)
	}
	if strings.ContainsRune(body, 'é') || !strings.Contains(body, `\u00e9`) {
		t.Errorf("non-ASCII not escaped as Python's json.dumps does: %s", body)
	}
	_, logs := do(t, "GET", srv.URL+"/api/jobs/raysubmit_w/logs", "", nil)
	if logs != `{"logs": "h\u00e9llo \"x\"\n"}` {
		t.Errorf("logs body %s", logs)
	}
	var lm map[string]string
	if err := json.Unmarshal([]byte(logs), &lm); err != nil || lm["logs"] != "héllo \"x\"\n" {
		t.Errorf("logs decode to %q, %v", lm["logs"], err)
	}
}

func TestFakeCountsAndFaultsExpire(t *testing.T) {
	srv := raytest.New(t)
	srv.Inject(raytest.Get, raytest.Fault{Status: 500, Body: "boom", Times: 2})
	var codes []int
	for range 3 {
		code, _ := do(t, "GET", srv.URL+"/api/jobs/x", "", nil)
		codes = append(codes, code)
	}
	if codes[0] != 500 || codes[1] != 500 || codes[2] != 404 {
		t.Errorf("codes %v, want 500 500 404", codes)
	}
	if n := srv.Count(raytest.Get); n != 3 {
		t.Errorf("count %d", n)
	}
}

// waitStatus polls GET /api/jobs/{id} until the job's status is want.
func waitStatus(t *testing.T, srv *raytest.Server, id, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := do(t, "GET", srv.URL+"/api/jobs/"+id, "", nil)
		var d map[string]any
		if code == 200 && json.Unmarshal([]byte(body), &d) == nil && d["status"] == want {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %d %s, want status %s", id, code, body, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExecutor: with WithExecutor the fake runs entrypoints: RUNNING while the process runs,
// SUCCEEDED or FAILED with its output as the log and its exit code, STOPPED after a stop,
// with the runtime_env's env_vars; jobs keep running through an outage.
func TestExecutor(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t, raytest.WithExecutor("FROM_TEST=t"))
	submit := func(id, entrypoint string) {
		body := fmt.Sprintf(`{"entrypoint": %q, "submission_id": %q, "runtime_env": {"env_vars": {"GREETING": "hello"}}}`, entrypoint, id)
		if code, out := do(t, "POST", srv.URL+"/api/jobs/", body, nil); code != 200 {
			t.Fatalf("submit: %d %s", code, out)
		}
	}
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	submit("raysubmit_ok", fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.02; done; echo "$GREETING $FROM_TEST"`, release))
	submit("raysubmit_fail", "echo broken >&2; exit 3")
	submit("raysubmit_stop", "sleep 300")
	waitStatus(t, srv, "raysubmit_ok", raytest.Running)
	srv.SetOutage(raytest.Garbage)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for srv.Running() > 1 { // the ok job finishes during the outage; the sleep goes on
		time.Sleep(20 * time.Millisecond)
	}
	srv.SetOutage(raytest.NoOutage)
	d := waitStatus(t, srv, "raysubmit_ok", raytest.Succeeded)
	if d["driver_exit_code"] != 0.0 {
		t.Fatalf("%v", d)
	}
	if _, body := do(t, "GET", srv.URL+"/api/jobs/raysubmit_ok/logs", "", nil); body != `{"logs": "hello t\n"}` {
		t.Fatalf("logs %s", body)
	}
	if d := waitStatus(t, srv, "raysubmit_fail", raytest.Failed); d["driver_exit_code"] != 3.0 || !strings.Contains(d["message"].(string), "exit code 3") {
		t.Fatalf("%v", d)
	}
	if code, body := do(t, "POST", srv.URL+"/api/jobs/raysubmit_stop/stop", "", nil); code != 200 || !strings.Contains(body, "true") {
		t.Fatalf("stop: %d %s", code, body)
	}
	waitStatus(t, srv, "raysubmit_stop", raytest.Stopped)
	if n := srv.Running(); n != 0 {
		t.Fatalf("%d still running", n)
	}
}

// TestOutages: each outage applies to every endpoint, the health check included, and ends.
func TestOutages(t *testing.T) {
	t.Parallel()
	srv := raytest.New(t)
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (int, string, error) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	for _, o := range []raytest.Outage{raytest.Refused, raytest.Dropped, raytest.Error500, raytest.Hang, raytest.Garbage} {
		srv.SetOutage(o)
		for _, path := range []string{"/api/gcs_healthz", "/api/version", "/api/jobs/", "/api/jobs/raysubmit_x/logs"} {
			code, body, err := get(path)
			switch o {
			case raytest.Refused:
				if err == nil || !strings.Contains(err.Error(), "refused") {
					t.Errorf("%s %s: %d %v", o, path, code, err)
				}
			case raytest.Dropped, raytest.Hang:
				if err == nil {
					t.Errorf("%s %s: answered %d", o, path, code)
				}
			case raytest.Error500:
				if err != nil || code != 500 {
					t.Errorf("%s %s: %d %v", o, path, code, err)
				}
			case raytest.Garbage:
				if err != nil || code != 200 || body != raytest.GarbageBody {
					t.Errorf("%s %s: %d %q %v", o, path, code, body, err)
				}
			}
		}
		srv.SetOutage(raytest.NoOutage)
		if code, body, err := get("/api/gcs_healthz"); err != nil || code != 200 || body != "success" {
			t.Fatalf("after %s: %d %q %v", o, code, body, err)
		}
	}
}
