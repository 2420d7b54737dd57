package rayrunner

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/store"
)

// stopReason says why a job is being stopped; it decides the outcome once Ray says STOPPED.
type stopReason int

const (
	stopNone    stopReason = iota
	stopCancel             // Cancel: the loop's cancellation, timeout, LOST
	stopPending            // PENDING beyond Config.PendingTimeout
)

// job is the runner's view of one submission id. Every field is guarded by Runner.mu; at
// most one HTTP call per job is in flight (busy).
type job struct {
	id    string
	task  store.Task // the row as last given by Start or Poll
	since time.Time  // tracked since

	// own: this process submits the job (Start, or a dead worker's job Ray never had).
	own bool
	// req is the submit request, kept until Ray has the job.
	req *rayjobs.SubmitRequest
	// acked: Ray has the job (a submit answered, a duplicate answer, or a GET/list saw it).
	acked    bool
	submitAt time.Time // next POST not before
	// check: a POST's fate is unknown (timeout, broken connection): GET before any other POST.
	check   bool
	checkAt time.Time
	// look: a job Poll was asked about and never looked up yet.
	look  bool
	fails int // consecutive failed calls, for backoff

	busy bool // an HTTP call for this job is in flight

	status       rayjobs.Status
	rawStatus    string
	seenAt       time.Time // start of the request that last saw the job
	pendingSince time.Time
	note         string // the last problem, for Unknown messages
	// confirm: a list did not show the job: GET it (a 404 then means Ray lost it).
	confirm bool
	// orphan404: a dead worker's job Ray does not know, seen missing at this time. The
	// decision (submit it, or TaskLost) waits for a session check that started later.
	orphan404 time.Time
	// foreign: the row names another Ray cluster: its job is left alone.
	foreign bool

	stop      stopReason
	stopAsked time.Time
	stopSent  time.Time // when a stop was accepted
	stopAt    time.Time // next stop attempt not before (after a failed one)

	terminal *rayjobs.JobDetails // Ray's final answer; logs are read next
	logTries int                 // failed log reads that counted (the API answered otherwise)
	logsAt   time.Time
	// logErr is the last log read's error, not yet judged: it counts as a try only once a
	// health check that started after logFailedAt (the read's start) found the API up.
	logErr       error
	logFailedAt  time.Time
	logFirstFail time.Time // the first counted failure, for LogPatience

	done    bool
	outcome lifecycle.Outcome

	polledAt  time.Time // last time the loop asked about it
	forgotten bool      // Forget was called: drop once done
}

// phase is where a job stands when no call for it is in flight: what the runner does for it
// next. job.phase decodes it from the job's flags; step runs the phase's step (phaseSteps).
// A job that is done, busy or foreign has none.
type phase int

const (
	// phaseLogs: Ray's final answer is in (terminal); its logs are read, then the outcome.
	phaseLogs phase = iota
	// phaseOrphan: a dead worker's job Ray does not know (orphan404); decided, submitted or
	// TaskLost, after a session check that started later.
	phaseOrphan
	// phaseLookup: does Ray have it? After a POST of unknown fate (check), for a job Poll asked
	// about (look), a job to stop that may never have been submitted, or one this process
	// does not submit (!own): GET it.
	phaseLookup
	// phaseSubmit: this process submits it and Ray does not have it yet: POST it.
	phaseSubmit
	// phaseStop: Ray has it, it is to be stopped, and no stop was accepted yet.
	phaseStop
	// phaseConfirm: a list did not show it: GET it (a 404 then means Ray lost it).
	phaseConfirm
	// phaseWatch: Ray has it and nothing else is due: the next poll round reads its status.
	phaseWatch
)

func (p phase) String() string {
	return [...]string{"logs", "orphan", "lookup", "submit", "stop", "confirm", "watch"}[p]
}

// phase decodes the job's flags; the first that applies wins. Called with mu held.
func (j *job) phase() phase {
	switch {
	case j.terminal != nil:
		return phaseLogs
	case !j.orphan404.IsZero():
		return phaseOrphan
	case !j.acked && (j.check || j.look || j.stop != stopNone || !j.own):
		return phaseLookup
	case !j.acked:
		return phaseSubmit
	case j.stop != stopNone && j.stopSent.IsZero():
		return phaseStop
	case j.confirm:
		return phaseConfirm
	}
	return phaseWatch
}

// settling: Poll's first look at the job has not come to a conclusion yet.
func (j *job) settling() bool {
	return !j.done && (j.look || j.busy || j.terminal != nil || !j.orphan404.IsZero())
}

// backoff is the wait after n consecutive failures: 1 s doubling to 30 s, jittered.
func backoff(n int) time.Duration {
	d := time.Second
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return jitter(min(d, 30*time.Second))
}

// claimTime reads the claim time a store.JobIDFormat id carries
// (raysubmit_t<row>_a<attempt>_<µs since the epoch, hex>). ok is false for other ids
// (django-ray 0.2.0's raysubmit_<16 random characters>).
func claimTime(id string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(id, AdoptPrefix+"t")
	if !ok {
		return time.Time{}, false
	}
	parts := strings.Split(rest, "_")
	if len(parts) != 3 || !strings.HasPrefix(parts[1], "a") {
		return time.Time{}, false
	}
	if _, err := strconv.ParseInt(parts[0], 10, 64); err != nil {
		return time.Time{}, false
	}
	us, err := strconv.ParseInt(parts[2], 16, 64)
	if err != nil || us <= 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(us), true
}

// lostOutcome: Ray does not know a job that may have run. The attempt is retried under the
// policy as TaskLost, with a new claim and a new id; it is never re-submitted under this one.
func lostOutcome(id, why string) lifecycle.Outcome {
	return lifecycle.Fail(lifecycle.Failure{
		Message: fmt.Sprintf("Ray has no job %s (HTTP 404) %s: the Ray head restarted without GCS fault tolerance, or the job was deleted. "+
			"Its outcome is unknown, so the task is retried as a new attempt", id, why),
		ExceptionType: lifecycle.ExcTaskLost,
	})
}

// pendingOutcome: the job never left PENDING within the limit.
func pendingOutcome(j *job, limit time.Duration, stopped string) lifecycle.Outcome {
	msg := fmt.Sprintf("Ray job %s stayed PENDING for more than %s; %s", j.id, limit, stopped)
	if j.terminal != nil && j.terminal.Message != "" {
		msg += ". Ray's message: " + j.terminal.Message
	}
	return lifecycle.Fail(lifecycle.Failure{Message: msg, ExceptionType: lifecycle.ExcRunnerFailed})
}
