package recovery

import (
	"context"
	"errors"

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
	Stopped bool   `json:"stopped"`
	Note    string `json:"note,omitempty"`
	Error   string `json:"error,omitempty"`
}

// StopJobs asks Ray to stop each job, at most concurrency requests at once (0:
// DefaultRayConcurrency), best effort: every job gets its own answer or error, in the order
// given. It stops asking when ctx ends (the jobs not reached say so).
func StopJobs(ctx context.Context, ray RayJobs, jobs []JobRef, concurrency int) []StopResult {
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
		r := StopResult{ID: jobs[i].ID, RayJobID: jobs[i].RayJobID}
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
		out[i] = r // each goroutine writes its own element
	})
	return out
}
