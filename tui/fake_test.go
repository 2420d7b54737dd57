package tui

import (
	"context"
	"errors"
	"fmt"
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
	mu        sync.Mutex
	dash      store.Dashboard
	tasks     []store.Task // newest (highest id) first
	groups    []store.FailureGroup
	workers   []store.WorkerSummary
	err       error // when set, every read fails with it
	filters   []store.TaskFilter
	applied   []Proposal
	previews  int
	reconcile *Proposal // what the fake reconcile plans; nil: no Ray
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

func (s fakeSource) ListTaskIDs(ctx context.Context, f store.TaskFilter) ([]int64, int64, error) {
	limit := f.Limit
	f.Limit = 0
	rows, err := s.ListTasks(ctx, f)
	var ids []int64
	for _, t := range rows {
		if limit > 0 && len(ids) == limit {
			break
		}
		ids = append(ids, t.ID)
	}
	return ids, int64(len(rows)), err
}

// fakeMoves is what each action does to a row in each state (cancel finalizes every
// CANCELLING row: the fake's owners are gone).
var fakeMoves = map[ActionKind]map[store.TaskState]store.TaskState{
	ActionRequeue: {store.StateFailed: store.StateQueued, store.StateLost: store.StateQueued, store.StateCancelled: store.StateQueued},
	ActionCancel:  {store.StateQueued: store.StateCancelled, store.StateRunning: store.StateCancelling, store.StateCancelling: store.StateCancelled},
}

// fakePlan is the fake's plan: the rows and the states they were planned in.
type fakePlan map[int64]store.TaskState

func (a fakeActions) Plan(_ context.Context, r Request) (Proposal, error) {
	a.db.mu.Lock()
	defer a.db.mu.Unlock()
	a.db.previews++
	p := Proposal{Request: r}
	if r.Kind == ActionReconcile {
		if a.db.reconcile == nil {
			return p, errors.New("reconcile compares tasks with Ray: start rayctl top with --ray-address")
		}
		return *a.db.reconcile, nil
	}
	plan := fakePlan{}
	counts := map[store.TaskState]int{}
	left := map[store.TaskState]int{}
	for _, t := range a.db.tasks {
		chosen := slices.Contains(r.IDs, t.ID) || (len(r.IDs) == 0 && slices.Contains(r.States, t.State))
		if !chosen {
			continue
		}
		if _, ok := fakeMoves[r.Kind][t.State]; ok {
			plan[t.ID] = t.State
			counts[t.State]++
		} else {
			left[t.State]++
		}
	}
	for _, st := range store.AllStates {
		if counts[st] > 0 {
			p.Changes = append(p.Changes, Change{From: st, To: fakeMoves[r.Kind][st], N: counts[st]})
		}
		if left[st] > 0 {
			p.Left = append(p.Left, fmt.Sprintf("%d %s: not %sable", left[st], st, strings.ToLower(r.Kind.Verb())))
		}
	}
	p.Total, p.Plan = len(plan), plan
	return p, nil
}

func (a fakeActions) Apply(_ context.Context, p Proposal) (Outcome, error) {
	a.db.mu.Lock()
	defer a.db.mu.Unlock()
	a.db.applied = append(a.db.applied, p)
	var o Outcome
	plan, _ := p.Plan.(fakePlan)
	for i, t := range a.db.tasks {
		if from, ok := plan[t.ID]; ok {
			if t.State != from {
				o.Skipped++
				continue
			}
			a.db.tasks[i].State = fakeMoves[p.Request.Kind][from]
			if p.Request.ResetAttempts {
				a.db.tasks[i].AttemptNumber = 1
			}
			o.Applied++
		}
	}
	return o, nil
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
			Leases:             store.LeaseCounts{Live: 1, Stale: 1, Inactive: 2},
			StuckCancelling:    3,
			OrphanedCancelling: 3,
			Workers: []store.WorkerActivity{
				{Lease: store.Lease{WorkerID: "0b7e-stale", Hostname: "worker-2", PID: 311, QueueName: "default,emails", StartedAt: fixedNow.Add(-26 * time.Hour),
					LastHeartbeatAt: fixedNow.Add(-5 * time.Minute), IsActive: true}, Cancelling: 3},
				{Lease: store.Lease{WorkerID: "9f1c-live", Hostname: store.LeaseHostname("worker-1", "pool", 10), PID: 4242, QueueName: "high-priority",
					StartedAt: fixedNow.Add(-2 * time.Hour), LastHeartbeatAt: fixedNow.Add(-3 * time.Second), IsActive: true}, Live: true, LastFinish: at(40 * time.Second)},
			},
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
