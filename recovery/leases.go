package recovery

import (
	"context"
	"strings"
	"time"

	"github.com/rayctl/rayctl/store"
)

// Verdict is a lease's health.
type Verdict string

// Lease verdicts.
const (
	// VerdictFresh: active, heartbeat within the TTL. Its rows are the worker's to handle.
	VerdictFresh Verdict = "fresh"
	// VerdictStale: still marked active, but no heartbeat within the TTL: the worker is hung,
	// dead, or cut off. The next lease sweep (any worker) expires it.
	VerdictStale Verdict = "stale"
	// VerdictExpired: not active — stopped gracefully or expired by a sweep.
	VerdictExpired Verdict = "expired"
)

// LeaseVerdict judges a lease at the database time now.
func LeaseVerdict(l store.Lease, now time.Time, ttl time.Duration) Verdict {
	switch {
	case !l.IsActive:
		return VerdictExpired
	case now.Sub(l.LastHeartbeatAt) > ttl:
		return VerdictStale
	}
	return VerdictFresh
}

// LeaseQueues splits a lease's queue label ("default,emails"; "*" for every queue; a label
// cut short ends in "...").
func LeaseQueues(label string) []string {
	if label == "" {
		return nil
	}
	return strings.Split(label, ",")
}

// LeaseCovers reports whether a worker with this queue label may poll queue q: it lists q,
// polls every queue ("*"), or its label was cut short ("...") and may list it.
func LeaseCovers(label, q string) bool {
	for _, name := range LeaseQueues(label) {
		if name == q || name == "*" || name == "..." {
			return true
		}
	}
	return false
}

// LeaseInfo is a lease with its verdict and the rows its worker owns.
type LeaseInfo struct {
	store.Lease
	// Mode is the execution mode a rayworker lease carries in its hostname ("pool x10",
	// "ray_core x1", "rayjob", "process"); empty for django-ray's own worker.
	Mode                string   `json:"mode"`
	Queues              []string `json:"queues"`
	Verdict             Verdict  `json:"verdict"`
	AgeSeconds          float64  `json:"age_seconds"`           // since the worker started
	HeartbeatAgeSeconds float64  `json:"heartbeat_age_seconds"` // since its last heartbeat
	Running             int64    `json:"running"`               // RUNNING rows it owns
	Cancelling          int64    `json:"cancelling"`            // CANCELLING rows it owns
	TaskIDs             []int64  `json:"task_ids"`              // the first of those rows
}

// OrphanInfo is a RUNNING or CANCELLING row whose owner has no live lease.
type OrphanInfo struct {
	Task   TaskSummary       `json:"task"`
	Reason store.OwnerStatus `json:"reason"`
	// IdleSeconds is the time since the row's last heartbeat (or start).
	IdleSeconds float64 `json:"idle_seconds"`
}

// VerdictCounts counts leases per verdict.
type VerdictCounts struct {
	Fresh   int `json:"fresh"`
	Stale   int `json:"stale"`
	Expired int `json:"expired"`
}

// LeaseReport is what InspectLeases found.
type LeaseReport struct {
	Now             time.Time     `json:"now"`
	LeaseTTLSeconds float64       `json:"lease_ttl_seconds"`
	Counts          VerdictCounts `json:"counts"` // over every lease, also with StaleOnly
	Leases          []LeaseInfo   `json:"leases"`
	Orphans         []OrphanInfo  `json:"orphans"`
	OrphansTotal    int64         `json:"orphans_total"` // Orphans may be cut at the limit
}

// LeaseOptions tune InspectLeases.
type LeaseOptions struct {
	LeaseTTL    time.Duration // default DefaultLeaseTTL
	StaleOnly   bool          // leave fresh leases out of Leases
	OrphanLimit int           // default 100
	TaskIDLimit int           // owned row ids listed per lease; default 20
}

// InspectLeases lists every worker lease (oldest heartbeat first) with its verdict, age,
// heartbeat age and owned RUNNING/CANCELLING rows, and the orphan candidates: RUNNING and
// CANCELLING rows whose owner is nobody, unknown, expired or stale.
func InspectLeases(ctx context.Context, s *store.Store, opts LeaseOptions) (LeaseReport, error) {
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.OrphanLimit <= 0 {
		opts.OrphanLimit = 100
	}
	if opts.TaskIDLimit <= 0 {
		opts.TaskIDLimit = 20
	}
	rep := LeaseReport{LeaseTTLSeconds: opts.LeaseTTL.Seconds(), Leases: []LeaseInfo{}, Orphans: []OrphanInfo{}}
	var err error
	if rep.Now, err = s.Now(ctx); err != nil {
		return rep, err
	}
	leases, err := s.ListLeases(ctx)
	if err != nil {
		return rep, err
	}
	owned, err := s.OwnedCounts(ctx, opts.TaskIDLimit)
	if err != nil {
		return rep, err
	}
	for _, l := range leases {
		info := LeaseInfo{Lease: l, Mode: l.Mode(), Queues: LeaseQueues(l.QueueName), Verdict: LeaseVerdict(l, rep.Now, opts.LeaseTTL),
			AgeSeconds: rep.Now.Sub(l.StartedAt).Seconds(), HeartbeatAgeSeconds: rep.Now.Sub(l.LastHeartbeatAt).Seconds(),
			TaskIDs: []int64{}}
		if c, ok := owned[l.WorkerID]; ok {
			info.Running, info.Cancelling, info.TaskIDs = c.Running, c.Cancelling, c.IDs
		}
		switch info.Verdict {
		case VerdictFresh:
			rep.Counts.Fresh++
		case VerdictStale:
			rep.Counts.Stale++
		case VerdictExpired:
			rep.Counts.Expired++
		}
		if opts.StaleOnly && info.Verdict == VerdictFresh {
			continue
		}
		rep.Leases = append(rep.Leases, info)
	}
	orphans, total, err := s.OrphanCandidates(ctx, opts.LeaseTTL, opts.OrphanLimit)
	if err != nil {
		return rep, err
	}
	rep.OrphansTotal = total
	for _, o := range orphans {
		ts := Summarize(o.Task)
		idle := ts.CreatedAt
		if ts.StartedAt != nil {
			idle = *ts.StartedAt
		}
		if ts.LastHeartbeatAt != nil {
			idle = *ts.LastHeartbeatAt
		}
		rep.Orphans = append(rep.Orphans, OrphanInfo{Task: ts, Reason: o.Reason, IdleSeconds: rep.Now.Sub(idle).Seconds()})
	}
	return rep, nil
}
