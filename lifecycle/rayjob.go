package lifecycle

import (
	"bytes"
	"fmt"
)

// Ray job statuses, as the Jobs API spells them. (The lifecycle package keeps its own
// spelling so it does not depend on a Ray client.)
const (
	RayPending   = "PENDING"
	RayRunning   = "RUNNING"
	RaySucceeded = "SUCCEEDED"
	RayFailed    = "FAILED"
	RayStopped   = "STOPPED"
)

// RayJobTraceback bounds the log tail recorded as error_traceback for a FAILED Ray job
// (django-ray 0.2.0 records the whole log; a 16 MiB traceback helps nobody).
const RayJobTraceback = diagnosticTail

// RayJob is what a caller read of a Ray job that reached a terminal status.
type RayJob struct {
	ID             string // the submission id, named in messages
	Status         string // SUCCEEDED, FAILED or STOPPED
	Message        string // Ray's message (FAILED: why, with a log tail)
	DriverExitCode *int   // the entrypoint's exit code, when Ray reports it
	// Log is the job's driver log (the tail the client kept) and LogTruncated says it lost
	// its beginning. Needed for SUCCEEDED (the result envelope is its last line) and used
	// for FAILED (the traceback); see NeedsLog.
	Log          []byte
	LogTruncated bool
}

// NeedsLog reports whether RayJobEnded reads the job's log for this status.
func NeedsLog(status string) bool { return status == RaySucceeded || status == RayFailed }

// RayJobEnded is the Outcome of a Ray job in a terminal status, as django-ray 0.2.0's
// reconciliation reads it, for every caller that watches Ray jobs (the Ray Job runner and
// rayctl reconcile-jobs), so both end a task the same way:
//
//	SUCCEEDED -> Interpret of the log: its last line is the entrypoint's result envelope
//	             (success with the result, or the task's own exception)
//	FAILED    -> JobFailed: Ray's message, the log tail as traceback, RayJobFailed
//	STOPPED   -> Cancelled
//
// ok is false for a status that is not terminal (PENDING, RUNNING, or one Ray does not
// define): the job has not ended, or nobody can tell.
func RayJobEnded(j RayJob) (o Outcome, ok bool) {
	switch j.Status {
	case RaySucceeded:
		run := RunOutput{Stdout: j.Log, StdoutTruncated: j.LogTruncated}
		if j.DriverExitCode != nil {
			run.ExitCode = *j.DriverExitCode
		}
		o := Interpret(run)
		if o.Kind == Failed && o.Failure.ExceptionType == ExcRunnerFailed && j.ID != "" {
			o.Failure.Message = fmt.Sprintf("Ray job %s SUCCEEDED, but %s", j.ID, o.Failure.Message)
		}
		return o, true
	case RayFailed:
		return JobFailed(j.Message, lineTail(j.Log, RayJobTraceback)), true
	case RayStopped:
		return Outcome{Kind: Cancelled}, true
	}
	return Outcome{}, false
}

// lineTail returns the last n bytes of b, from a line start when there is one in them.
func lineTail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
		b = b[i+1:]
	}
	return b
}
