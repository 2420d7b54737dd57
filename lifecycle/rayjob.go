package lifecycle

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
	Status  string // SUCCEEDED, FAILED or STOPPED
	Message string // Ray's message (FAILED: why, with a log tail)
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
		return Interpret(RunOutput{Stdout: j.Log, StdoutTruncated: j.LogTruncated}), true
	case RayFailed:
		log := j.Log
		if len(log) > RayJobTraceback {
			log = log[len(log)-RayJobTraceback:]
		}
		return JobFailed(j.Message, log), true
	case RayStopped:
		return Outcome{Kind: Cancelled}, true
	}
	return Outcome{}, false
}
