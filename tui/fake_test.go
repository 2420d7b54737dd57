package tui

import (
	"context"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rayctl/rayctl/store"
)

// fixedNow is the clock of every test: the database's and the local one.
var fixedNow = time.Date(2026, 11, 23, 15, 4, 5, 0, time.UTC)

func at(d time.Duration) *time.Time {
	t := fixedNow.Add(-d)
	return &t
}

func sp(s string) *string { return &s }

// fakeDB is an in-memory queue behind both fakeSource and fakeActions, so an action's effect
// shows in the next read, as with the real database.
type fakeDB struct {
	mu       sync.Mutex
	dash     store.Dashboard
	tasks    []store.Task // newest (highest id) first
	groups   []store.FailureGroup
	workers  []store.WorkerSummary
	err      error // when set, every read fails with it
	filters  []store.TaskFilter
	requeued [][]int64
	canceled [][]int64
	previews int
}

type fakeSource struct{ db *fakeDB }
type fakeActions struct{ db *fakeDB }

func (s fakeSource) Dashboard(_ context.Context, p store.DashboardParams) (store.Dashboard, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if s.db.err != nil {
		return store.Dashboard{}, s.db.err
	}
	d := s.db.dash
	d.States = map[store.TaskState]int64{}
	for st, n := range s.db.dash.States {
		if p.WithTotals || (st != store.StateSucceeded && st != store.StateCancelled) {
			d.States[st] = n
		}
	}
	d.HasTotals = p.WithTotals
	return d, nil
}

func (s fakeSource) ListTasks(_ context.Context, f store.TaskFilter) ([]store.Task, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if s.db.err != nil {
		return nil, s.db.err
	}
	s.db.filters = append(s.db.filters, f)
	var out []store.Task
	for _, t := range s.db.tasks {
		if f.BeforeID > 0 && t.ID >= f.BeforeID ||
			len(f.States) > 0 && !slices.Contains(f.States, t.State) ||
			len(f.Queues) > 0 && !slices.Contains(f.Queues, t.QueueName) ||
			f.Worker != "" && (t.ClaimedByWorker == nil || *t.ClaimedByWorker != f.Worker) ||
			f.Search != "" && !strings.Contains(t.CallablePath, f.Search) {
			continue
		}
		if f.Callable != "" {
			if ok, _ := path.Match(f.Callable, t.CallablePath); !ok {
				continue
			}
		}
		out = append(out, t)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

func (s fakeSource) GetTask(_ context.Context, id int64) (store.Task, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if s.db.err != nil {
		return store.Task{}, s.db.err
	}
	for _, t := range s.db.tasks {
		if t.ID == id {
			return t, nil
		}
	}
	return store.Task{}, store.ErrNotFound
}

func (s fakeSource) FailureGroups(_ context.Context, p store.FailureParams) ([]store.FailureGroup, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	return s.db.groups, s.db.err
}

func (s fakeSource) FailureGroupTaskIDs(_ context.Context, callable, exc string, _ store.FailureParams) ([]int64, int64, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	var ids []int64
	for _, t := range s.db.tasks {
		if t.CallablePath == callable && (t.State == store.StateFailed || t.State == store.StateLost) &&
			store.ExceptionType(t.ErrorTraceback, t.ErrorMessage) == exc {
			ids = append(ids, t.ID)
		}
	}
	return ids, int64(len(ids)), s.db.err
}

func (s fakeSource) Workers(_ context.Context, _ time.Duration, _ int) (time.Time, []store.WorkerSummary, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	return fixedNow, s.db.workers, s.db.err
}

func (a fakeActions) count(ids []int64, from ...store.TaskState) (Preview, error) {
	a.db.mu.Lock()
	defer a.db.mu.Unlock()
	a.db.previews++
	p := Preview{Chosen: len(ids)}
	for _, t := range a.db.tasks {
		if slices.Contains(ids, t.ID) && slices.Contains(from, t.State) {
			p.Eligible++
		}
	}
	if other := len(ids) - p.Eligible; other > 0 {
		p.Note = "left alone: in other states"
	}
	return p, nil
}

func (a fakeActions) PreviewRequeue(_ context.Context, ids []int64) (Preview, error) {
	return a.count(ids, store.StateFailed, store.StateLost, store.StateCancelled)
}

func (a fakeActions) PreviewCancel(_ context.Context, ids []int64) (Preview, error) {
	return a.count(ids, store.StateQueued, store.StateRunning)
}

func (a fakeActions) Requeue(_ context.Context, ids []int64) (Outcome, error) {
	a.db.mu.Lock()
	defer a.db.mu.Unlock()
	a.db.requeued = append(a.db.requeued, ids)
	var o Outcome
	for i, t := range a.db.tasks {
		if slices.Contains(ids, t.ID) {
			if t.State == store.StateFailed || t.State == store.StateLost || t.State == store.StateCancelled {
				a.db.tasks[i].State = store.StateQueued
				o.Applied++
			} else {
				o.Skipped++
			}
		}
	}
	return o, nil
}

func (a fakeActions) Cancel(_ context.Context, ids []int64) (Outcome, error) {
	a.db.mu.Lock()
	defer a.db.mu.Unlock()
	a.db.canceled = append(a.db.canceled, ids)
	return Outcome{Applied: len(ids)}, nil
}

// errConnRefused is what pgx returns when the server is down.
var errConnRefused error = &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}

// newFakeDB is the fixture: an incident in progress, with a backlog on default, a retry
// storm of app.tasks.charge_card, a stale worker and stuck CANCELLING rows.
func newFakeDB() *fakeDB {
	done := []int64{42, 40, 45, 38, 41, 44, 39, 30, 22, 12, 6, 3, 1, 0, 0}
	emailsDone := []int64{5, 5, 6, 4, 5, 5, 6, 5, 5, 4, 5, 5, 6, 5, 4}
	failing := []int64{0, 0, 0, 0, 1, 3, 6, 9, 12, 10, 8, 9, 11, 3, 0}
	db := &fakeDB{
		dash: store.Dashboard{
			Now: fixedNow,
			States: map[store.TaskState]int64{
				store.StateQueued: 1204, store.StateRunning: 0, store.StateCancelling: 3, store.StateFailed: 312,
				store.StateLost: 9, store.StateSucceeded: 90112, store.StateCancelled: 4,
			},
			Queues: []store.QueueActivity{
				{Name: "default", Queued: 1000, Deferred: 20, Running: 0, Cancelling: 3, Failed: 300, Lost: 9, OldestQueuedAt: at(12*time.Minute + 3*time.Second),
					Done: done, Failing: failing},
				{Name: "emails", Queued: 200, Running: 0, Failed: 12, OldestQueuedAt: at(3 * time.Minute), Done: emailsDone, Failing: make([]int64, 15)},
				{Name: "high-priority", Queued: 4, Deferred: 4, Done: make([]int64, 15), Failing: make([]int64, 15)},
			},
			Leases:          store.LeaseCounts{Live: 1, Stale: 1, Inactive: 2},
			StuckCancelling: 3,
			RecentFailures: []store.CallableFailures{
				{CallablePath: "app.tasks.charge_card", Failed: 30, Lost: 2, Retrying: 40},
				{CallablePath: "app.tasks.send_email", Failed: 3},
			},
			Params: store.DashboardParams{LeaseTTL: time.Minute, StuckAfter: 10 * time.Minute, Buckets: 15, FailureWindow: 5 * time.Minute},
		},
		groups: []store.FailureGroup{
			{CallablePath: "app.tasks.charge_card", ExceptionType: "builtins.ValueError", Count: 280, Failed: 280, Queues: []string{"default"},
				LatestID: 1030, LatestAt: at(time.Minute), LatestError: "invalid amount: -5"},
			{CallablePath: "app.tasks.send_email", ExceptionType: "smtplib.SMTPServerDisconnected", Count: 23, Failed: 23, Queues: []string{"emails"},
				LatestID: 1021, LatestAt: at(7 * time.Minute), LatestError: "Connection unexpectedly closed"},
			{CallablePath: "app.tasks.charge_card", ExceptionType: "builtins.Task marked as LOST due to missing heartbeats", Count: 9, Lost: 9,
				Queues: []string{"default"}, LatestID: 1012, LatestAt: at(20 * time.Minute), LatestError: store.LostMessage},
		},
		workers: []store.WorkerSummary{
			{WorkerID: "0b7e-stale", Status: store.LeaseStale, Cancelling: 3, Lease: &store.Lease{WorkerID: "0b7e-stale", Hostname: "worker-2",
				PID: 311, QueueName: "default,emails", StartedAt: fixedNow.Add(-26 * time.Hour), LastHeartbeatAt: fixedNow.Add(-5 * time.Minute), IsActive: true}},
			{WorkerID: "9f1c-live", Status: store.LeaseLive, Lease: &store.Lease{WorkerID: "9f1c-live", Hostname: store.LeaseHostname("worker-1", "pool", 10),
				PID: 4242, QueueName: "high-priority", StartedAt: fixedNow.Add(-2 * time.Hour), LastHeartbeatAt: fixedNow.Add(-3 * time.Second), IsActive: true}},
			{WorkerID: "77aa-old", Status: store.LeaseInactive, Lease: &store.Lease{WorkerID: "77aa-old", Hostname: "worker-1",
				PID: 4100, QueueName: "default", StartedAt: fixedNow.Add(-50 * time.Hour), LastHeartbeatAt: fixedNow.Add(-2 * time.Hour), StoppedAt: at(2 * time.Hour)}},
		},
	}
	tb := "Traceback (most recent call last):\n  File \"/app/tasks.py\", line 88, in charge_card\n    amount = parse_amount(payload)\n" +
		"  File \"/app/money.py\", line 12, in parse_amount\n    raise ValueError(f\"invalid amount: {v}\")\nValueError: invalid amount: -5"
	callables := []string{"app.tasks.charge_card", "app.tasks.send_email", "app.reports.build_daily"}
	queues := []string{"default", "emails", "default"}
	for id := int64(1030); id > 1000; id-- {
		i := int((1030 - id) % 3)
		t := store.Task{
			ID: id, TaskID: "5f0c8d2e-0000-4000-8000-00000000" + itoa(id), CallablePath: callables[i], QueueName: queues[i],
			State: store.StateQueued, AttemptNumber: 1, CreatedAt: fixedNow.Add(-time.Duration(1031-id) * time.Minute),
			ArgsJSON: "[" + itoa(id) + ", \"EUR\"]", KwargsJSON: `{"customer": "c_81", "retry": true}`, RayAddress: sp("auto"),
		}
		switch {
		case id%5 == 0:
			t.State, t.AttemptNumber = store.StateFailed, 3
			t.StartedAt, t.FinishedAt, t.LastHeartbeatAt = at(time.Duration(1031-id)*time.Minute-time.Second), at(time.Duration(1031-id)*time.Minute-2*time.Second), at(time.Duration(1031-id)*time.Minute-2*time.Second)
			t.ClaimedByWorker, t.RayJobID = sp("9f1c-live"), sp("raysubmit_t"+itoa(id)+"_a3_5f2a")
			t.ErrorMessage, t.ErrorTraceback = sp("invalid amount: -5"), sp(tb)
		case id%7 == 0:
			t.State = store.StateSucceeded
			t.StartedAt, t.FinishedAt = at(time.Duration(1031-id)*time.Minute-time.Second), at(time.Duration(1031-id)*time.Minute-3*time.Second)
			t.ClaimedByWorker, t.RayJobID = sp("9f1c-live"), sp("raysubmit_t"+itoa(id)+"_a1_5f2b")
			t.ResultData = sp(`{"charged": 1250, "currency": "EUR"}`)
		case id == 1012:
			t.State = store.StateLost
			t.StartedAt, t.FinishedAt = at(30*time.Minute), at(20*time.Minute)
			t.ClaimedByWorker, t.ErrorMessage = sp("0b7e-stale"), sp(store.LostMessage)
		case id%11 == 0:
			t.State = store.StateCancelling
			t.StartedAt, t.LastHeartbeatAt, t.ClaimedByWorker = at(40*time.Minute), at(35*time.Minute), sp("0b7e-stale")
		}
		db.tasks = append(db.tasks, t)
	}
	return db
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
