package rayjobs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/rayjobs/raytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient makes a client for srv, closed when the test ends.
func newClient(t *testing.T, addr string, mod ...func(*rayjobs.Options)) *rayjobs.Client {
	t.Helper()
	o := rayjobs.Options{Address: addr, UserAgent: "rayctl/test", RequestTimeout: 5 * time.Second, SubmitTimeout: 5 * time.Second}
	for _, f := range mod {
		f(&o)
	}
	c, err := rayjobs.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func asError(t *testing.T, err error) *rayjobs.Error {
	t.Helper()
	var e *rayjobs.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *rayjobs.Error", err, err)
	}
	return e
}

func TestSubmitRequestShape(t *testing.T) {
	tests := []struct {
		name     string
		req      rayjobs.SubmitRequest
		wantKeys []string
	}{
		{
			name:     "entrypoint only",
			req:      rayjobs.SubmitRequest{Entrypoint: "python -c 'print(1)'"},
			wantKeys: []string{"entrypoint"},
		},
		{
			name: "django-ray 0.2.0 contract",
			req: rayjobs.SubmitRequest{
				Entrypoint:   "python -m django_ray.runtime.entrypoint --payload-b64 eyJhIjoxfQ==",
				SubmissionID: "raysubmit_task42a1",
				RuntimeEnv:   map[string]any{"env_vars": map[string]any{"DJANGO_SETTINGS_MODULE": "app.settings"}},
				Metadata:     map[string]string{"django_ray_task_id": "42", "callable_path": "app.tasks.add"},
			},
			wantKeys: []string{"entrypoint", "metadata", "runtime_env", "submission_id"},
		},
		{
			name: "every field",
			req: rayjobs.SubmitRequest{
				Entrypoint: "echo hi && exit 0", SubmissionID: "raysubmit_all",
				RuntimeEnv: map[string]any{"pip": []string{"requests"}}, Metadata: map[string]string{"k": "v"},
				EntrypointNumCPUs: 0.5, EntrypointNumGPUs: 1, EntrypointMemory: 1 << 30,
				EntrypointResources: map[string]float64{"custom": 2}, EntrypointLabelSelector: map[string]string{"zone": "a"},
			},
			wantKeys: []string{"entrypoint", "entrypoint_label_selector", "entrypoint_memory", "entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_resources", "metadata", "runtime_env", "submission_id"},
		},
		{
			name:     "empty maps and zero numbers stay off the wire",
			req:      rayjobs.SubmitRequest{Entrypoint: "true", RuntimeEnv: map[string]any{}, Metadata: map[string]string{}, EntrypointResources: map[string]float64{}},
			wantKeys: []string{"entrypoint"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := raytest.New(t, raytest.WithToken("s3cret"))
			c := newClient(t, srv.URL, func(o *rayjobs.Options) { o.Token = "s3cret" })
			id, err := c.Submit(t.Context(), tt.req)
			if err != nil {
				t.Fatalf("Submit: %v", err)
			}
			if tt.req.SubmissionID != "" && id != tt.req.SubmissionID {
				t.Errorf("id = %q, want %q", id, tt.req.SubmissionID)
			}
			if tt.req.SubmissionID == "" && !strings.HasPrefix(id, "raysubmit_") {
				t.Errorf("id = %q, want Ray's raysubmit_ id", id)
			}
			subs := srv.Submissions()
			if len(subs) != 1 || !subs[0].Accepted {
				t.Fatalf("submissions = %+v, want one accepted", subs)
			}
			var keys []string
			for k, v := range subs[0].Fields {
				keys = append(keys, k)
				if v == nil {
					t.Errorf("key %q sent as null", k)
				}
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("keys = %v, want %v (body %s)", keys, tt.wantKeys, subs[0].Raw)
			}
			if subs[0].Entrypoint != tt.req.Entrypoint {
				t.Errorf("entrypoint = %q, want %q (no HTML escaping either)", subs[0].Entrypoint, tt.req.Entrypoint)
			}
			if strings.Contains(string(subs[0].Raw), `\u0026`) {
				t.Errorf("body has HTML-escaped characters: %s", subs[0].Raw)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 {
				t.Fatalf("requests = %d, want 1", len(reqs))
			}
			r := reqs[0]
			checks := []struct{ what, got, want string }{
				{"method", r.Method, http.MethodPost},
				{"path", r.Path, "/api/jobs/"},
				{"Content-Type", r.Header.Get("Content-Type"), "application/json"},
				{"User-Agent", r.Header.Get("User-Agent"), "rayctl/test"},
				{"Authorization", r.Header.Get("Authorization"), "Bearer s3cret"},
				{"X-Ray-Authorization", r.Header.Get("X-Ray-Authorization"), "Bearer s3cret"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
			for _, h := range []string{"Origin", "Referer", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-Dest", "Cookie"} {
				if v := r.Header.Get(h); v != "" {
					t.Errorf("browser-ish header %s: %q sent", h, v)
				}
			}
		})
	}
}

func TestRequestPathsAndHeaders(t *testing.T) {
	srv := raytest.New(t, raytest.WithToken("tok"))
	srv.AddJob(raytest.Job{SubmissionID: "raysubmit_a", Status: raytest.Succeeded, Logs: "x\n"})
	c := newClient(t, srv.URL, func(o *rayjobs.Options) { o.Token = "tok" })
	ctx := t.Context()
	calls := []struct {
		ep     raytest.Endpoint
		method string
		path   string
		call   func() error
	}{
		{raytest.Get, "GET", "/api/jobs/raysubmit_a", func() error { _, err := c.Get(ctx, "raysubmit_a"); return err }},
		{raytest.List, "GET", "/api/jobs/", func() error { _, err := c.List(ctx); return err }},
		{raytest.Logs, "GET", "/api/jobs/raysubmit_a/logs", func() error { _, err := c.Logs(ctx, "raysubmit_a"); return err }},
		{raytest.Stop, "POST", "/api/jobs/raysubmit_a/stop", func() error { _, err := c.Stop(ctx, "raysubmit_a"); return err }},
		{raytest.Version, "GET", "/api/version", func() error { _, err := c.Version(ctx); return err }},
		{raytest.Health, "GET", "/api/gcs_healthz", func() error { return c.Health(ctx) }},
		{raytest.Delete, "DELETE", "/api/jobs/raysubmit_a", func() error { _, err := c.Delete(ctx, "raysubmit_a"); return err }},
	}
	for i, cl := range calls {
		if err := cl.call(); err != nil {
			t.Fatalf("%s: %v", cl.ep, err)
		}
		r := srv.Requests()[i]
		if r.Endpoint != cl.ep || r.Method != cl.method || r.Path != cl.path {
			t.Errorf("request %d = %s %s (%s), want %s %s", i, r.Method, r.Path, r.Endpoint, cl.method, cl.path)
		}
		if r.Header.Get("User-Agent") != "rayctl/test" {
			t.Errorf("%s: User-Agent %q", cl.ep, r.Header.Get("User-Agent"))
		}
		wantAuth := "Bearer tok"
		if cl.ep == raytest.Health {
			wantAuth = "" // exempt: the token is not sent where it is not needed
		}
		if got := r.Header.Get("Authorization"); got != wantAuth {
			t.Errorf("%s: Authorization %q, want %q", cl.ep, got, wantAuth)
		}
		if got := r.Header.Get("X-Ray-Authorization"); got != wantAuth {
			t.Errorf("%s: X-Ray-Authorization %q, want %q", cl.ep, got, wantAuth)
		}
	}
}

func TestDefaultUserAgentIsNotABrowser(t *testing.T) {
	srv := raytest.New(t)
	c, err := rayjobs.New(rayjobs.Options{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Submit(t.Context(), rayjobs.SubmitRequest{Entrypoint: "true"}); err != nil {
		t.Fatalf("Submit with the default user agent: %v", err)
	}
	if ua := srv.Requests()[0].Header.Get("User-Agent"); ua != rayjobs.DefaultUserAgent {
		t.Errorf("User-Agent = %q, want %q", ua, rayjobs.DefaultUserAgent)
	}
}

func TestSubmitDuplicateID(t *testing.T) {
	for _, code := range []int{500, 400} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			srv := raytest.New(t, raytest.WithDuplicateStatus(code))
			c := newClient(t, srv.URL)
			req := rayjobs.SubmitRequest{Entrypoint: "sleep 1", SubmissionID: "raysubmit_dup"}
			if _, err := c.Submit(t.Context(), req); err != nil {
				t.Fatalf("first Submit: %v", err)
			}
			id, err := c.Submit(t.Context(), req)
			if !errors.Is(err, rayjobs.ErrAlreadySubmitted) {
				t.Fatalf("second Submit: %v, want ErrAlreadySubmitted", err)
			}
			if id != "raysubmit_dup" {
				t.Errorf("id = %q, want the existing job's id", id)
			}
			if rayjobs.Retryable(err) {
				t.Error("a duplicate is retryable")
			}
			e := asError(t, err)
			if e.Status != code || e.Op != "submit" || e.JobID != "raysubmit_dup" {
				t.Errorf("error = %+v", e)
			}
			if want := "ValueError: Job with submission_id raysubmit_dup already exists. Please use a different submission_id."; e.Message != want {
				t.Errorf("message = %q, want %q", e.Message, want)
			}
			if strings.Contains(err.Error(), "Traceback") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error text carries the traceback: %q", err.Error())
			}
			if n := len(srv.Jobs()); n != 1 {
				t.Errorf("fake has %d jobs, want 1", n)
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	bigTraceback := "Traceback (most recent call last):\n" + strings.Repeat("  File \"x.py\", line 1, in f\n    g()\n", 40000) + "RuntimeError: No available agent to submit job, please try again later.\n"
	tests := []struct {
		name      string
		setup     func(*raytest.Server)
		token     string
		call      func(context.Context, *rayjobs.Client) error
		want      error
		status    int
		retryable bool
		message   string
	}{
		{
			name: "get unknown job",
			call: func(ctx context.Context, c *rayjobs.Client) error { _, err := c.Get(ctx, "raysubmit_nope"); return err },
			want: rayjobs.ErrNotFound, status: 404, message: "Job raysubmit_nope does not exist",
		},
		{
			name: "stop unknown job",
			call: func(ctx context.Context, c *rayjobs.Client) error {
				_, err := c.Stop(ctx, "raysubmit_nope")
				return err
			},
			want: rayjobs.ErrNotFound, status: 404,
		},
		{
			name: "logs unknown job",
			call: func(ctx context.Context, c *rayjobs.Client) error {
				_, err := c.Logs(ctx, "raysubmit_nope")
				return err
			},
			want: rayjobs.ErrNotFound, status: 404,
		},
		{
			name: "delete unknown job",
			call: func(ctx context.Context, c *rayjobs.Client) error {
				_, err := c.Delete(ctx, "raysubmit_nope")
				return err
			},
			want: rayjobs.ErrNotFound, status: 404,
		},
		{
			name:  "submit 500 with a huge traceback",
			setup: func(s *raytest.Server) { s.Inject(raytest.Submit, raytest.Fault{Status: 500, Body: bigTraceback}) },
			call: func(ctx context.Context, c *rayjobs.Client) error {
				_, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: "true", SubmissionID: "raysubmit_x"})
				return err
			},
			want: rayjobs.ErrUnavailable, status: 500, retryable: true,
			message: "RuntimeError: No available agent to submit job, please try again later.",
		},
		{
			name: "submit 500 wrapping the agent's 400",
			setup: func(s *raytest.Server) {
				s.Inject(raytest.Submit, raytest.Fault{Status: 500, Body: "Traceback (most recent call last):\n  File \"job_head.py\"\nRuntimeError: Request failed with status code 400: Traceback (most recent call last):\n  File \"job_agent.py\"\nValueError: Invalid label selector value '!!'.\n."})
			},
			call: func(ctx context.Context, c *rayjobs.Client) error {
				_, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: "true", EntrypointLabelSelector: map[string]string{"a": "!!"}})
				return err
			},
			want: rayjobs.ErrRejected, status: 500, message: "ValueError: Invalid label selector value '!!'.",
		},
		{
			name: "get 503",
			setup: func(s *raytest.Server) {
				s.Inject(raytest.Get, raytest.Fault{Status: 503, Body: "Service Unavailable"})
			},
			call: func(ctx context.Context, c *rayjobs.Client) error { _, err := c.Get(ctx, "raysubmit_x"); return err },
			want: rayjobs.ErrUnavailable, status: 503, retryable: true, message: "Service Unavailable",
		},
		{
			name: "list 502 from a proxy",
			setup: func(s *raytest.Server) {
				s.Inject(raytest.List, raytest.Fault{Status: 502, Body: "<html><body>Bad Gateway</body></html>"})
			},
			call: func(ctx context.Context, c *rayjobs.Client) error { _, err := c.List(ctx); return err },
			want: rayjobs.ErrUnavailable, status: 502, retryable: true,
		},
		{
			name:  "429 is retryable",
			setup: func(s *raytest.Server) { s.Inject(raytest.Get, raytest.Fault{Status: 429, Body: "slow down"}) },
			call:  func(ctx context.Context, c *rayjobs.Client) error { _, err := c.Get(ctx, "raysubmit_x"); return err },
			want:  rayjobs.ErrUnavailable, status: 429, retryable: true,
		},
		{
			name:  "missing token",
			setup: func(s *raytest.Server) {},
			call:  func(ctx context.Context, c *rayjobs.Client) error { _, err := c.Version(ctx); return err },
			want:  rayjobs.ErrUnauthorized, status: 401, message: "Unauthorized: Missing authentication token",
		},
		{
			name:  "wrong token",
			token: "wrong",
			call: func(ctx context.Context, c *rayjobs.Client) error {
				_, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: "true"})
				return err
			},
			want: rayjobs.ErrUnauthorized, status: 403, message: "Forbidden: Invalid authentication token",
		},
		{
			name: "health needs no token",
			call: func(ctx context.Context, c *rayjobs.Client) error { return c.Health(ctx) },
		},
		{
			name: "health 503",
			setup: func(s *raytest.Server) {
				s.Inject(raytest.Health, raytest.Fault{Status: 503, Body: "Health check failed: GCS unreachable"})
			},
			call: func(ctx context.Context, c *rayjobs.Client) error { return c.Health(ctx) },
			want: rayjobs.ErrUnavailable, status: 503, retryable: true,
		},
		{
			name: "health 200 that is not Ray's answer",
			setup: func(s *raytest.Server) {
				s.Inject(raytest.Health, raytest.Fault{Status: 200, Body: "<html>Sign in</html>"})
			},
			call: func(ctx context.Context, c *rayjobs.Client) error { return c.Health(ctx) },
			want: rayjobs.ErrBadResponse, status: 200,
		},
		{
			name: "400 rejected",
			setup: func(s *raytest.Server) {
				s.Inject(raytest.Stop, raytest.Fault{Status: 400, Body: "Can only stop submission type jobs"})
			},
			call: func(ctx context.Context, c *rayjobs.Client) error { _, err := c.Stop(ctx, "02000000"); return err },
			want: rayjobs.ErrRejected, status: 400, message: "Can only stop submission type jobs",
		},
		{
			name: "405 browser filter",
			setup: func(s *raytest.Server) {
				s.Inject(raytest.Submit, raytest.Fault{Status: 405, Body: "Method Not Allowed for browser traffic."})
			},
			call: func(ctx context.Context, c *rayjobs.Client) error {
				_, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: "true"})
				return err
			},
			want: rayjobs.ErrRejected, status: 405,
		},
		{
			name:  "delete a running job",
			setup: func(s *raytest.Server) { s.AddJob(raytest.Job{SubmissionID: "raysubmit_run", Status: raytest.Running}) },
			call: func(ctx context.Context, c *rayjobs.Client) error {
				_, err := c.Delete(ctx, "raysubmit_run")
				return err
			},
			want: rayjobs.ErrNotTerminal, status: 500,
			message: "RuntimeError: Attempted to delete job 'raysubmit_run', but it is in a non-terminal state RUNNING.",
		},
		{
			name: "200 that is not JSON",
			setup: func(s *raytest.Server) {
				s.Inject(raytest.Get, raytest.Fault{Status: 200, Body: "<html>Sign in</html>"})
			},
			call: func(ctx context.Context, c *rayjobs.Client) error { _, err := c.Get(ctx, "raysubmit_x"); return err },
			want: rayjobs.ErrBadResponse, status: 200,
		},
		{
			name:  "logs 200 that is not JSON",
			setup: func(s *raytest.Server) { s.Inject(raytest.Logs, raytest.Fault{Status: 200, Body: "plain text log"}) },
			call:  func(ctx context.Context, c *rayjobs.Client) error { _, err := c.Logs(ctx, "raysubmit_x"); return err },
			want:  rayjobs.ErrBadResponse, status: 200,
		},
		{
			name:  "list answer that is an object of the wrong shape",
			setup: func(s *raytest.Server) { s.Inject(raytest.List, raytest.Fault{Status: 200, Body: `"jobs"`}) },
			call:  func(ctx context.Context, c *rayjobs.Client) error { _, err := c.List(ctx); return err },
			want:  rayjobs.ErrBadResponse, status: 200,
		},
		{
			name:  "redirect is not followed",
			setup: func(s *raytest.Server) { s.Inject(raytest.Get, raytest.Fault{Status: 302, Body: "moved"}) },
			call:  func(ctx context.Context, c *rayjobs.Client) error { _, err := c.Get(ctx, "raysubmit_x"); return err },
			want:  rayjobs.ErrBadResponse, status: 302,
		},
		{
			name:  "connection dropped",
			setup: func(s *raytest.Server) { s.Inject(raytest.Get, raytest.Fault{Drop: true}) },
			call:  func(ctx context.Context, c *rayjobs.Client) error { _, err := c.Get(ctx, "raysubmit_x"); return err },
			want:  rayjobs.ErrUnavailable, retryable: true,
		},
		{
			name: "bad job id never leaves the client",
			call: func(ctx context.Context, c *rayjobs.Client) error { _, err := c.Get(ctx, "a/b"); return err },
			want: rayjobs.ErrRejected,
		},
		{
			name: "empty entrypoint never leaves the client",
			call: func(ctx context.Context, c *rayjobs.Client) error {
				_, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: " "})
				return err
			},
			want: rayjobs.ErrRejected,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []raytest.Option
			if tt.name == "missing token" || tt.name == "wrong token" || tt.name == "health needs no token" {
				opts = append(opts, raytest.WithToken("right"))
			}
			srv := raytest.New(t, opts...)
			if tt.setup != nil {
				tt.setup(srv)
			}
			c := newClient(t, srv.URL, func(o *rayjobs.Options) { o.Token = tt.token })
			err := tt.call(t.Context(), c)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			e := asError(t, err)
			if e.Status != tt.status {
				t.Errorf("status %d, want %d", e.Status, tt.status)
			}
			if got := rayjobs.Retryable(err); got != tt.retryable {
				t.Errorf("Retryable = %v, want %v", got, tt.retryable)
			}
			if tt.message != "" && e.Message != tt.message {
				t.Errorf("message %q, want %q", e.Message, tt.message)
			}
			if len(err.Error()) > 1024 {
				t.Errorf("error text is %d bytes, want it bounded: %.200q...", len(err.Error()), err.Error())
			}
			if n := srv.Count(raytest.Other); n != 0 {
				t.Errorf("%d requests hit no route", n)
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	t.Run("hung get times out with the request timeout", func(t *testing.T) {
		srv := raytest.New(t)
		srv.Inject(raytest.Get, raytest.Fault{Hang: true})
		c := newClient(t, srv.URL, func(o *rayjobs.Options) {
			o.RequestTimeout = 100 * time.Millisecond
			o.SubmitTimeout = time.Hour
		})
		_, err := c.Get(t.Context(), "raysubmit_a")
		if !errors.Is(err, rayjobs.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want ErrUnavailable and DeadlineExceeded", err)
		}
	})
	t.Run("hung submit times out with the submit timeout", func(t *testing.T) {
		srv := raytest.New(t)
		srv.Inject(raytest.Submit, raytest.Fault{Hang: true})
		c := newClient(t, srv.URL, func(o *rayjobs.Options) {
			o.RequestTimeout = time.Hour
			o.SubmitTimeout = 100 * time.Millisecond
		})
		_, err := c.Submit(t.Context(), rayjobs.SubmitRequest{Entrypoint: "true", SubmissionID: "raysubmit_t"})
		if !errors.Is(err, rayjobs.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want ErrUnavailable and DeadlineExceeded", err)
		}
		if e := asError(t, err); e.JobID != "raysubmit_t" || e.Op != "submit" {
			t.Errorf("error names %s %s", e.Op, e.JobID)
		}
	})
	t.Run("slow answer within the timeout succeeds", func(t *testing.T) {
		srv := raytest.New(t)
		srv.AddJob(raytest.Job{SubmissionID: "raysubmit_s", Status: raytest.Running})
		srv.Inject(raytest.Get, raytest.Fault{Delay: 50 * time.Millisecond, Times: 1})
		c := newClient(t, srv.URL)
		j, err := c.Get(t.Context(), "raysubmit_s")
		if err != nil || j.Status != rayjobs.StatusRunning {
			t.Fatalf("Get = %+v, %v", j, err)
		}
	})
	t.Run("caller's cancel is not unavailability", func(t *testing.T) {
		srv := raytest.New(t)
		srv.Inject(raytest.Get, raytest.Fault{Hang: true})
		c := newClient(t, srv.URL)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := c.Get(ctx, "raysubmit_a")
		if !errors.Is(err, context.Canceled) || errors.Is(err, rayjobs.ErrUnavailable) {
			t.Fatalf("error %v, want context.Canceled only", err)
		}
	})
	t.Run("logs stream cut by the logs timeout", func(t *testing.T) {
		srv := raytest.New(t)
		srv.AddJob(raytest.Job{SubmissionID: "raysubmit_l", Status: raytest.Running, LogStream: func(w io.Writer) error {
			io.WriteString(w, "first line\n")
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			time.Sleep(300 * time.Millisecond) // a dashboard that stalls mid-body
			_, err := io.WriteString(w, "late\n")
			return err
		}})
		c := newClient(t, srv.URL, func(o *rayjobs.Options) { o.LogsTimeout = 100 * time.Millisecond })
		_, err := c.Logs(t.Context(), "raysubmit_l")
		if !errors.Is(err, rayjobs.ErrUnavailable) {
			t.Fatalf("error %v, want ErrUnavailable", err)
		}
	})
}

func TestDashboardRestart(t *testing.T) {
	srv := raytest.New(t, raytest.WithLifecycle(func(raytest.Submission) []raytest.Step {
		return []raytest.Step{{Status: raytest.Running}}
	}))
	c := newClient(t, srv.URL)
	ctx := t.Context()
	id, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: "sleep 100", SubmissionID: "raysubmit_r1"})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := c.Get(ctx, id); err != nil || j.Status != rayjobs.StatusRunning {
		t.Fatalf("before restart: %+v, %v", j, err)
	}

	srv.SetDown(true) // restarting: connections die
	if err := c.Health(ctx); !errors.Is(err, rayjobs.ErrUnavailable) {
		t.Fatalf("Health while down: %v, want ErrUnavailable", err)
	}
	if _, err := c.Get(ctx, id); !errors.Is(err, rayjobs.ErrUnavailable) {
		t.Fatalf("Get while down: %v, want ErrUnavailable", err)
	}
	srv.Restart()
	srv.SetDown(false)

	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health after restart: %v", err)
	}
	if _, err := c.Get(ctx, id); !errors.Is(err, rayjobs.ErrNotFound) {
		t.Fatalf("Get after restart: %v, want ErrNotFound (the job was forgotten)", err)
	}
	v2, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v1.SessionName == v2.SessionName {
		t.Errorf("session name %q did not change across the restart", v1.SessionName)
	}
	jobs, err := c.List(ctx)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("List after restart = %v, %v; want empty", jobs, err)
	}
	// Ray forgot the id, so the same id can be submitted again (and would run again).
	if _, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: "sleep 100", SubmissionID: "raysubmit_r1"}); err != nil {
		t.Fatalf("resubmit after restart: %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	result := `{"success": true, "result": 5, "error": null, "traceback": null, "exception_type": null}`
	srv := raytest.New(t, raytest.WithLifecycle(func(s raytest.Submission) []raytest.Step {
		switch s.Metadata["case"] {
		case "ok":
			return raytest.Succeeds("Running entrypoint\n" + result + "\n")
		case "fail":
			return raytest.Fails("Traceback...\nSystemExit: 1\n")
		}
		return nil // stuck PENDING
	}))
	c := newClient(t, srv.URL)
	ctx := t.Context()
	submit := func(id, kase string) {
		t.Helper()
		if _, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: "python x.py", SubmissionID: id, Metadata: map[string]string{"case": kase}}); err != nil {
			t.Fatal(err)
		}
	}
	submit("raysubmit_ok", "ok")
	submit("raysubmit_fail", "fail")
	submit("raysubmit_stuck", "stuck")

	poll := func(id string) []rayjobs.Status {
		var seen []rayjobs.Status
		for range 4 {
			j, err := c.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, j.Status)
		}
		return seen
	}
	if got, want := poll("raysubmit_ok"), []rayjobs.Status{"RUNNING", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED"}; !slices.Equal(got, want) {
		t.Errorf("ok job statuses %v, want %v", got, want)
	}
	if got, want := poll("raysubmit_stuck"), []rayjobs.Status{"PENDING", "PENDING", "PENDING", "PENDING"}; !slices.Equal(got, want) {
		t.Errorf("stuck job statuses %v, want %v", got, want)
	}
	poll("raysubmit_fail")

	ok, err := c.Get(ctx, "raysubmit_ok")
	if err != nil {
		t.Fatal(err)
	}
	if ok.DriverExitCode == nil || *ok.DriverExitCode != 0 || ok.Message != "Job finished successfully." || ok.StartTime.IsZero() || ok.EndTime.Before(ok.StartTime) || ok.Metadata["case"] != "ok" || ok.JobID == "" || ok.Type != rayjobs.TypeSubmission {
		t.Errorf("succeeded job = %+v", ok)
	}
	logs, err := c.Logs(ctx, "raysubmit_ok")
	if err != nil {
		t.Fatal(err)
	}
	if line, complete := logs.LastLine(); line != result || !complete || logs.Truncated {
		t.Errorf("last line %q (complete %v, truncated %v), want the result JSON", line, complete, logs.Truncated)
	}

	failed, err := c.Get(ctx, "raysubmit_fail")
	if err != nil {
		t.Fatal(err)
	}
	if failed.Status != rayjobs.StatusFailed || failed.ErrorType != "JOB_ENTRYPOINT_COMMAND_ERROR" || failed.DriverExitCode == nil || *failed.DriverExitCode != 1 || !strings.Contains(failed.Message, "SystemExit: 1") {
		t.Errorf("failed job = %+v", failed)
	}
	stuck, err := c.Get(ctx, "raysubmit_stuck")
	if err != nil {
		t.Fatal(err)
	}
	if stuck.Status.Terminal() || stuck.Message != "Job has not started yet." || stuck.JobID != "" || stuck.DriverExitCode != nil || !stuck.EndTime.IsZero() {
		t.Errorf("stuck job = %+v", stuck)
	}
}

func TestListMixedJobs(t *testing.T) {
	srv := raytest.New(t)
	srv.AddJob(raytest.Job{SubmissionID: "raysubmit_1", Status: raytest.Succeeded})
	srv.AddJob(raytest.Job{SubmissionID: "raysubmit_2", Status: "RETRYING"})
	srv.AddJob(raytest.Job{SubmissionID: "03000000", Type: "DRIVER", Status: raytest.Running})
	c := newClient(t, srv.URL)
	jobs, err := c.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		id, typ string
		st      rayjobs.Status
		raw     string
	}
	var got []row
	for _, j := range jobs {
		got = append(got, row{j.ID(), j.Type, j.Status, j.RawStatus})
	}
	want := []row{
		{"raysubmit_1", "SUBMISSION", rayjobs.StatusSucceeded, "SUCCEEDED"},
		{"raysubmit_2", "SUBMISSION", rayjobs.StatusUnknown, "RETRYING"},
		{"03000000", "DRIVER", rayjobs.StatusRunning, "RUNNING"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("list = %+v\nwant %+v", got, want)
	}
	if _, err := c.Stop(t.Context(), "03000000"); !errors.Is(err, rayjobs.ErrRejected) {
		t.Errorf("stop a DRIVER job: %v, want ErrRejected", err)
	}
}

func TestListTooLarge(t *testing.T) {
	srv := raytest.New(t)
	for i := range 50 {
		srv.AddJob(raytest.Job{SubmissionID: fmt.Sprintf("raysubmit_%03d", i), Entrypoint: strings.Repeat("x", 1000)})
	}
	c := newClient(t, srv.URL, func(o *rayjobs.Options) { o.MaxListBytes = 10_000 })
	_, err := c.List(t.Context())
	if !errors.Is(err, rayjobs.ErrBadResponse) || !strings.Contains(err.Error(), "larger than 10000 bytes") {
		t.Fatalf("error %v, want ErrBadResponse naming the limit", err)
	}
	c2 := newClient(t, srv.URL)
	jobs, err := c2.List(t.Context())
	if err != nil || len(jobs) != 50 {
		t.Fatalf("List with the default limit: %d jobs, %v", len(jobs), err)
	}
}

func TestStopAndDelete(t *testing.T) {
	srv := raytest.New(t, raytest.WithStopAfter(1))
	srv.AddJob(raytest.Job{SubmissionID: "raysubmit_run", Status: raytest.Running})
	srv.AddJob(raytest.Job{SubmissionID: "raysubmit_done", Status: raytest.Succeeded})
	c := newClient(t, srv.URL)
	ctx := t.Context()

	stopped, err := c.Stop(ctx, "raysubmit_run")
	if err != nil || !stopped {
		t.Fatalf("Stop running = %v, %v; want true", stopped, err)
	}
	// Stop is asynchronous: still RUNNING at the next look, STOPPED after.
	var seen []rayjobs.Status
	for range 3 {
		j, err := c.Get(ctx, "raysubmit_run")
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, j.Status)
	}
	if want := []rayjobs.Status{"RUNNING", "STOPPED", "STOPPED"}; !slices.Equal(seen, want) {
		t.Errorf("after stop: %v, want %v", seen, want)
	}
	if stopped, err := c.Stop(ctx, "raysubmit_done"); err != nil || stopped {
		t.Errorf("Stop finished job = %v, %v; want false, nil", stopped, err)
	}
	if deleted, err := c.Delete(ctx, "raysubmit_done"); err != nil || !deleted {
		t.Fatalf("Delete = %v, %v", deleted, err)
	}
	if _, err := c.Get(ctx, "raysubmit_done"); !errors.Is(err, rayjobs.ErrNotFound) {
		t.Errorf("Get deleted job: %v, want ErrNotFound", err)
	}
	if j, _ := srv.Job("raysubmit_run"); j.StopRequests != 1 {
		t.Errorf("stop requests = %d, want 1", j.StopRequests)
	}
}

func TestLogs(t *testing.T) {
	envelope := `{"success": true, "result": {"msg": "h\u00e9llo \ud83d\ude00"}, "error": null, "traceback": null, "exception_type": null}`
	tests := []struct {
		name     string
		logs     string
		wantLast string
	}{
		{"result last", "2026-11-23 INFO Runtime env is setting up.\nRunning entrypoint for job x\n" + envelope + "\n", envelope},
		{"no JSON line", "Running entrypoint\nKilled\n", "Killed"},
		{"empty (not started)", "", ""},
		{"quotes, tabs, control chars, unicode", "a\t\"b\" \\c\x01\r\nhéllo 😀 \u2028 end\n", "héllo 😀 \u2028 end"},
		{"no trailing newline", "x\ny", "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := raytest.New(t)
			srv.AddJob(raytest.Job{SubmissionID: "raysubmit_l", Status: raytest.Succeeded, Logs: tt.logs})
			c := newClient(t, srv.URL)
			logs, err := c.Logs(t.Context(), "raysubmit_l")
			if err != nil {
				t.Fatal(err)
			}
			if logs.Text != tt.logs || logs.Truncated || logs.Size != int64(len(tt.logs)) {
				t.Errorf("logs = %+v, want the text back whole", logs)
			}
			if last, complete := logs.LastLine(); last != tt.wantLast || !complete {
				t.Errorf("last line %q (complete %v), want %q", last, complete, tt.wantLast)
			}
		})
	}
}

func TestLogsHugeStreamedInBoundedMemory(t *testing.T) {
	const size = 300 << 20 // 300 MiB of log before the result
	last := `{"success": true, "result": 42, "error": null, "traceback": null, "exception_type": null}`
	srv := raytest.New(t)
	srv.AddJob(raytest.Job{SubmissionID: "raysubmit_big", Status: raytest.Succeeded, LogStream: raytest.RepeatLog(size, last)})
	c := newClient(t, srv.URL, func(o *rayjobs.Options) {
		o.MaxLogBytes = 1 << 20
		o.LogsTimeout = 5 * time.Minute // -race on 2 shared cores is slow; this is not a speed test
	})

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	logs, err := c.Logs(t.Context(), "raysubmit_big")
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if !logs.Truncated || logs.Partial {
		t.Errorf("truncated=%v partial=%v, want a truncated tail of whole lines", logs.Truncated, logs.Partial)
	}
	if logs.Size < size {
		t.Errorf("size %d, want >= %d (the whole log was read)", logs.Size, size)
	}
	if len(logs.Text) > 1<<20 {
		t.Errorf("tail is %d bytes, over the 1 MiB limit", len(logs.Text))
	}
	if line, complete := logs.LastLine(); line != last || !complete {
		t.Errorf("last line %.100q (complete %v), want the result", line, complete)
	}
	if !strings.HasPrefix(logs.Text, "filler line ") {
		t.Errorf("tail does not start at a line: %.60q", logs.Text)
	}
	// Client and fake together allocate a few MiB; reading the body whole would be > 300 MiB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("allocated %d MiB to read a %d MiB log, want it bounded", alloc>>20, size>>20)
	}
}

func TestLogsLastLineLongerThanTheLimit(t *testing.T) {
	huge := `{"success": true, "result": "` + strings.Repeat("x", 3<<20) + `"}`
	srv := raytest.New(t)
	srv.AddJob(raytest.Job{SubmissionID: "raysubmit_o", Status: raytest.Succeeded, Logs: "start\n" + huge + "\n"})
	c := newClient(t, srv.URL, func(o *rayjobs.Options) { o.MaxLogBytes = 1 << 20 })
	logs, err := c.Logs(t.Context(), "raysubmit_o")
	if err != nil {
		t.Fatal(err)
	}
	if line, complete := logs.LastLine(); complete || !strings.HasSuffix(line, `xxx"}`) {
		t.Errorf("last line complete=%v (%d bytes), want it marked incomplete", complete, len(line))
	}
	// With room for it, the same line comes back whole.
	c2 := newClient(t, srv.URL, func(o *rayjobs.Options) { o.MaxLogBytes = 4 << 20 })
	logs, err = c2.Logs(t.Context(), "raysubmit_o")
	if err != nil {
		t.Fatal(err)
	}
	if line, complete := logs.LastLine(); !complete || line != huge {
		t.Errorf("with a 4 MiB limit: complete=%v len=%d, want the whole %d-byte line", complete, len(line), len(huge))
	}
}

func TestTLSWithCustomCA(t *testing.T) {
	srv := raytest.NewTLS(t, raytest.WithRayVersion("2.60.0"))
	ca := srv.CAFile(t)
	c := newClient(t, srv.URL, func(o *rayjobs.Options) { o.CAFile = ca })
	v, err := c.Version(t.Context())
	if err != nil {
		t.Fatalf("Version over TLS with the CA: %v", err)
	}
	if v.RayVersion != "2.60.0" || v.Version != "4" || !v.RayAtLeast(2, 8) {
		t.Errorf("version = %+v", v)
	}
	if !strings.HasPrefix(c.Address(), "https://") {
		t.Errorf("address %q", c.Address())
	}

	untrusting := newClient(t, srv.URL) // system roots only
	_, err = untrusting.Version(t.Context())
	if !errors.Is(err, rayjobs.ErrCertificate) || rayjobs.Retryable(err) {
		t.Fatalf("without the CA: %v, want ErrCertificate, not retryable", err)
	}

	other := raytest.NewTLS(t, raytest.WithCertificate(selfSigned(t))) // another CA
	wrongCA := newClient(t, other.URL, func(o *rayjobs.Options) { o.CAFile = ca })
	if _, err := wrongCA.Version(t.Context()); !errors.Is(err, rayjobs.ErrCertificate) {
		t.Fatalf("with another server's CA: %v, want ErrCertificate", err)
	}
}

func TestKeepAlive(t *testing.T) {
	srv := raytest.New(t)
	srv.AddJob(raytest.Job{SubmissionID: "raysubmit_k", Status: raytest.Running, Logs: "x\n"})
	c := newClient(t, srv.URL)
	ctx := t.Context()
	for range 20 {
		if _, err := c.Get(ctx, "raysubmit_k"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Logs(ctx, "raysubmit_k"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, "raysubmit_missing"); !errors.Is(err, rayjobs.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if n := srv.Conns(); n != 1 {
		t.Errorf("60 sequential requests opened %d connections, want 1 (keep-alive)", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := raytest.New(t, raytest.WithLifecycle(func(raytest.Submission) []raytest.Step { return raytest.Succeeds("ok\n") }))
	c := newClient(t, srv.URL)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			id := fmt.Sprintf("raysubmit_c%02d", i)
			if _, err := c.Submit(ctx, rayjobs.SubmitRequest{Entrypoint: "true", SubmissionID: id}); err != nil {
				errs <- err
				return
			}
			for range 3 {
				if _, err := c.Get(ctx, id); err != nil {
					errs <- err
				}
			}
			if _, err := c.List(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.Count(raytest.Submit); n != 16 {
		t.Errorf("submits = %d, want 16", n)
	}
	if n := srv.Count(raytest.Get); n != 48 {
		t.Errorf("gets = %d, want 48", n)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		opts     rayjobs.Options
		wantAddr string
		wantErr  string
	}{
		{"bare host:port is http", rayjobs.Options{Address: "127.0.0.1:8265"}, "http://127.0.0.1:8265", ""},
		{"trailing slash trimmed", rayjobs.Options{Address: "http://head:8265/"}, "http://head:8265", ""},
		{"proxy prefix kept", rayjobs.Options{Address: "https://k8s/api/v1/namespaces/ns/services/head:dashboard/proxy/"}, "https://k8s/api/v1/namespaces/ns/services/head:dashboard/proxy", ""},
		{"empty", rayjobs.Options{}, "", "no address"},
		{"ray client address", rayjobs.Options{Address: "ray://head:10001"}, "", "Ray Client address"},
		{"other scheme", rayjobs.Options{Address: "ftp://head"}, "", "scheme must be http or https"},
		{"credentials in the URL", rayjobs.Options{Address: "http://user:pw@head:8265"}, "", "no user info"},
		{"credentials in a URL that does not parse", rayjobs.Options{Address: "http://user:pw@head:badport"}, "", "http://user:xxxxx@head:badport"},
		{"credentials in a URL of another scheme", rayjobs.Options{Address: "ftp://user:p@w@head"}, "", "ftp://user:xxxxx@head"},
		{"browser user agent", rayjobs.Options{Address: "head:8265", UserAgent: "Mozilla/5.0"}, "", "browser User-Agent"},
		{"token with a newline", rayjobs.Options{Address: "head:8265", Token: "a\nb"}, "", "whitespace"},
		{"missing CA file", rayjobs.Options{Address: "https://head", CAFile: filepath.Join(dir, "none.pem")}, "", "CA file"},
		{"CA file without a certificate", rayjobs.Options{Address: "https://head", CAFile: notPEM}, "", "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := rayjobs.New(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Address() != tt.wantAddr {
				t.Errorf("address %q, want %q", c.Address(), tt.wantAddr)
			}
		})
	}
}

func TestProxyPrefix(t *testing.T) {
	srv := raytest.New(t)
	srv.AddJob(raytest.Job{SubmissionID: "raysubmit_p", Status: raytest.Running})
	proxy := httptest.NewServer(http.StripPrefix("/proxy", httpProxy(srv.URL)))
	defer proxy.Close()
	c := newClient(t, proxy.URL+"/proxy/")
	j, err := c.Get(t.Context(), "raysubmit_p")
	if err != nil || j.SubmissionID != "raysubmit_p" {
		t.Fatalf("Get through a path prefix: %+v, %v", j, err)
	}
	if p := srv.Requests()[0].Path; p != "/api/jobs/raysubmit_p" {
		t.Errorf("fake saw %q", p)
	}
}

// httpProxy forwards to target (path as given), a stand-in for an ingress in front of Ray.
func httpProxy(target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.Path, r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
}

func TestTokenFromEnv(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokFile := write("token", "  from-file\n")
	empty := write("empty", "\n")
	write("home/.ray/auth_token", "from-home\n")
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{"env wins", map[string]string{"RAY_AUTH_TOKEN": " from-env ", "RAY_AUTH_TOKEN_PATH": tokFile}, "from-env", ""},
		{"token path", map[string]string{"RAY_AUTH_TOKEN_PATH": tokFile}, "from-file", ""},
		{"home file", map[string]string{"HOME": filepath.Join(dir, "home")}, "from-home", ""},
		{"nothing configured", map[string]string{"HOME": filepath.Join(dir, "nohome")}, "", ""},
		{"empty token file", map[string]string{"RAY_AUTH_TOKEN_PATH": empty}, "", "is empty"},
		{"missing token file", map[string]string{"RAY_AUTH_TOKEN_PATH": filepath.Join(dir, "nope")}, "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rayjobs.TokenFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	e := &rayjobs.Error{Op: "get", JobID: "raysubmit_a", Status: 500, Kind: rayjobs.ErrUnavailable, Message: "RuntimeError: boom"}
	if got, want := e.Error(), "ray jobs api: get raysubmit_a: HTTP 500: Ray Jobs API unavailable: RuntimeError: boom"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if !errors.Is(e, rayjobs.ErrUnavailable) || errors.Is(e, rayjobs.ErrNotFound) {
		t.Error("errors.Is does not follow Kind")
	}
	cause := errors.New("dial tcp: connection refused")
	e2 := &rayjobs.Error{Op: "health", Kind: rayjobs.ErrUnavailable, Err: cause}
	if !errors.Is(e2, cause) || !strings.HasSuffix(e2.Error(), "connection refused") {
		t.Errorf("cause lost: %v", e2)
	}
}

// selfSigned makes a certificate for 127.0.0.1 signed by itself.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
