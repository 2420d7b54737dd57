// Package rayjobs is a client for Ray's Job Submission REST API (the dashboard's /api/jobs/),
// on net/http and the standard library only: no Python SDK, no KubeRay.
//
// It submits, reads, lists, stops and deletes jobs, reads a bounded tail of a job's log, and
// checks the cluster's version and health. Every method takes a context and applies its own
// timeout on top (generous for submit, short for reads and stop). Errors are *Error values
// that say what failed and unwrap to a sentinel (ErrNotFound, ErrAlreadySubmitted,
// ErrUnauthorized, ErrUnavailable, ...) for errors.Is. Response bodies are always read with
// a bound: a job log of any size costs at most Options.MaxLogBytes of memory, and an error
// body (Ray answers errors with Python tracebacks as text/plain) is cut to its last
// meaningful line.
//
// The package reads no environment variables: the caller passes the address and token in
// Options (TokenFromEnv helps the cmd layer find the token). Wire facts:
// shared/reference/ray-jobs-api.md.
package rayjobs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/rayctl/rayctl/internal/settings"
)

// Defaults for Options fields left zero.
const (
	DefaultSubmitTimeout    = 60 * time.Second // Ray may wait 10 s for its agent; a cut submit can orphan a PENDING job
	DefaultRequestTimeout   = 10 * time.Second // get, stop, delete, version, health
	DefaultListTimeout      = 30 * time.Second // the list grows with every job Ray keeps
	DefaultLogsTimeout      = 60 * time.Second // a big log streams for a while
	DefaultMaxLogBytes      = 16 << 20         // Ray itself caps logs reads at 16 MiB in recent versions
	DefaultMaxResponseBytes = 16 << 20         // one job, version, submit/stop/delete answers
	DefaultMaxListBytes     = 512 << 20        // the whole list
	DefaultMaxMessageBytes  = 512              // Ray's error message in an *Error
	DefaultMaxIdleConns     = 8
	DefaultUserAgent        = "rayctl/dev"
)

// maxErrorBody bounds how much of an error body is read: its last maxErrorTail bytes are kept
// (the exception line of a traceback is at the end).
const (
	maxErrorBody = 8 << 20
	maxErrorTail = 64 << 10
)

// Options configure a Client. Only Address is required.
type Options struct {
	// Address of the Jobs API: the dashboard's http:// or https:// URL, with an optional path
	// prefix for a proxy (http://127.0.0.1:8265, https://ray.example/proxy). A bare host:port
	// means http.
	Address string
	// Token for Ray's token authentication (Ray >= 2.52), without "Bearer ". Sent as
	// Authorization and X-Ray-Authorization on every call except Health. Take it from the
	// environment or a file (TokenFromEnv, TokenFromFile), never from a command-line value.
	Token string
	// CAFile is a PEM file of the certificate authorities to trust for https, instead of the
	// system's (for a TLS proxy in front of the dashboard, which serves plain http itself).
	CAFile string
	// UserAgent, default DefaultUserAgent. Never a browser's: Ray refuses POSTs from browsers.
	UserAgent string

	SubmitTimeout  time.Duration // default DefaultSubmitTimeout
	RequestTimeout time.Duration // default DefaultRequestTimeout
	ListTimeout    time.Duration // default DefaultListTimeout
	LogsTimeout    time.Duration // default DefaultLogsTimeout

	MaxLogBytes      int   // tail of a log kept by Logs; default DefaultMaxLogBytes
	MaxResponseBytes int64 // largest JSON answer other than list and logs; default DefaultMaxResponseBytes
	MaxListBytes     int64 // largest list answer; default DefaultMaxListBytes
	MaxMessageBytes  int   // Ray's message in an *Error; default DefaultMaxMessageBytes
	MaxIdleConns     int   // keep-alive connections kept; default DefaultMaxIdleConns

	// Transport replaces the client's own (tests). CAFile and MaxIdleConns then do nothing.
	Transport http.RoundTripper
}

// Client talks to one Ray Jobs API. It is safe for concurrent use and keeps its connections
// alive between calls: make one and share it.
type Client struct {
	base string // scheme://host[:port][/prefix], no trailing slash
	opts Options
	hc   *http.Client
	auth string // "Bearer <token>" or ""
}

// New checks the options and makes a Client. It reads CAFile, if set.
func New(opts Options) (*Client, error) {
	base, err := normalizeAddress(opts.Address)
	if err != nil {
		return nil, err
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if strings.HasPrefix(opts.UserAgent, "Mozilla") {
		return nil, errors.New("rayjobs: a browser User-Agent (Mozilla...) makes Ray refuse POSTs with 405")
	}
	tok := strings.TrimSpace(opts.Token)
	if strings.ContainsAny(tok, " \t\r\n") {
		return nil, errors.New("rayjobs: the auth token contains whitespace")
	}
	settings.Default(&opts.SubmitTimeout, DefaultSubmitTimeout)
	settings.Default(&opts.RequestTimeout, DefaultRequestTimeout)
	settings.Default(&opts.ListTimeout, DefaultListTimeout)
	settings.Default(&opts.LogsTimeout, DefaultLogsTimeout)
	settings.Default(&opts.MaxLogBytes, DefaultMaxLogBytes)
	settings.Default(&opts.MaxResponseBytes, DefaultMaxResponseBytes)
	settings.Default(&opts.MaxListBytes, DefaultMaxListBytes)
	settings.Default(&opts.MaxMessageBytes, DefaultMaxMessageBytes)
	settings.Default(&opts.MaxIdleConns, DefaultMaxIdleConns)

	rt := opts.Transport
	if rt == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = opts.MaxIdleConns
		tr.MaxIdleConnsPerHost = opts.MaxIdleConns
		tr.IdleConnTimeout = 90 * time.Second
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("rayjobs: CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("rayjobs: CA file %s holds no PEM certificate", opts.CAFile)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		rt = tr
	}
	c := &Client{
		base: base,
		opts: opts,
		hc: &http.Client{
			Transport: rt,
			// Ray never redirects; following one could carry the token elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if tok != "" {
		c.auth = "Bearer " + tok
	}
	return c, nil
}

// userinfoPassword matches scheme://user:password@ (the password up to the last '@').
var userinfoPassword = regexp.MustCompile(`(?s)^([a-zA-Z][a-zA-Z0-9+.-]*://[^:@/]*:).*@`)

func normalizeAddress(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("rayjobs: no address: set the Ray Jobs API address (http://HOST:8265)")
	}
	if strings.HasPrefix(addr, "ray://") {
		return "", fmt.Errorf("rayjobs: %s is a Ray Client address; the Jobs API is the dashboard's http://HOST:8265", addr)
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	shown := userinfoPassword.ReplaceAllString(addr, "${1}xxxxx@") // errors never show a password
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("rayjobs: address %q: %s", shown, strings.ReplaceAll(err.Error(), addr, shown))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("rayjobs: address %q: scheme must be http or https", shown)
	}
	if u.Host == "" {
		return "", fmt.Errorf("rayjobs: address %q has no host", shown)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("rayjobs: address %q: no user info, query or fragment allowed", u.Redacted())
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// Address returns the normalised Jobs API address.
func (c *Client) Address() string { return c.base }

// Close releases idle keep-alive connections. The Client stays usable.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Submit starts a job and returns its submission id (the one asked for, or the one Ray made).
// Ray answers before the job runs; the job starts PENDING.
//
// A duplicate SubmissionID gives ErrAlreadySubmitted together with that id: the job exists
// and no second run was started. After ErrUnavailable (a timeout, a reset connection, 5xx)
// the job may or may not exist: Get the id before submitting again.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (string, error) {
	const op = "submit"
	if strings.TrimSpace(req.Entrypoint) == "" {
		return "", &Error{Op: op, JobID: req.SubmissionID, Kind: ErrRejected, Message: "empty entrypoint"}
	}
	if req.SubmissionID != "" {
		if err := checkID(op, req.SubmissionID); err != nil {
			return "", err
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(wireSubmit(req)); err != nil {
		return "", &Error{Op: op, JobID: req.SubmissionID, Kind: ErrRejected, Err: err}
	}
	var out struct {
		SubmissionID string `json:"submission_id"`
		JobID        string `json:"job_id"`
	}
	err := c.call(ctx, op, req.SubmissionID, http.MethodPost, "/api/jobs/", buf.Bytes(), c.opts.SubmitTimeout, func(body io.Reader) error {
		return c.decodeJSON(body, &out)
	})
	if err != nil {
		if errors.Is(err, ErrAlreadySubmitted) {
			return req.SubmissionID, err
		}
		return "", err
	}
	id := out.SubmissionID
	if id == "" {
		id = out.JobID // API version 1 answered only job_id (which was the submission id)
	}
	if id == "" {
		return "", &Error{Op: op, JobID: req.SubmissionID, Status: http.StatusOK, Kind: ErrBadResponse, Message: "answer has no submission_id"}
	}
	return id, nil
}

// Get returns one job by submission id (or core job id). ErrNotFound when Ray does not know
// it.
func (c *Client) Get(ctx context.Context, id string) (*JobDetails, error) {
	const op = "get"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	var j JobDetails
	err := c.call(ctx, op, id, http.MethodGet, "/api/jobs/"+url.PathEscape(id), nil, c.opts.RequestTimeout, func(body io.Reader) error {
		return c.decodeJSON(body, &j)
	})
	if err != nil {
		return nil, err
	}
	return &j, nil
}

// List returns every job Ray keeps: submissions first, then drivers (Ray has no paging or
// filters; the answer grows with every job until jobs are deleted). It is decoded as a
// stream, bounded by MaxListBytes.
func (c *Client) List(ctx context.Context) ([]JobDetails, error) {
	const op = "list"
	var jobs []JobDetails
	err := c.call(ctx, op, "", http.MethodGet, "/api/jobs/", nil, c.opts.ListTimeout, func(body io.Reader) error {
		cr := &countingReader{r: io.LimitReader(body, c.opts.MaxListBytes+1)}
		dec := json.NewDecoder(cr)
		tooBig := func(err error) error {
			if cr.n > c.opts.MaxListBytes {
				return fmt.Errorf("%w: list answer larger than %d bytes (raise MaxListBytes, or delete finished jobs)", errBadBody, c.opts.MaxListBytes)
			}
			return err
		}
		tok, err := dec.Token()
		if err != nil {
			return tooBig(err)
		}
		switch tok {
		case json.Delim('['):
			for dec.More() {
				var j JobDetails
				if err := dec.Decode(&j); err != nil {
					return tooBig(err)
				}
				jobs = append(jobs, j)
			}
			if _, err := dec.Token(); err != nil {
				return tooBig(err)
			}
		case json.Delim('{'): // API version 1: an object keyed by job id
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return tooBig(err)
				}
				var j JobDetails
				if err := dec.Decode(&j); err != nil {
					return tooBig(err)
				}
				if key, ok := k.(string); ok && j.SubmissionID == "" && j.JobID == "" {
					j.SubmissionID = key
				}
				jobs = append(jobs, j)
			}
		default:
			return fmt.Errorf("%w: list answer starts with %v, not an array", errBadBody, tok)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return jobs, nil
}

// Stop asks Ray to stop a job: SIGTERM to the entrypoint's process group, SIGKILL 3 s later
// (Ray's defaults), then STOPPED. It returns at once; poll Get for the status. stopped is false
// when there was nothing to stop (the job had already ended).
func (c *Client) Stop(ctx context.Context, id string) (stopped bool, err error) {
	const op = "stop"
	if err := checkID(op, id); err != nil {
		return false, err
	}
	var out struct {
		Stopped bool `json:"stopped"`
	}
	err = c.call(ctx, op, id, http.MethodPost, "/api/jobs/"+url.PathEscape(id)+"/stop", nil, c.opts.RequestTimeout, func(body io.Reader) error {
		return c.decodeJSON(body, &out)
	})
	return out.Stopped, err
}

// Delete removes a finished job's record (not its log file). ErrNotTerminal while it is
// PENDING or RUNNING. Never submit again under a deleted id: Ray does not support reuse.
func (c *Client) Delete(ctx context.Context, id string) (deleted bool, err error) {
	const op = "delete"
	if err := checkID(op, id); err != nil {
		return false, err
	}
	var out struct {
		Deleted bool `json:"deleted"`
	}
	err = c.call(ctx, op, id, http.MethodDelete, "/api/jobs/"+url.PathEscape(id), nil, c.opts.RequestTimeout, func(body io.Reader) error {
		return c.decodeJSON(body, &out)
	})
	return out.Deleted, err
}

// Logs returns the tail of a job's driver log, at most MaxLogBytes, however large the log.
// Ray answers an empty log until the driver starts, and 500 when the node that ran the
// driver is gone (ErrUnavailable).
func (c *Client) Logs(ctx context.Context, id string) (Logs, error) {
	const op = "logs"
	if err := checkID(op, id); err != nil {
		return Logs{}, err
	}
	var logs Logs
	err := c.call(ctx, op, id, http.MethodGet, "/api/jobs/"+url.PathEscape(id)+"/logs", nil, c.opts.LogsTimeout, func(body io.Reader) error {
		var err error
		logs, err = decodeLogsTail(body, c.opts.MaxLogBytes)
		return err
	})
	return logs, err
}

// Version returns GET /api/version: the Jobs API version and Ray's version. It needs the
// token when auth is on, so it also checks the token. ErrNotFound: a Ray older than 1.9.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	err := c.call(ctx, "version", "", http.MethodGet, "/api/version", nil, c.opts.RequestTimeout, func(body io.Reader) error {
		return c.decodeJSON(body, &v)
	})
	return v, err
}

// Health checks GET /api/gcs_healthz: the dashboard answers and its GCS is alive. It sends no
// token (the endpoint is exempt), so it works before auth is sorted out. Ray answers
// "success"; any other 200 answer (a proxy's login page) is ErrBadResponse.
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, "health", "", http.MethodGet, "/api/gcs_healthz", nil, c.opts.RequestTimeout, func(body io.Reader) error {
		b, err := io.ReadAll(io.LimitReader(body, 4096))
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("success")) {
			return fmt.Errorf("%w: the health check answered %q, not Ray's \"success\"", errBadBody, trimMessage(b, 80))
		}
		return nil
	})
}

// errBadBody marks a 2xx body this client cannot use (too large, wrong shape): ErrBadResponse.
var errBadBody = errors.New("unusable answer")

// checkID refuses ids that cannot be a path segment as Ray routes them.
func checkID(op, id string) error {
	if id == "" || strings.ContainsAny(id, "/ \t\r\n") || strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return &Error{Op: op, JobID: id, Kind: ErrRejected, Message: "job id must be non-empty, without '/', spaces or control characters"}
	}
	return nil
}

// call makes one request under its own timeout and passes a 2xx body to read. Everything
// that goes wrong comes back as an *Error.
func (c *Client) call(ctx context.Context, op, id, method, path string, body []byte, timeout time.Duration, read func(io.Reader) error) (err error) {
	defer func() { err = redactToken(err, strings.TrimPrefix(c.auth, "Bearer ")) }() // a server may echo it back
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rb io.Reader
	if body != nil {
		rb = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(cctx, method, c.base+path, rb)
	if err != nil {
		return &Error{Op: op, JobID: id, Kind: ErrRejected, Err: err}
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	req.Header.Set("Accept", "application/json")
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth != "" && op != "health" {
		req.Header.Set("Authorization", c.auth)
		req.Header.Set("X-Ray-Authorization", c.auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(ctx, op, id, 0, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(op, id, resp)
	}
	if err := read(resp.Body); err != nil {
		switch {
		case errors.Is(err, errBadBody) || errors.Is(err, errLogsSyntax):
			return &Error{Op: op, JobID: id, Status: resp.StatusCode, Kind: ErrBadResponse, Message: err.Error()}
		case cctx.Err() != nil:
			return c.transportError(ctx, op, id, resp.StatusCode, err)
		}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &te) {
			return &Error{Op: op, JobID: id, Status: resp.StatusCode, Kind: ErrBadResponse, Message: truncate(err.Error(), c.opts.MaxMessageBytes)}
		}
		// The body broke off: a reset connection, a dashboard going away.
		return c.transportError(ctx, op, id, resp.StatusCode, err)
	}
	// Let the connection be reused: drain a little of whatever is left.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return nil
}

// transportError classifies a failure with no usable answer: the caller's cancellation is
// reported as itself; everything else (timeouts included) is ErrUnavailable.
func (c *Client) transportError(ctx context.Context, op, id string, status int, err error) error {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return &Error{Op: op, JobID: id, Status: status, Err: ctx.Err()}
	}
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var cie x509.CertificateInvalidError
	if errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) || errors.As(err, &cie) {
		return &Error{Op: op, JobID: id, Kind: ErrCertificate, Err: err}
	}
	if status != 0 {
		return &Error{Op: op, JobID: id, Status: status, Kind: ErrUnavailable, Message: "reading the answer: " + truncate(err.Error(), c.opts.MaxMessageBytes), Err: err}
	}
	return &Error{Op: op, JobID: id, Kind: ErrUnavailable, Err: err}
}

// statusError reads a bounded tail of a non-2xx body and maps the status to a sentinel.
func (c *Client) statusError(op, id string, resp *http.Response) error {
	body := readTail(resp.Body, maxErrorBody, maxErrorTail)
	e := &Error{Op: op, JobID: id, Status: resp.StatusCode, Message: trimMessage(body, c.opts.MaxMessageBytes)}
	switch code := resp.StatusCode; {
	case op == "submit" && (code == 400 || code == 500) && bytes.Contains(body, []byte(duplicateMarker)):
		e.Kind = ErrAlreadySubmitted
	case code == http.StatusNotFound:
		e.Kind = ErrNotFound
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		e.Kind = ErrUnauthorized
	case op == "delete" && code == 500 && bytes.Contains(body, []byte("non-terminal state")):
		e.Kind = ErrNotTerminal
	case code == 500 && bytes.Contains(body, []byte("Request failed with status code 4")):
		// The head wraps its job agent's 4xx (a bad label selector, a bad field) in a 500:
		// permanent, retrying cannot help.
		e.Kind = ErrRejected
	case code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
		e.Kind = ErrUnavailable
	case code >= 400:
		e.Kind = ErrRejected
	default: // 1xx, 3xx
		e.Kind = ErrBadResponse
		if loc := resp.Header.Get("Location"); loc != "" {
			e.Message = truncate("redirect to "+loc, c.opts.MaxMessageBytes)
		}
	}
	return e
}

// readTail reads at most max bytes of r and returns the last keep of them.
func readTail(r io.Reader, max int64, keep int) []byte {
	t := &tailBuffer{limit: keep}
	buf := make([]byte, 32<<10)
	lr := io.LimitReader(r, max)
	for {
		n, err := lr.Read(buf)
		if n > 0 {
			t.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	b := t.buf
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return b
}

// decodeJSON decodes one JSON answer of at most MaxResponseBytes.
func (c *Client) decodeJSON(body io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(body, c.opts.MaxResponseBytes+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > c.opts.MaxResponseBytes {
		return fmt.Errorf("%w: answer larger than %d bytes", errBadBody, c.opts.MaxResponseBytes)
	}
	if err := json.Unmarshal(data, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("not JSON (%w): %s", err, trimMessage(data[:min(len(data), 2048)], 200))
		}
		return err
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
