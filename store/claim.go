package store

import (
	"context"
	"sort"
	"strings"
)

// ClaimParams selects and fences a batch claim.
type ClaimParams struct {
	WorkerID string   // becomes claimed_by_worker
	Queues   []string // queue names to take from; nil or empty means every queue
	Limit    int      // at most this many rows (the worker's free slots)

	// AssignJobIDs writes a fresh Ray submission id into ray_job_id as part of the claim
	// (see JobIDFormat), so the id is durable before anything is sent to Ray: a crash
	// between claim, submit and record can neither lose the job nor run it twice.
	// Without it, ray_job_id is cleared: a stale id from an earlier attempt must not be
	// mistaken for this attempt's job by anyone.
	AssignJobIDs bool
	// RayAddress, when set, is written to ray_address (django-ray writes its RAY_ADDRESS).
	RayAddress string
}

// JobIDFormat documents the Ray submission ids AssignJobIDs produces:
// raysubmit_t<row id>_a<attempt>_<claim time in µs since the epoch, hex>. The prefix keeps
// 0.2.0 Python workers able to adopt the job; the claim time makes every claim's id unique,
// so a manually requeued task never collides with its old job.
const JobIDFormat = "raysubmit_t<id>_a<attempt>_<hex µs>"

// RaySubmissionPrefix starts every Ray Jobs submission id django-ray 0.2.0 and rayworker
// record in ray_job_id (Ray's own default ids start with it too). A row carrying one may have
// a Ray job running for it.
const RaySubmissionPrefix = "raysubmit_"

// ExplainClaim returns the query plan of the claim p describes, without running it: the
// operator's check that claims use rayctl_claim_order_idx (rayctl migrate indexes).
func (s *Store) ExplainClaim(ctx context.Context, p ClaimParams) (string, error) {
	if p.WorkerID == "" {
		p.WorkerID = "explain"
	}
	p.Limit = max(p.Limit, 1)
	sql, args := claimSQL(p)
	rows, err := s.db.Query(ctx, "EXPLAIN "+sql, args...)
	lines, err := collectColumn[string](rows, err)
	return strings.Join(lines, "\n"), err
}

// SortClaimOrder sorts tasks in the order Claim takes them.
func SortClaimOrder(tasks []Task) {
	sort.SliceStable(tasks, func(i, j int) bool {
		a, b := tasks[i], tasks[j]
		if (a.RunAfter != nil) != (b.RunAfter != nil) {
			return a.RunAfter == nil
		}
		if pa, pb := QueuePriority(a.QueueName), QueuePriority(b.QueueName); pa != pb {
			return pa < pb
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
}

// LeaseQueueLabel joins queue names for the lease's queue_name column (varchar(100)),
// shortening the list rather than failing the insert as django-ray 0.2.0 does.
func LeaseQueueLabel(queues []string) string {
	if len(queues) == 0 {
		return "*"
	}
	label := strings.Join(queues, ",")
	if len(label) <= 100 {
		return label
	}
	cut := label[:96]
	if i := strings.LastIndex(cut, ","); i > 0 {
		cut = cut[:i]
	}
	return cut + ",..."
}
