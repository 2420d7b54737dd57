package lifecycle

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/rayctl/rayctl/pyjson"
)

// Exception types the worker itself assigns (application errors carry their own
// "<module>.<Class>" from the result envelope).
const (
	// ExcRunnerFailed: the attempt ended without a usable result envelope (the process could
	// not start, exited non-zero or was killed, printed nothing; a Ray job FAILED). django-ray
	// names a failed Ray job so; the process runner uses the same string, so one denylist
	// entry covers both modes.
	ExcRunnerFailed = "RayJobFailed"
	// ExcTaskLost: the task stopped heartbeating (its worker died or lost track of it).
	ExcTaskLost = "TaskLost"
	// ExcInvalidTask: the row can never run as written (malformed args_json, ...). Such
	// failures are permanent: no retry whatever the policy says.
	ExcInvalidTask = "InvalidTask"
)

// Kind is what became of an attempt.
type Kind int

// The kinds of Outcome.
const (
	Succeeded Kind = iota + 1 // the callable returned; Result holds its value
	Failed                    // the callable raised, or the runner failed; Failure says how
	Cancelled                 // the work was stopped on request (cancel) or from outside (Ray job STOPPED)
	Lost                      // the task stopped heartbeating: LOST, then retried under TaskLost
	TimedOut                  // the task ran past its timeout_seconds: terminal FAILED
)

func (k Kind) String() string {
	switch k {
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	case Cancelled:
		return "cancelled"
	case Lost:
		return "lost"
	case TimedOut:
		return "timed_out"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Outcome is what became of one attempt, as a runner (or a sweep) observed it.
type Outcome struct {
	Kind    Kind
	Result  Result  // Succeeded
	Failure Failure // Failed
}

// Result is a successful task's value as Python's json.dumps text.
type Result struct {
	// JSON is json.dumps(value). When it is nil, SHA256 and Bytes describe the text: it was
	// too large to keep (a digest reference is all that can be stored), or it is the
	// whole-output result of a large run, kept as Output.
	JSON []byte
	// Output, when set (JSON nil), is captured output whose json.dumps(text) is the result
	// (django-ray's rule for a last line that is not an envelope), kept in the runner's
	// pieces: Results.Place encodes it only as far as it needs (inline when it fits, else
	// streamed to a file or just its digest), so a large output is never held twice.
	Output [][]byte
	SHA256 string // hex digest of the UTF-8 text, when JSON is nil
	Bytes  int64  // its length in bytes, when JSON is nil
}

// Size is the byte length of the result text.
func (r Result) Size() int64 {
	if r.JSON != nil {
		return int64(len(r.JSON))
	}
	return r.Bytes
}

// Failure is a failed attempt.
type Failure struct {
	Message       string // error_message
	Traceback     string // error_traceback; empty for none
	ExceptionType string // matched against the denylist: "builtins.ValueError", RayJobFailed, ...
	Permanent     bool   // never retried: the task cannot succeed as written
}

// FailureError carries a Failure out of a function that returns an error (Payload, a
// runner's Start), so the caller records exactly that failure.
type FailureError struct{ Failure Failure }

func (e *FailureError) Error() string { return e.Failure.Message }

// Success returns a Succeeded outcome for a value (see pyjson for the value types).
func Success(value any) (Outcome, error) {
	text, err := pyjson.Dumps(value)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Kind: Succeeded, Result: Result{JSON: text}}, nil
}

// Fail returns a Failed outcome.
func Fail(f Failure) Outcome { return Outcome{Kind: Failed, Failure: f} }

// RunnerFailure is a failure of the runner itself (RayJobFailed) with a message and,
// optionally, the output or logs as traceback.
func RunnerFailure(message string, output []byte) Outcome {
	return Fail(Failure{Message: message, Traceback: pyjson.DecodeUTF8(output), ExceptionType: ExcRunnerFailed})
}

// JobFailed is django-ray's outcome for a Ray job in status FAILED: the job's message (or
// "Ray job failed") with the job logs as traceback, under RayJobFailed.
func JobFailed(message string, logs []byte) Outcome {
	if strings.TrimSpace(message) == "" {
		message = "Ray job failed"
	}
	return RunnerFailure(message, logs)
}

// Digest is the size and SHA-256 of a text that was not kept whole.
type Digest struct {
	SHA256 string
	Bytes  int64
}

// RunOutput is what one entrypoint run left behind: its captured output and how it ended.
// The process runner fills it; a runner that fetches Ray job logs can fill Stdout with them.
type RunOutput struct {
	// Stdout is standard output: all of it, or only its tail when StdoutTruncated.
	Stdout []byte
	// StdoutParts, when not nil, replaces Stdout: the same bytes as consecutive pieces (a
	// bounded capture's chunks, procrunner.Capture.Parts). Interpret reads them without joining
	// them, so a large output costs its capture and nothing more.
	StdoutParts     [][]byte
	StdoutTruncated bool
	// StdoutDigest is json.dumps(stdout as text) over the whole stream, needed when
	// StdoutTruncated and the last line is not a result envelope (django-ray then stores the
	// whole output as the result).
	StdoutDigest *Digest
	// Stderr is the tail of standard error (diagnostics only).
	Stderr []byte
	// ExitCode is the exit status; meaningful when Signal is empty and Err is nil.
	ExitCode int
	// Signal names the signal that killed the process, if one did.
	Signal string
	// Err is set when the process could not be started or waited for.
	Err error
}

// diagnosticTail bounds the output kept in error_traceback for runner failures.
const diagnosticTail = 64 << 10

// Interpret reads a run's output as django-ray 0.2.0 reads a Ray job's logs, and ends it
// better where 0.2.0 has no defined answer:
//
//   - the last line of the stripped output, when it is a JSON object, is the result envelope:
//     a truthy "success" is Succeeded with "result"; otherwise Failed with "error",
//     "traceback" and "exception_type" (whatever the exit status: the envelope is
//     authoritative);
//   - a last line that is not a JSON object, after a clean exit, is Succeeded with the whole
//     output as a JSON string (0.2.0's rule);
//   - without an envelope: a run that could not start, exited non-zero or was killed, one
//     that printed nothing, and one whose last line did not fit the capture are each Failed
//     under RayJobFailed with a message that says which (0.2.0 records a success with no
//     result for empty output).
func Interpret(r RunOutput) Outcome {
	if r.Err != nil {
		return RunnerFailure(fmt.Sprintf("could not run the entrypoint: %v", r.Err), r.Stderr)
	}
	out := r.stdoutParts()
	kept := partsLen(out)
	last, nonBlank, newline := lastOutputLine(out)
	lineComplete := !r.StdoutTruncated || newline
	if nonBlank && lineComplete {
		if env, ok := envelope(last); ok {
			return env
		}
	}
	ended := describeExit(r)
	switch {
	case r.Signal != "" || r.ExitCode != 0:
		msg := fmt.Sprintf("entrypoint %s without printing a result line", ended)
		if last := lastLine(r.Stderr); last != "" {
			msg += ": " + clip(last, 500)
		}
		return RunnerFailure(msg, diagnostics(r))
	case kept == 0 && !r.StdoutTruncated:
		return RunnerFailure("entrypoint exited with status 0 but printed nothing (expected a JSON result line last)", diagnostics(r))
	case !nonBlank:
		return RunnerFailure("entrypoint exited with status 0 but printed only whitespace (expected a JSON result line last)", diagnostics(r))
	case !lineComplete:
		return RunnerFailure(fmt.Sprintf("the entrypoint's last output line is longer than the %d bytes kept of its output; its result cannot be read",
			kept), diagnostics(r))
	}
	// django-ray 0.2.0: a last line that is not JSON means success, with the whole output
	// (not stripped) as the result string.
	if !r.StdoutTruncated {
		return Outcome{Kind: Succeeded, Result: outputResult(out)}
	}
	if r.StdoutDigest == nil {
		return RunnerFailure("the entrypoint's output was truncated and its last line is not a result envelope", diagnostics(r))
	}
	return Outcome{Kind: Succeeded, Result: Result{SHA256: r.StdoutDigest.SHA256, Bytes: r.StdoutDigest.Bytes}}
}

// envelope parses a result line. ok is false when the line is not a JSON object.
func envelope(line string) (Outcome, bool) {
	v, err := pyjson.Decode(line)
	if err != nil {
		return Outcome{}, false
	}
	obj, isObj := v.(*pyjson.Object)
	if !isObj {
		return Outcome{}, false
	}
	if success, _ := obj.Get("success"); pyjson.Truthy(success) {
		result, _ := obj.Get("result")
		o, err := Success(result)
		if err != nil { // cannot happen for decoded values; keep the run defined anyway
			return RunnerFailure("cannot encode the task's result: "+err.Error(), nil), true
		}
		return o, true
	}
	f := Failure{Message: "Task failed (the result line has no error message)"}
	if e, ok := obj.Get("error"); ok && e != nil {
		if s, isStr := e.(string); isStr {
			if s != "" {
				f.Message = s
			}
		} else if text, err := pyjson.Dumps(e); err == nil {
			f.Message = string(text)
		}
	}
	if tb, ok := obj.Get("traceback"); ok {
		f.Traceback, _ = tb.(string)
	}
	if et, ok := obj.Get("exception_type"); ok {
		f.ExceptionType, _ = et.(string)
	}
	return Fail(f), true
}

func describeExit(r RunOutput) string {
	if r.Signal != "" {
		return "was killed by signal " + r.Signal
	}
	return fmt.Sprintf("exited with status %d", r.ExitCode)
}

func lastLine(b []byte) string {
	return pyjson.LastLine(pyjson.DecodeUTF8(b))
}

// diagnostics is the traceback recorded for a runner failure: the tails of stderr and stdout.
func diagnostics(r RunOutput) []byte {
	var b bytes.Buffer
	section := func(name string, data []byte, truncated bool) {
		if len(bytes.TrimSpace(data)) == 0 {
			return
		}
		if len(data) > diagnosticTail {
			data, truncated = data[len(data)-diagnosticTail:], true
		}
		if truncated {
			fmt.Fprintf(&b, "--- %s (last %d bytes) ---\n", name, len(data))
		} else {
			fmt.Fprintf(&b, "--- %s ---\n", name)
		}
		b.Write(data)
		if data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	section("stderr", r.Stderr, false)
	out := r.stdoutParts()
	section("stdout", Suffix(out, diagnosticTail), r.StdoutTruncated || partsLen(out) > diagnosticTail)
	return b.Bytes()
}
