// Package raytest is a fake Ray Jobs API on httptest for tests: it speaks the wire format of
// Ray 2.60's dashboard (paths, JSON shapes, text/plain tracebacks, status codes) and can be
// driven into the faults a real cluster cannot stage on demand: 500s, slow or hanging
// answers, dropped connections, duplicate submission ids, jobs stuck PENDING, a dashboard
// restart that forgets every job, logs without a JSON line, huge logs, 401/403.
//
// Jobs stay where a test puts them: a submitted job is PENDING until the test moves it (Set,
// Update) or a lifecycle script does (WithLifecycle, advanced each time a client looks at the
// job). Every request is counted per endpoint and recorded, and every submit body is kept, so
// tests can assert on what a client sent.
//
// It builds its JSON from its own wire structs, not from package rayjobs, so a test of the
// client checks the field names against an independent spelling.
package raytest

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Endpoint names one route of the Jobs API, for faults and counts.
type Endpoint string

// The routes the fake serves.
const (
	Submit  Endpoint = "submit"  // POST /api/jobs/
	List    Endpoint = "list"    // GET /api/jobs/
	Get     Endpoint = "get"     // GET /api/jobs/{id}
	Stop    Endpoint = "stop"    // POST /api/jobs/{id}/stop
	Delete  Endpoint = "delete"  // DELETE /api/jobs/{id}
	Logs    Endpoint = "logs"    // GET /api/jobs/{id}/logs
	Version Endpoint = "version" // GET /api/version
	Health  Endpoint = "health"  // GET /api/gcs_healthz
	Other   Endpoint = "other"   // anything else (answered 404 or 405 as aiohttp does)
)

// Job statuses, as Ray spells them.
const (
	Pending   = "PENDING"
	Running   = "RUNNING"
	Stopped   = "STOPPED"
	Succeeded = "SUCCEEDED"
	Failed    = "FAILED"
)

func terminal(s string) bool { return s == Stopped || s == Succeeded || s == Failed }

// Job is the fake's record of one job. Tests read it with Job/Jobs and change it with Set,
// Update or AddJob.
type Job struct {
	SubmissionID string
	Type         string // "SUBMISSION" (default) or "DRIVER"
	Status       string // PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED, or anything (to test unknowns)
	Message      string // "" gives Ray's default message for the status
	ErrorType    string
	Entrypoint   string
	Metadata     map[string]string
	RuntimeEnv   map[string]any
	ExitCode     *int
	StartTime    time.Time
	EndTime      time.Time
	// Logs is the driver log. LogStream, when set, replaces it: it writes the log text (not
	// JSON) to w, so a test can serve a log of any size without holding it in memory.
	Logs      string
	LogStream func(w io.Writer) error
	// Observed counts GETs of this job and lists that included it.
	Observed int
	// StopRequests counts stop calls that reached this job.
	StopRequests int

	steps    []Step
	stepSeen int // observations since the last step applied
}

// Step is one move of a scripted lifecycle: once the job has been observed (GET or list)
// After times since the previous step, it takes Status, and Message/Logs/ExitCode/ErrorType
// when set.
type Step struct {
	After     int
	Status    string
	Message   string
	ErrorType string
	Logs      string
	ExitCode  *int
}

// Succeeds is a lifecycle: RUNNING at the first look, SUCCEEDED (exit 0) at the next, with
// logs.
func Succeeds(logs string) []Step {
	return []Step{{After: 0, Status: Running}, {After: 1, Status: Succeeded, Logs: logs, ExitCode: ptr(0)}}
}

// Fails is a lifecycle: RUNNING, then FAILED with exit code 1, Ray's message and error type
// for a failed entrypoint, and logs.
func Fails(logs string) []Step {
	msg := "Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n" + lastLines(logs, 10)
	return []Step{{After: 0, Status: Running}, {After: 1, Status: Failed, Message: msg, ErrorType: "JOB_ENTRYPOINT_COMMAND_ERROR", Logs: logs, ExitCode: ptr(1)}}
}

func ptr[T any](v T) *T { return &v }

// Fault makes matching requests misbehave. Zero fields do nothing: a Fault with only Delay
// slows the request down and then answers it normally.
type Fault struct {
	Delay  time.Duration // wait before answering (cut short when the client gives up)
	Hang   bool          // never answer: hold the request until the client gives up
	Drop   bool          // close the connection without an answer (a crashed dashboard)
	Status int           // answer this status with Body (text/plain) instead of the real answer
	Body   string
	Times  int // apply to this many requests, then expire; 0 = until ClearFaults
}

// Request is one request the fake received.
type Request struct {
	Endpoint Endpoint
	Method   string
	Path     string // as sent, escaped
	Header   http.Header
	Body     []byte
}

// Submission is one submit body the fake received (valid or not).
type Submission struct {
	Raw    []byte         // the body as sent
	Fields map[string]any // the body decoded, nulls included; nil if it was not a JSON object
	Header http.Header
	// Decoded from Fields when the submit was accepted:
	SubmissionID string
	Entrypoint   string
	RuntimeEnv   map[string]any
	Metadata     map[string]string
	Accepted     bool
}

// Option configures New.
type Option func(*Server)

// WithToken turns on token auth: requests other than the health check need
// "Authorization: Bearer TOKEN" or "X-Ray-Authorization: Bearer TOKEN" (401 without, 403 with a
// wrong one), as Ray >= 2.52 with RAY_AUTH_MODE=token.
func WithToken(token string) Option { return func(s *Server) { s.token = token } }

// WithRayVersion sets the ray_version /api/version reports (default "2.60.0").
func WithRayVersion(v string) Option { return func(s *Server) { s.rayVersion = v } }

// WithDuplicateStatus sets the status of the answer to a duplicate submission id: 500 (Ray
// 2.x with the job agent, the default) or 400 (older Ray).
func WithDuplicateStatus(code int) Option { return func(s *Server) { s.dupStatus = code } }

// WithLifecycle scripts every submitted job: fn returns the steps for it (nil: stay PENDING).
func WithLifecycle(fn func(Submission) []Step) Option { return func(s *Server) { s.lifecycle = fn } }

// WithStopAfter makes stop asynchronous, as in Ray: the job turns STOPPED only after it has been
// observed n more times (default 0: at once).
func WithStopAfter(n int) Option { return func(s *Server) { s.stopAfter = n } }

// WithCertificate makes NewTLS serve cert instead of httptest's built-in one (which every
// httptest TLS server shares).
func WithCertificate(cert tls.Certificate) Option { return func(s *Server) { s.cert = &cert } }

// Server is the fake Jobs API. Its URL goes in rayjobs.Options.Address.
type Server struct {
	URL string

	ts         *httptest.Server
	closed     chan struct{}
	closeOnce  sync.Once
	token      string
	rayVersion string
	dupStatus  int
	stopAfter  int
	lifecycle  func(Submission) []Step
	cert       *tls.Certificate

	mu          sync.Mutex
	jobs        map[string]*Job
	order       []string
	faults      map[Endpoint][]*Fault
	counts      map[Endpoint]int
	requests    []Request
	submissions []Submission
	session     int
	down        bool
	outage      Outage
	conns       int

	exec      *executor    // WithExecutor: jobs run as local processes
	listener  net.Listener // the listener serving since a Refused outage ended, if any
	refusedMu sync.Mutex   // serializes SetOutage's listener changes
}

func (s *Server) connState(_ net.Conn, st http.ConnState) {
	if st == http.StateNew {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
	}
}

// Conns returns how many TCP connections clients have opened: with keep-alive working,
// sequential requests share one.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// New starts a plain-http fake and closes it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := Start(opts...)
	t.Cleanup(s.Close)
	return s
}

// NewTLS starts an https fake (httptest's self-signed certificate unless WithCertificate;
// CAFile writes it out for rayjobs.Options.CAFile) and closes it when the test ends.
func NewTLS(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := StartTLS(opts...)
	t.Cleanup(s.Close)
	return s
}

// Start starts a plain-http fake outside a test (an example, a benchmark, a demo): the caller
// must Close it.
func Start(opts ...Option) *Server {
	s := newServer(opts)
	s.ts = httptest.NewUnstartedServer(s)
	s.ts.Config.ConnState = s.connState
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0) // dropped connections and TLS refusals are the point
	s.ts.Start()
	s.URL = s.ts.URL
	return s
}

// StartTLS is Start with https.
func StartTLS(opts ...Option) *Server {
	s := newServer(opts)
	s.ts = httptest.NewUnstartedServer(s)
	s.ts.Config.ConnState = s.connState
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	if s.cert != nil {
		s.ts.TLS = &tls.Config{Certificates: []tls.Certificate{*s.cert}}
	}
	s.ts.StartTLS()
	s.URL = s.ts.URL
	return s
}

func newServer(opts []Option) *Server {
	s := &Server{
		closed:     make(chan struct{}),
		rayVersion: "2.60.0",
		dupStatus:  http.StatusInternalServerError,
		jobs:       map[string]*Job{},
		faults:     map[Endpoint][]*Fault{},
		counts:     map[Endpoint]int{},
		session:    1,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// CAFile writes the TLS fake's certificate as PEM into the test's temp dir and returns the
// path. Only for NewTLS.
func (s *Server) CAFile(t testing.TB) string {
	t.Helper()
	cert := s.ts.Certificate()
	if cert == nil {
		t.Fatal("raytest: CAFile on a plain-http server")
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Close stops the server, releasing hanging requests first, and kills the processes of an
// executor (WithExecutor).
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.refusedMu.Lock()
		if s.listener != nil {
			s.listener.Close()
		}
		s.refusedMu.Unlock()
		s.ts.Close()
		if s.exec != nil {
			s.exec.close()
		}
	})
}

// Inject adds a fault for an endpoint. Faults for one endpoint apply in the order added.
func (s *Server) Inject(ep Endpoint, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[ep] = append(s.faults[ep], &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[Endpoint][]*Fault{}
}

// SetDown makes every request's connection close without an answer (down=true), as while the
// dashboard is restarting, or serves normally again (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Outage is a way the whole Jobs API can be out, for SetOutage.
type Outage int

// The outages. Every one applies to every endpoint, the health check included; jobs run by an
// executor keep running through all of them, as on a real cluster whose dashboard is out.
const (
	NoOutage Outage = iota
	// Refused: nothing listens; connections are refused.
	Refused
	// Dropped: connections are accepted and closed without an answer (SetDown).
	Dropped
	// Error500: every request is answered 500 with a text/plain traceback.
	Error500
	// Hang: every request is held until the client gives up.
	Hang
	// Garbage: every request is answered 200 with an HTML page (a proxy's login page).
	Garbage
)

func (o Outage) String() string {
	return [...]string{"none", "refused", "dropped", "500", "hang", "garbage"}[o]
}

// GarbageBody is what a Garbage outage answers.
const GarbageBody = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form action=\"/login\">Please sign in</form></body></html>\n"

// SetOutage puts the whole API into outage o, or ends it (NoOutage). A Refused outage closes
// the listener and drops open connections; ending it listens on the same address again.
func (s *Server) SetOutage(o Outage) {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	s.mu.Lock()
	was := s.outage
	s.outage = o
	s.mu.Unlock()
	switch {
	case o == Refused && was != Refused:
		if s.listener != nil {
			s.listener.Close()
			s.listener = nil
		} else {
			s.ts.Listener.Close()
		}
		s.ts.CloseClientConnections()
		waitRefused(s.ts.Listener.Addr().String())
	case o != Refused && was == Refused:
		addr := s.ts.Listener.Addr().String()
		var ln net.Listener
		var err error
		for range 100 { // the port was ours a moment ago; the kernel may need a moment
			if ln, err = net.Listen("tcp", addr); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			panic(fmt.Sprintf("raytest: cannot listen on %s again: %v", addr, err))
		}
		if s.ts.TLS != nil {
			ln = tls.NewListener(ln, s.ts.TLS)
		}
		s.listener = ln
		go func() { _ = s.ts.Config.Serve(ln) }()
	}
	if o == Dropped || o == Error500 || o == Garbage || o == Hang {
		s.ts.CloseClientConnections() // no request sneaks through on a kept-alive connection
	}
}

// waitRefused returns once a connection to addr is refused: a closed listener's socket stays
// open until the goroutine in Accept lets go of it, and a connection made meanwhile is reset
// rather than refused (seen once in CI). At most 2 s.
func waitRefused(addr string) {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
	}
}

// Restart forgets every job and starts a new session, as a head restart without GCS fault
// tolerance does; an executor's processes are killed. Requests, counts and faults are kept.
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exec != nil {
		s.exec.killAll()
	}
	s.jobs = map[string]*Job{}
	s.order = nil
	s.session++
}

// AddJob puts a job in the fake as if it had been submitted earlier (by another worker, or
// before a restart of ours). Type defaults to SUBMISSION, Status to PENDING, StartTime to now.
func (s *Server) AddJob(j Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.Type == "" {
		j.Type = "SUBMISSION"
	}
	if j.Status == "" {
		j.Status = Pending
	}
	if j.StartTime.IsZero() {
		j.StartTime = time.Now()
	}
	id := j.SubmissionID
	if _, ok := s.jobs[id]; !ok {
		s.order = append(s.order, id)
	}
	s.jobs[id] = &j
}

// Set moves a job to status with message ("" for Ray's default) and logs (kept when "").
// It fails the test if the job does not exist.
func (s *Server) Set(t testing.TB, id, status, message, logs string) {
	t.Helper()
	s.Update(t, id, func(j *Job) {
		j.Status, j.Message = status, message
		if logs != "" {
			j.Logs = logs
		}
	})
}

// Update changes a job under the server's lock. It fails the test if the job does not exist.
func (s *Server) Update(t testing.TB, id string, fn func(*Job)) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		t.Fatalf("raytest: no job %q", id)
	}
	fn(j)
	if terminal(j.Status) && j.EndTime.IsZero() {
		j.EndTime = time.Now()
	}
}

// Job returns a copy of one job.
func (s *Server) Job(id string) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return Job{}, false
	}
	return *j, true
}

// Jobs returns copies of every job, in submission order.
func (s *Server) Jobs() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Job, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.jobs[id])
	}
	return out
}

// Count returns how many requests reached an endpoint (faulted ones included).
func (s *Server) Count(ep Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[ep]
}

// Requests returns every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Submissions returns every submit body received, in order.
func (s *Server) Submissions() []Submission {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.submissions)
}

// RepeatLog returns a LogStream that writes size bytes of numbered filler lines and then
// last (plus a newline): a huge log generated on the fly, never held in memory.
func RepeatLog(size int64, last string) func(io.Writer) error {
	return func(w io.Writer) error {
		var block bytes.Buffer
		for i := 0; block.Len() < 64<<10; i++ {
			fmt.Fprintf(&block, "filler line %06d: Ray job output, nothing to see here \u00e9\n", i)
		}
		b := block.Bytes()
		if ew, ok := w.(*jsonStringWriter); ok {
			// Escape the repeated block once, not on every write: a fake that serves
			// hundreds of megabytes must not be the slow part of the test.
			return ew.repeat(b, size, "\n"+last+"\n")
		}
		for written := int64(0); written < size; {
			n := min(int64(len(b)), size-written)
			if _, err := w.Write(b[:n]); err != nil {
				return err
			}
			written += n
		}
		_, err := io.WriteString(w, "\n"+last+"\n")
		return err
	}
}

// ServeHTTP routes like Ray's dashboard.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep, id := route(r)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 100<<20))

	s.mu.Lock()
	s.counts[ep]++
	s.requests = append(s.requests, Request{Endpoint: ep, Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: body})
	down, outage := s.down, s.outage
	var fault *Fault
	if fs := s.faults[ep]; len(fs) > 0 {
		f := fs[0]
		fault = f
		if f.Times > 0 {
			if f.Times--; f.Times == 0 {
				s.faults[ep] = fs[1:]
			}
		}
	}
	s.mu.Unlock()

	switch {
	case down || outage == Dropped || outage == Refused:
		drop(w)
		return
	case outage == Error500:
		text(w, http.StatusInternalServerError, traceback("RuntimeError", "The Ray dashboard is unavailable (raytest outage)"))
		return
	case outage == Garbage:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, GarbageBody)
		return
	case outage == Hang:
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		return
	}
	if fault != nil {
		if fault.Drop {
			drop(w)
			return
		}
		if fault.Hang {
			select {
			case <-r.Context().Done():
			case <-s.closed:
			}
			return
		}
		if fault.Delay > 0 {
			tm := time.NewTimer(fault.Delay)
			select {
			case <-tm.C:
			case <-r.Context().Done():
				tm.Stop()
				return
			case <-s.closed:
				tm.Stop()
				return
			}
		}
		if fault.Status != 0 {
			text(w, fault.Status, fault.Body)
			return
		}
	}
	s.serve(w, r, ep, id, body)
}

func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

// route maps a request to an endpoint and job id. Ray's routes: /api/jobs/ (with the slash),
// /api/jobs/{id}, /api/jobs/{id}/stop, /api/jobs/{id}/logs, /api/version, /api/gcs_healthz.
func route(r *http.Request) (Endpoint, string) {
	p := r.URL.Path
	switch {
	case p == "/api/jobs/" && r.Method == http.MethodPost:
		return Submit, ""
	case p == "/api/jobs/" && r.Method == http.MethodGet:
		return List, ""
	case p == "/api/version" && r.Method == http.MethodGet:
		return Version, ""
	case p == "/api/gcs_healthz" && r.Method == http.MethodGet:
		return Health, ""
	case strings.HasPrefix(p, "/api/jobs/"):
		rest := strings.TrimPrefix(p, "/api/jobs/")
		parts := strings.Split(rest, "/")
		switch {
		case len(parts) == 1 && parts[0] != "" && r.Method == http.MethodGet:
			return Get, parts[0]
		case len(parts) == 1 && parts[0] != "" && r.Method == http.MethodDelete:
			return Delete, parts[0]
		case len(parts) == 2 && parts[1] == "stop" && r.Method == http.MethodPost:
			return Stop, parts[0]
		case len(parts) == 2 && parts[1] == "logs" && r.Method == http.MethodGet:
			return Logs, parts[0]
		}
	}
	return Other, ""
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, ep Endpoint, id string, body []byte) {
	if ep == Other {
		if strings.HasPrefix(r.URL.Path, "/api/jobs/") || r.URL.Path == "/api/version" {
			text(w, http.StatusMethodNotAllowed, "405: Method Not Allowed")
		} else {
			text(w, http.StatusNotFound, "404: Not Found")
		}
		return
	}
	if (r.Method == http.MethodPost || r.Method == http.MethodPut) && browserLike(r) {
		text(w, http.StatusMethodNotAllowed, "Method Not Allowed for browser traffic.")
		return
	}
	if s.token != "" && ep != Health {
		got := r.Header.Get("Authorization")
		if got == "" {
			got = r.Header.Get("X-Ray-Authorization")
		}
		switch {
		case got == "":
			text(w, http.StatusUnauthorized, "Unauthorized: Missing authentication token")
			return
		case got != "Bearer "+s.token:
			text(w, http.StatusForbidden, "Forbidden: Invalid authentication token")
			return
		}
	}
	switch ep {
	case Submit:
		s.submit(w, r, body)
	case List:
		s.list(w)
	case Get:
		s.get(w, id)
	case Stop:
		s.stop(w, id)
	case Delete:
		s.delete(w, id)
	case Logs:
		s.logs(w, id)
	case Version:
		s.mu.Lock()
		v := map[string]string{"version": "4", "ray_version": s.rayVersion, "ray_commit": "0000000000000000000000000000000000000000", "session_name": fmt.Sprintf("session_fake_%d", s.session)}
		s.mu.Unlock()
		writeJSON(w, v)
	case Health:
		w.Header().Set("Content-Type", "application/text; charset=utf-8")
		io.WriteString(w, "success")
	}
}

// browserLike is Ray's is_browser_request: a Mozilla User-Agent or any browser-only header.
func browserLike(r *http.Request) bool {
	if strings.HasPrefix(r.Header.Get("User-Agent"), "Mozilla") {
		return true
	}
	for _, h := range []string{"Referer", "Origin", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-Site", "Sec-Fetch-User", "Access-Control-Request-Method", "Access-Control-Request-Headers"} {
		if r.Header.Get(h) != "" {
			return true
		}
	}
	return false
}

// submitKeys are the fields JobSubmitRequest accepts in Ray 2.60.
var submitKeys = map[string]bool{
	"entrypoint": true, "submission_id": true, "job_id": true, "runtime_env": true, "metadata": true,
	"entrypoint_num_cpus": true, "entrypoint_num_gpus": true, "entrypoint_memory": true,
	"entrypoint_resources": true, "entrypoint_label_selector": true,
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, body []byte) {
	sub := Submission{Raw: body, Header: r.Header.Clone()}
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		s.record(sub)
		text(w, http.StatusInternalServerError, traceback("json.decoder.JSONDecodeError", "Expecting value: line 1 column 1 (char 0)"))
		return
	}
	sub.Fields = fields
	// Ray strips null-valued keys, then passes the rest as keyword arguments.
	clean := map[string]any{}
	for k, v := range fields {
		if v != nil {
			clean[k] = v
		}
	}
	reject := func(msg string) {
		s.record(sub)
		text(w, http.StatusBadRequest, traceback("TypeError", msg))
	}
	for _, k := range slices.Sorted(maps.Keys(clean)) {
		if !submitKeys[k] {
			reject(fmt.Sprintf("JobSubmitRequest.__init__() got an unexpected keyword argument '%s'", k))
			return
		}
	}
	ep, ok := clean["entrypoint"].(string)
	if !ok {
		reject("JobSubmitRequest.__init__() missing 1 required positional argument: 'entrypoint'")
		return
	}
	id, _ := clean["submission_id"].(string)
	if v, has := clean["submission_id"]; has && id == "" {
		reject(fmt.Sprintf("submission_id must be a string if provided, got %T", v))
		return
	}
	if id == "" {
		id, _ = clean["job_id"].(string)
	}
	var meta map[string]string
	if m, has := clean["metadata"]; has {
		mm, ok := m.(map[string]any)
		if !ok {
			reject("metadata must be a dict")
			return
		}
		meta = map[string]string{}
		for k, v := range mm {
			sv, ok := v.(string)
			if !ok {
				reject(fmt.Sprintf("metadata values must be strings, got %T", v))
				return
			}
			meta[k] = sv
		}
	}
	var renv map[string]any
	if v, has := clean["runtime_env"]; has {
		if renv, ok = v.(map[string]any); !ok {
			reject("runtime_env must be a dict")
			return
		}
	}
	if v, has := clean["entrypoint_memory"]; has {
		if n, ok := v.(json.Number); !ok || strings.ContainsAny(n.String(), ".eE") {
			reject("entrypoint_memory must be an int")
			return
		}
	}
	for _, k := range []string{"entrypoint_num_cpus", "entrypoint_num_gpus"} {
		if v, has := clean[k]; has {
			if _, ok := v.(json.Number); !ok {
				reject(k + " must be a number")
				return
			}
		}
	}
	if v, has := clean["entrypoint_resources"]; has {
		m, ok := v.(map[string]any)
		if !ok {
			reject("entrypoint_resources must be a dict")
			return
		}
		for _, x := range m {
			if _, ok := x.(json.Number); !ok {
				reject("entrypoint_resources values must be numbers")
				return
			}
		}
	}

	s.mu.Lock()
	if id == "" {
		id = "raysubmit_" + randomID(16)
	}
	if _, exists := s.jobs[id]; exists {
		s.submissions = append(s.submissions, sub)
		code := s.dupStatus
		s.mu.Unlock()
		text(w, code, duplicateBody(id, code))
		return
	}
	sub.SubmissionID, sub.Entrypoint, sub.RuntimeEnv, sub.Metadata, sub.Accepted = id, ep, renv, meta, true
	s.submissions = append(s.submissions, sub)
	j := &Job{SubmissionID: id, Type: "SUBMISSION", Status: Pending, Entrypoint: ep, Metadata: meta, RuntimeEnv: renv, StartTime: time.Now()}
	if s.lifecycle != nil {
		j.steps = s.lifecycle(sub)
	}
	if s.exec != nil {
		s.exec.start(s, j)
	}
	s.jobs[id] = j
	s.order = append(s.order, id)
	s.mu.Unlock()
	writeJSON(w, map[string]string{"job_id": id, "submission_id": id})
}

func (s *Server) record(sub Submission) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.submissions = append(s.submissions, sub)
}

// observe counts a look at j and applies lifecycle steps that are due. Called with mu held.
func (s *Server) observe(j *Job) {
	j.Observed++
	for len(j.steps) > 0 && j.stepSeen >= j.steps[0].After {
		st := j.steps[0]
		j.steps = j.steps[1:]
		j.stepSeen = 0
		if terminal(j.Status) {
			continue // stopped meanwhile: a terminal status never changes
		}
		j.Status, j.Message, j.ErrorType = st.Status, st.Message, st.ErrorType
		if st.Logs != "" {
			j.Logs = st.Logs
		}
		if st.ExitCode != nil {
			j.ExitCode = st.ExitCode
		}
		if terminal(j.Status) && j.EndTime.IsZero() {
			j.EndTime = time.Now()
		}
	}
	j.stepSeen++
}

func (s *Server) get(w http.ResponseWriter, id string) {
	s.mu.Lock()
	j, ok := s.jobs[id]
	if !ok {
		s.mu.Unlock()
		text(w, http.StatusNotFound, fmt.Sprintf("Job %s does not exist", id))
		return
	}
	s.observe(j)
	d := details(j)
	s.mu.Unlock()
	writeJSON(w, d)
}

func (s *Server) list(w http.ResponseWriter) {
	s.mu.Lock()
	out := make([]wireDetails, 0, len(s.order))
	for _, id := range s.order {
		j := s.jobs[id]
		s.observe(j)
		out = append(out, details(j))
	}
	s.mu.Unlock()
	writeJSON(w, out)
}

// submissionLocked locks the server and returns the submission job id names, for an action
// (stop, delete, get logs of) that Ray allows on submissions only. Otherwise it answers as Ray
// does (404 for an unknown id, 400 for a driver job), unlocks and returns nil.
func (s *Server) submissionLocked(w http.ResponseWriter, id, action string) *Job {
	s.mu.Lock()
	j, ok := s.jobs[id]
	if !ok {
		s.mu.Unlock()
		text(w, http.StatusNotFound, fmt.Sprintf("Job %s does not exist", id))
		return nil
	}
	if j.Type == "DRIVER" {
		s.mu.Unlock()
		text(w, http.StatusBadRequest, "Can only "+action+" submission type jobs")
		return nil
	}
	return j
}

func (s *Server) stop(w http.ResponseWriter, id string) {
	j := s.submissionLocked(w, id, "stop")
	if j == nil {
		return
	}
	j.StopRequests++
	stopped := !terminal(j.Status)
	if stopped && s.exec != nil && s.exec.stop(j.SubmissionID) {
		// the process is being stopped: STOPPED once it has exited, as in Ray
	} else if stopped {
		if s.stopAfter > 0 {
			j.steps = []Step{{After: s.stopAfter, Status: Stopped}}
			j.stepSeen = 0
		} else {
			j.Status, j.Message, j.EndTime = Stopped, "", time.Now()
			j.steps = nil
		}
	}
	s.mu.Unlock()
	writeJSON(w, map[string]bool{"stopped": stopped})
}

func (s *Server) delete(w http.ResponseWriter, id string) {
	j := s.submissionLocked(w, id, "delete")
	if j == nil {
		return
	}
	if !terminal(j.Status) {
		st := j.Status
		s.mu.Unlock()
		inner := traceback("RuntimeError", fmt.Sprintf("Attempted to delete job '%s', but it is in a non-terminal state %s.", id, st))
		text(w, http.StatusInternalServerError, traceback("RuntimeError", "Request failed with status code 500: "+inner+"."))
		return
	}
	delete(s.jobs, id)
	s.order = slices.DeleteFunc(s.order, func(x string) bool { return x == id })
	s.mu.Unlock()
	writeJSON(w, map[string]bool{"deleted": true})
}

func (s *Server) logs(w http.ResponseWriter, id string) {
	j := s.submissionLocked(w, id, "get logs of")
	if j == nil {
		return
	}
	logs, stream := j.Logs, j.LogStream
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	io.WriteString(w, `{"logs": "`)
	ew := &jsonStringWriter{w: w}
	var err error
	if stream != nil {
		err = stream(ew)
	} else {
		_, err = io.WriteString(ew, logs)
	}
	if err != nil {
		panic(http.ErrAbortHandler) // the client went away mid-stream
	}
	io.WriteString(w, `"}`)
}

// wireDetails is JobDetails as Ray 2.60 sends it: every key present, null when unset.
type wireDetails struct {
	Type                   string            `json:"type"`
	JobID                  *string           `json:"job_id"`
	SubmissionID           *string           `json:"submission_id"`
	DriverInfo             *wireDriverInfo   `json:"driver_info"`
	Status                 string            `json:"status"`
	Entrypoint             string            `json:"entrypoint"`
	Message                *string           `json:"message"`
	ErrorType              *string           `json:"error_type"`
	StartTime              *int64            `json:"start_time"`
	EndTime                *int64            `json:"end_time"`
	Metadata               map[string]string `json:"metadata"`
	RuntimeEnv             map[string]any    `json:"runtime_env"`
	DriverAgentHTTPAddress *string           `json:"driver_agent_http_address"`
	DriverNodeID           *string           `json:"driver_node_id"`
	DriverExitCode         *int              `json:"driver_exit_code"`
}

type wireDriverInfo struct {
	ID            string `json:"id"`
	NodeIPAddress string `json:"node_ip_address"`
	PID           string `json:"pid"`
}

func details(j *Job) wireDetails {
	d := wireDetails{Type: j.Type, Status: j.Status, Entrypoint: j.Entrypoint, Metadata: j.Metadata, RuntimeEnv: j.RuntimeEnv, DriverExitCode: j.ExitCode}
	if d.Metadata == nil {
		d.Metadata = map[string]string{}
	}
	if j.Type == "DRIVER" {
		d.JobID = ptr(j.SubmissionID)
	} else {
		d.SubmissionID = ptr(j.SubmissionID)
	}
	msg := j.Message
	if msg == "" {
		msg = defaultMessage(j.Status)
	}
	if msg != "" {
		d.Message = &msg
	}
	if j.ErrorType != "" {
		d.ErrorType = ptr(j.ErrorType)
	}
	if !j.StartTime.IsZero() {
		d.StartTime = ptr(j.StartTime.UnixMilli())
	}
	if !j.EndTime.IsZero() {
		d.EndTime = ptr(j.EndTime.UnixMilli())
	}
	if j.Status != Pending {
		d.DriverAgentHTTPAddress = ptr("http://127.0.0.1:52365")
		d.DriverNodeID = ptr("fakenode0000000000000000000000000000000000000000000000")
		if j.Type == "SUBMISSION" {
			d.JobID = ptr("02000000")
		}
		d.DriverInfo = &wireDriverInfo{ID: "02000000", NodeIPAddress: "127.0.0.1", PID: "4242"}
	}
	return d
}

// defaultMessage is JobInfo.__post_init__'s message for a status.
func defaultMessage(status string) string {
	switch status {
	case Pending:
		return "Job has not started yet."
	case Running:
		return "Job is currently running."
	case Stopped:
		return "Job was intentionally stopped."
	case Succeeded:
		return "Job finished successfully."
	case Failed:
		return "Job failed."
	}
	return ""
}

// duplicateBody is what Ray 2.60 answers to a duplicate submission id (observed on a real
// cluster, paths shortened): the agent's ValueError traceback wrapped in the head's
// RuntimeError. Older Ray answered 400 with the agent's part only.
func duplicateBody(id string, code int) string {
	inner := traceback("ValueError", fmt.Sprintf("Job with submission_id %s already exists. Please use a different submission_id.", id))
	if code == http.StatusBadRequest {
		return inner
	}
	return traceback("RuntimeError", "Request failed with status code 400: "+inner+"\n.")
}

// traceback renders a Python traceback ending in "Type: message", as Ray's handlers send.
func traceback(typ, msg string) string {
	return "Traceback (most recent call last):\n" +
		"  File \"/site-packages/ray/dashboard/modules/job/job_head.py\", line 419, in submit_job\n" +
		"    resp = await job_agent_client.submit_job_internal(submit_request)\n" +
		"           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n" +
		typ + ": " + msg + "\n"
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, body)
}

// writeJSON answers like aiohttp's json_response: Python's json.dumps, which separates with
// ", " and ": " and escapes every non-ASCII character as \uXXXX.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	var out bytes.Buffer
	inString, escaped := false, false
	for _, r := range string(b) {
		switch {
		case inString && escaped:
			escaped = false
			out.WriteRune(r)
		case inString && r == '\\':
			escaped = true
			out.WriteRune(r)
		case r == '"':
			inString = !inString
			out.WriteRune(r)
		case !inString && (r == ',' || r == ':'): // Python's separators: ", " and ": "
			out.WriteRune(r)
			out.WriteByte(' ')
		case r < 0x80:
			out.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(&out, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	w.Write(out.Bytes())
}

// jsonStringWriter writes text as the inside of a JSON string, escaped the way Python's
// json.dumps does (ASCII only), streaming.
type jsonStringWriter struct {
	w   io.Writer
	buf []byte
	rem []byte // an incomplete UTF-8 sequence carried to the next Write
}

func (e *jsonStringWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(e.rem) > 0 {
		p = append(e.rem, p...)
		e.rem = nil
	}
	out := e.buf[:0]
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
			i++
		case c == '\n':
			out = append(out, '\\', 'n')
			i++
		case c == '\r':
			out = append(out, '\\', 'r')
			i++
		case c == '\t':
			out = append(out, '\\', 't')
			i++
		case c < 0x20 || c == 0x7f:
			out = fmt.Appendf(out, `\u%04x`, c)
			i++
		case c < 0x80:
			out = append(out, c)
			i++
		default:
			if !utf8.FullRune(p[i:]) { // cut short at the end: keep for the next write
				e.rem = append([]byte(nil), p[i:]...)
				i = len(p)
				continue
			}
			r, size := utf8.DecodeRune(p[i:])
			if r > 0xFFFF {
				r -= 0x10000
				out = fmt.Appendf(out, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
			} else {
				out = fmt.Appendf(out, `\u%04x`, r)
			}
			i += size
		}
	}
	e.buf = out
	if _, err := e.w.Write(out); err != nil {
		return 0, err
	}
	return n, nil
}

// repeat writes the first size bytes of block repeated (block must hold whole lines, size may
// cut the last one), then tail, escaping block only once.
func (e *jsonStringWriter) repeat(block []byte, size int64, tail string) error {
	whole := escapeJSON(block)
	for written := int64(0); written < size; {
		if size-written >= int64(len(block)) {
			if _, err := e.w.Write(whole); err != nil {
				return err
			}
			written += int64(len(block))
			continue
		}
		if _, err := e.Write(block[:size-written]); err != nil {
			return err
		}
		written = size
	}
	_, err := io.WriteString(e, tail)
	return err
}

func escapeJSON(p []byte) []byte {
	var b bytes.Buffer
	ew := &jsonStringWriter{w: &b}
	ew.Write(p)
	return b.Bytes()
}

const idChars = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ123456789"

func randomID(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(idChars))))
		b[i] = idChars[k.Int64()]
	}
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
