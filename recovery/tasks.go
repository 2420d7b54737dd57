package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rayctl/rayctl/store"
)

// DefaultListLimit is how many tasks a page holds unless told otherwise.
const DefaultListLimit = 50

// ListOptions select a page of tasks, newest first.
type ListOptions struct {
	Filter   store.TaskFilter // its Limit and BeforeID are ignored
	Limit    int              // page size; 0 = DefaultListLimit, at most MaxLimit
	BeforeID int64            // keyset cursor: only ids below this (the previous page's NextBeforeID)
}

// TaskPage is one page of tasks.
type TaskPage struct {
	Tasks []TaskSummary `json:"tasks"`
	// Total counts every task the filter matches, across pages.
	Total int64 `json:"total"`
	// NextBeforeID is the cursor of the next page; nil on the last page.
	NextBeforeID *int64 `json:"next_before_id"`
}

// ListTasks returns one page of tasks matching the filter, newest (highest id) first, and a
// cursor for the next page. Keyset paging: later pages stay cheap and stable while rows are
// added.
func ListTasks(ctx context.Context, s *store.Store, opts ListOptions) (TaskPage, error) {
	page := TaskPage{Tasks: []TaskSummary{}}
	switch {
	case opts.Limit == 0:
		opts.Limit = DefaultListLimit
	case opts.Limit < 0 || opts.Limit > MaxLimit:
		return page, badf("invalid limit %d (want 1..%d)", opts.Limit, MaxLimit)
	}
	if opts.BeforeID < 0 {
		return page, badf("invalid cursor %d", opts.BeforeID)
	}
	f := opts.Filter
	f.Limit, f.BeforeID = 0, 0
	total, err := s.CountTasks(ctx, f)
	if err != nil {
		return page, err
	}
	page.Total = total
	f.Limit, f.BeforeID = opts.Limit+1, opts.BeforeID
	tasks, err := s.ListTasks(ctx, f)
	if err != nil {
		return page, err
	}
	if len(tasks) > opts.Limit {
		tasks = tasks[:opts.Limit]
		next := tasks[len(tasks)-1].ID
		page.NextBeforeID = &next
	}
	for _, t := range tasks {
		page.Tasks = append(page.Tasks, Summarize(t))
	}
	return page, nil
}

// Event is one point of a task's timeline.
type Event struct {
	Name       string    `json:"name"` // created, run_after, started, last_heartbeat, finished
	At         time.Time `json:"at"`
	AgoSeconds float64   `json:"ago_seconds"` // negative when in the future (run_after)
}

// OwnerInfo is the lease of the worker that claimed a task.
type OwnerInfo struct {
	WorkerID string       `json:"worker_id"`
	Lease    *store.Lease `json:"lease"` // nil when no lease row has that id
	// Verdict is fresh, stale or expired, or "unknown" without a lease row.
	Verdict             string  `json:"verdict"`
	HeartbeatAgeSeconds float64 `json:"heartbeat_age_seconds"`
}

// ResultInfo says where a task's result is.
type ResultInfo struct {
	// Kind is "inline" (result_data), "reference" (result_reference), or "none".
	Kind      string     `json:"kind"`
	Bytes     int        `json:"bytes,omitempty"` // of the inline JSON text
	Reference *Reference `json:"reference,omitempty"`
	// ReferenceError is set when result_reference is not a format django-ray writes.
	ReferenceError string `json:"reference_error,omitempty"`
}

// Detail is everything about one task.
type Detail struct {
	Task     store.Task `json:"task"`
	Now      time.Time  `json:"now"` // the database clock the ages are measured against
	Timeline []Event    `json:"timeline"`
	Result   ResultInfo `json:"result"`
	Owner    *OwnerInfo `json:"owner"` // nil when no worker claimed it
}

// DetailOptions tune TaskDetail.
type DetailOptions struct {
	LeaseTTL time.Duration // default DefaultLeaseTTL
	// ResultDir is RESULT_STORAGE_FILESYSTEM_PATH, if known: resultfs:// references are then
	// resolved to a path and checked on disk.
	ResultDir string
	// Objects reads s3:// and gs:// results (at most FetchLimit bytes, DefaultFetchLimit when
	// 0); nil: they are only explained.
	Objects    ObjectReader
	FetchLimit int64
}

// TaskDetail reads one task (store.ErrNotFound if there is none) with its timeline, where
// its result is, and the status of the worker that claimed it.
func TaskDetail(ctx context.Context, s *store.Store, id int64, opts DetailOptions) (Detail, error) {
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	var d Detail
	t, err := s.GetTask(ctx, id)
	if err != nil {
		return d, err
	}
	d.Task = t
	if d.Now, err = s.Now(ctx); err != nil {
		return d, err
	}
	add := func(name string, at *time.Time) {
		if at != nil {
			d.Timeline = append(d.Timeline, Event{Name: name, At: *at, AgoSeconds: d.Now.Sub(*at).Seconds()})
		}
	}
	add("created", &t.CreatedAt)
	add("run_after", t.RunAfter)
	add("started", t.StartedAt)
	add("last_heartbeat", t.LastHeartbeatAt)
	add("finished", t.FinishedAt)

	switch {
	case t.ResultData != nil:
		d.Result = ResultInfo{Kind: "inline", Bytes: len(*t.ResultData)}
	case t.ResultReference != nil:
		d.Result = ResultInfo{Kind: "reference"}
		ref, err := ParseReference(*t.ResultReference, opts.ResultDir)
		if err != nil {
			d.Result.ReferenceError = err.Error()
		} else {
			if opts.Objects != nil && (ref.Scheme == "s3" || ref.Scheme == "gs") {
				fetchObject(ctx, opts.Objects, &ref, opts.FetchLimit)
			}
			d.Result.Reference = &ref
		}
	default:
		d.Result = ResultInfo{Kind: "none"}
	}

	if t.ClaimedByWorker != nil {
		o := &OwnerInfo{WorkerID: *t.ClaimedByWorker, Verdict: "unknown"}
		l, err := s.GetLease(ctx, *t.ClaimedByWorker)
		switch {
		case err == nil:
			o.Lease = &l
			o.Verdict = string(LeaseVerdict(l, d.Now, opts.LeaseTTL))
			o.HeartbeatAgeSeconds = d.Now.Sub(l.LastHeartbeatAt).Seconds()
		case !errors.Is(err, store.ErrNotFound):
			return d, fmt.Errorf("read the owner's lease: %w", err)
		}
		d.Owner = o
	}
	return d, nil
}
