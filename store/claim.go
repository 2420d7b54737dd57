package store

import (
	"context"
	"fmt"
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

const jobIDSQL = `'raysubmit_t' || t.id || '_a' || t.attempt_number || '_' || to_hex((extract(epoch FROM now()) * 1000000)::bigint)`

// Claim moves up to p.Limit QUEUED rows to RUNNING for p.WorkerID in one statement, in
// django-ray 0.2.0 order: rows without run_after first, then rows whose run_after is due;
// within each, queue priority (high-priority/urgent, then others, then
// low-priority/background/batch), then created_at. Rows locked by another claimer are
// skipped (FOR UPDATE SKIP LOCKED). The rows are returned in that order.
func (s *Store) Claim(ctx context.Context, p ClaimParams) ([]Task, error) {
	if p.WorkerID == "" {
		return nil, fmt.Errorf("%w: claim needs a worker id", ErrInvalid)
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	sql, args := claimSQL(p)
	tasks, err := collectTasks(s.db.Query(ctx, sql, args...))
	if err != nil {
		return nil, err
	}
	SortClaimOrder(tasks)
	return tasks, nil
}

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

func claimSQL(p ClaimParams) (string, []any) {
	args := []any{p.Limit, p.WorkerID}
	queueFilter := ""
	if len(p.Queues) > 0 {
		args = append(args, p.Queues)
		queueFilter = fmt.Sprintf("AND queue_name = ANY($%d)", len(args))
	}
	jobID := "NULL"
	if p.AssignJobIDs {
		jobID = jobIDSQL
	}
	address := "t.ray_address"
	if p.RayAddress != "" {
		args = append(args, p.RayAddress)
		address = fmt.Sprintf("$%d", len(args))
	}
	// The ORDER BY expressions match rayctl_claim_order_idx (migrations.OptionalIndexes), so
	// with that index a claim reads only the rows it takes.
	return `WITH picked AS (
		SELECT id FROM django_ray_raytaskexecution
		WHERE state = 'QUEUED' ` + queueFilter + ` AND (run_after IS NULL OR run_after <= now())
		ORDER BY (run_after IS NOT NULL), ` + prioritySQL + `, created_at, id
		LIMIT $1
		FOR UPDATE SKIP LOCKED
	)
	UPDATE django_ray_raytaskexecution t
	SET state = 'RUNNING', started_at = now(), last_heartbeat_at = now(), finished_at = NULL,
	    claimed_by_worker = $2, ray_job_id = ` + jobID + `, ray_address = ` + address + `
	FROM picked
	WHERE t.id = picked.id AND t.state = 'QUEUED'
	RETURNING ` + prefixed("t"), args
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
