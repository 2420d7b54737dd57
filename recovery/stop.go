package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rayctl/rayctl/rayjobs"
)

// JobRef is a task's Ray job.
type JobRef struct {
	ID       int64  `json:"id"`
	RayJobID string `json:"ray_job_id"`
}

// StopResult is Ray's answer to stopping one task's job.
type StopResult struct {
	ID       int64  `json:"id"`
	RayJobID string `json:"ray_job_id"`
	// Stopped: Ray stopped the job. False with no Error: there was nothing left to stop (the
	// job had ended, or Ray does not know it; Note says which).
	Stopped bool `json:"stopped"`
	// Ended (EndJobs only): the job is confirmed over — Ray reports it in a terminal state,
	// or does not know it. False with an Error: the row must not move on yet.
	Ended bool   `json:"ended"`
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
}

// StopJobs asks Ray to stop each job, at most concurrency requests at once (0:
// DefaultRayConcurrency), best effort: every job gets its own answer or error, in the order
// given. It stops asking when ctx ends (the jobs not reached say so).
func StopJobs(ctx context.Context, ray RayJobs, jobs []JobRef, concurrency int) []StopResult {
	return eachJob(ctx, jobs, concurrency, func(j JobRef) StopResult {
		r := StopResult{ID: j.ID, RayJobID: j.RayJobID}
		stopped, err := ray.Stop(ctx, r.RayJobID)
		switch {
		case errors.Is(err, rayjobs.ErrNotFound):
			r.Note = "Ray does not know the job: nothing to stop"
		case err != nil:
			r.Error = firstLine(err.Error(), 300)
		case stopped:
			r.Stopped = true
		default:
			r.Note = "the job had already ended"
		}
		return r
	})
}

// eachJob runs do for each job, at most concurrency at once (0: DefaultRayConcurrency), and
// returns their results in the order given; a job not reached when ctx ends says so.
func eachJob(ctx context.Context, jobs []JobRef, concurrency int, do func(JobRef) StopResult) []StopResult {
	if concurrency <= 0 {
		concurrency = DefaultRayConcurrency
	}
	out := make([]StopResult, len(jobs))
	idx := make([]int, len(jobs))
	for i, j := range jobs {
		idx[i] = i
		out[i] = StopResult{ID: j.ID, RayJobID: j.RayJobID, Error: "not asked: interrupted"}
	}
	forEach(ctx, concurrency, idx, func(i int) {
		out[i] = do(jobs[i]) // each goroutine writes its own element
	})
	return out
}

// DefaultEndWait is how long EndJobs waits for a stopped job to reach a terminal state (Ray
// sends SIGTERM, then SIGKILL 3 s later).
const DefaultEndWait = 30 * time.Second

// EndJobs makes sure each job is over before its row moves on (a requeue, a cancel
// finalization): it asks Ray to stop the job, then reads it until Ray reports it in a terminal
// state (STOPPED, SUCCEEDED, FAILED) or does not know it, for at most wait per job (0:
// DefaultEndWait). Every job gets its answer, in the order given: Ended, or an Error saying why
// the job could not be confirmed over (Ray unreachable, still RUNNING after the wait). At
// most concurrency jobs are handled at once (0: DefaultRayConcurrency).
func EndJobs(ctx context.Context, ray RayJobs, jobs []JobRef, wait time.Duration, concurrency int) []StopResult {
	if wait <= 0 {
		wait = DefaultEndWait
	}
	return eachJob(ctx, jobs, concurrency, func(j JobRef) StopResult { return endJob(ctx, ray, j, wait) })
}

func endJob(ctx context.Context, ray RayJobs, j JobRef, wait time.Duration) StopResult {
	r := StopResult{ID: j.ID, RayJobID: j.RayJobID}
	stopped, err := ray.Stop(ctx, j.RayJobID)
	switch {
	case errors.Is(err, rayjobs.ErrNotFound):
		r.Ended, r.Note = true, "Ray does not know the job: nothing to stop"
		return r
	case err != nil:
		r.Error = "stop: " + firstLine(err.Error(), 300)
		return r
	}
	r.Stopped = stopped
	deadline := time.Now().Add(wait)
	for {
		d, err := ray.Get(ctx, j.RayJobID)
		switch {
		case errors.Is(err, rayjobs.ErrNotFound):
			r.Ended, r.Note = true, "Ray no longer knows the job"
			return r
		case err == nil && d.Status.Terminal():
			r.Ended = true
			if !stopped {
				r.Note = fmt.Sprintf("the job had already ended (%s)", d.Status)
			}
			return r
		case time.Now().After(deadline) || ctx.Err() != nil:
			if err != nil {
				r.Error = "reading the job after the stop: " + firstLine(err.Error(), 300)
			} else {
				r.Error = fmt.Sprintf("still %s %s after the stop", d.RawStatus, wait)
			}
			return r
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
