package rayjobs

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Sentinel errors, for errors.Is. Every error a Client method returns is an *Error that wraps
// one of these (or only the context's error, when the caller cancelled).
var (
	// ErrNotFound: Ray does not know the job (HTTP 404). After a successful submit this means
	// the cluster lost its state (a head restart without GCS fault tolerance).
	ErrNotFound = errors.New("job not found")
	// ErrAlreadySubmitted: a job with this submission id exists already (Ray answers 500, or
	// 400 before Ray 2.x's job agent, with "Please use a different submission_id"). Ray checks
	// this before starting anything, so the earlier submission is the one that runs.
	ErrAlreadySubmitted = errors.New("submission id already exists")
	// ErrUnauthorized: the token is missing (401) or wrong (403). Permanent: retrying with the
	// same configuration cannot succeed.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnavailable: the Jobs API could not answer (connection refused or reset, a timeout,
	// HTTP 5xx). Retryable. After a submit that failed this way, GET the submission id before
	// submitting again: the first request may have gone through.
	ErrUnavailable = errors.New("Ray Jobs API unavailable")
	// ErrRejected: Ray refused the request (HTTP 400, 405, other 4xx, or a 500 wrapping its
	// job agent's 4xx): a bad field, a field this Ray version does not know, a DRIVER job, a
	// browser-like request. Permanent.
	ErrRejected = errors.New("request rejected")
	// ErrNotTerminal: DELETE of a job that is still PENDING or RUNNING (Ray answers 500).
	ErrNotTerminal = errors.New("job is not in a terminal state")
	// ErrCertificate: the server's TLS certificate is not trusted (set Options.CAFile to the
	// CA that signed it). Permanent.
	ErrCertificate = errors.New("TLS certificate not trusted")
	// ErrBadResponse: a 2xx answer that is not the JSON Ray sends (a proxy's login page, a
	// truncated body, a body over the size limit). Treated as permanent.
	ErrBadResponse = errors.New("unexpected response")
)

// Error says what failed: the operation, the job, the HTTP status and Ray's own message,
// trimmed. It unwraps to a sentinel above and to the underlying cause (a net error,
// context.DeadlineExceeded, ...).
type Error struct {
	Op      string // submit, get, list, stop, delete, logs, version, health
	JobID   string // submission id, when the operation names one
	Status  int    // HTTP status; 0 when no response arrived
	Message string // Ray's message (last meaningful line of a traceback), bounded
	Kind    error  // one of the sentinels; nil when the caller's context ended the call
	Err     error  // underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("ray jobs api: ")
	b.WriteString(e.Op)
	if e.JobID != "" {
		b.WriteString(" ")
		b.WriteString(e.JobID)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil && e.Status == 0 {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel and the cause, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Retryable reports whether err is worth retrying later with the same request: the API was
// unavailable (connection error, timeout, 5xx). Not found, unauthorized, rejected and
// already-submitted are not.
func Retryable(err error) bool { return errors.Is(err, ErrUnavailable) }

// duplicateMarker is the text Ray puts in the answer to a duplicate submission id, whatever
// the status (400 from the job manager directly, 500 when wrapped by the head).
const duplicateMarker = "Please use a different submission_id"

// trimMessage turns an error body (plain text: a short message or a Python traceback, possibly
// one traceback wrapped in another) into one bounded line: the last exception line
// ("ValueError: Job with submission_id x already exists. ..."), else the last non-blank lines.
func trimMessage(body []byte, limit int) string {
	text := strings.ToValidUTF8(string(bytes.TrimSpace(body)), "\uFFFD")
	if text == "" {
		return ""
	}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	// Drop blank lines and lone punctuation (Ray's wrapper ends the agent's text with ".").
	kept := lines[:0]
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.Trim(t, ".") == "" {
			continue
		}
		kept = append(kept, l)
	}
	if len(kept) == 0 {
		return ""
	}
	msg := ""
	// The tail of a long traceback may have lost its "Traceback" header: frames give it away.
	if strings.Contains(text, "Traceback (most recent call last)") || strings.Contains(text, "\n  File \"") {
		// The last unindented line that is not a frame is the exception: "Type: message".
		for i := len(kept) - 1; i >= 0; i-- {
			l := kept[i]
			if l[0] != ' ' && l[0] != '\t' && !strings.HasPrefix(l, "Traceback (") && !strings.HasPrefix(l, "During handling") && !strings.HasPrefix(l, "The above exception") {
				msg = strings.TrimSpace(l)
				break
			}
		}
	}
	if msg == "" {
		// Not a traceback: keep the last lines that fit, joined.
		n := len(kept)
		msg = strings.TrimSpace(kept[n-1])
		for i := n - 2; i >= 0 && i >= n-3; i-- {
			cand := strings.TrimSpace(kept[i]) + " | " + msg
			if len(cand) > limit {
				break
			}
			msg = cand
		}
	}
	return truncate(msg, limit)
}

// truncate keeps at most limit bytes of s, cutting at a rune boundary and marking the cut.
func truncate(s string, limit int) string {
	if limit <= 0 || len(s) <= limit {
		return s
	}
	cut := limit - len("…")
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// redactToken returns err with every copy of the auth token in its text replaced by
// "xxxxx". Ray, or a proxy in front of it, may echo the request's Authorization header back
// in an error body (a debugging 401 page, a traceback that prints the request), and an error's
// text reaches logs, the terminal and the database. The error keeps its sentinel and cause
// for errors.Is and errors.As.
func redactToken(err error, token string) error {
	if err == nil || token == "" || !strings.Contains(err.Error(), token) && !strings.Contains(err.Error(), url.QueryEscape(token)) {
		return err
	}
	var e *Error
	if !errors.As(err, &e) {
		return &redactedError{msg: scrubToken(err.Error(), token), cause: err}
	}
	e.Message = scrubToken(e.Message, token)
	if e.Err != nil && e.Err.Error() != scrubToken(e.Err.Error(), token) {
		e.Err = &redactedError{msg: scrubToken(e.Err.Error(), token), cause: e.Err}
	}
	return err
}

func scrubToken(s, token string) string {
	s = strings.ReplaceAll(s, token, "xxxxx")
	if esc := url.QueryEscape(token); esc != token {
		s = strings.ReplaceAll(s, esc, "xxxxx")
	}
	return s
}

// redactedError is a cause whose text held the token: it says the same without it.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }
