package recovery_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
)

var sigNow = time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)

func ago(d time.Duration) *time.Time { t := sigNow.Add(-d); return &t }

func lease(id, queues string, started time.Duration) store.Lease {
	return store.Lease{WorkerID: id, Hostname: store.LeaseHostname("h1", "rayjob", 0), PID: 7, QueueName: queues,
		StartedAt: sigNow.Add(-started), LastHeartbeatAt: sigNow.Add(-5 * time.Second), IsActive: true}
}

func finding(t *testing.T, fs []recovery.Finding, check string) recovery.Finding {
	t.Helper()
	for _, f := range fs {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no %s finding in %+v", check, fs)
	return recovery.Finding{}
}

// TestEvaluate: each runbook signal, its playbook and its next command, from one snapshot
// (issue 11, findings 1, 2, 4 and 6).
func TestEvaluate(t *testing.T) {
	th := recovery.DefaultThresholds()
	backlog := func(queue string, n int64, oldest time.Duration) store.QueueActivity {
		return store.QueueActivity{Name: queue, Queued: n, OldestQueuedAt: ago(oldest), Done: make([]int64, 15)}
	}
	tests := []struct {
		name     string
		d        store.Dashboard
		check    string
		status   recovery.Status
		playbook int
		summary  []string
		command  string
	}{
		{
			// finding 1: Ray down for 3 minutes: the worker's lease stays fresh, it claims nothing, the
			// rows it holds keep state RUNNING but lose their heartbeat, the queue grows.
			name: "ray connection loss: frozen RUNNING rows and a growing queue",
			d: store.Dashboard{States: map[store.TaskState]int64{store.StateRunning: 4, store.StateQueued: 180},
				Queues: []store.QueueActivity{backlog("default", 180, 3*time.Minute)}, Leases: store.LeaseCounts{Live: 1},
				Workers: []store.WorkerActivity{{Lease: lease("w1", "default", time.Hour), Live: true, Running: 4}}},
			check: "workers", status: recovery.StatusFail, playbook: recovery.PlaybookRayLoss,
			summary: []string{"worker w1: live, no claim or finish for 2m+; its queues (default) have 180 runnable; none of its 4 RUNNING has been heartbeated (h1, rayworker rayjob)"},
			command: "rayctl doctor --ray-address http://ray:8265",
		},
		{
			name: "a worker pointed at a wrong Ray: live and fresh, claims nothing, its queue waits",
			d: store.Dashboard{States: map[store.TaskState]int64{store.StateQueued: 3},
				Queues: []store.QueueActivity{backlog("default", 3, 10*time.Minute)}, Leases: store.LeaseCounts{Live: 1},
				Workers: []store.WorkerActivity{{Lease: lease("w1", "*", time.Hour), Live: true}}},
			check: "workers", status: recovery.StatusFail, playbook: recovery.PlaybookRayLoss,
			summary: []string{"its queues (*) have 3 runnable"},
			command: "rayctl doctor --ray-address http://ray:8265",
		},
		{
			name: "a busy worker (long tasks, fresh heartbeats) is not stalled",
			d: store.Dashboard{States: map[store.TaskState]int64{store.StateQueued: 3, store.StateRunning: 2}, BeatingRunning: 2,
				Queues: []store.QueueActivity{backlog("default", 3, 10*time.Minute)}, Leases: store.LeaseCounts{Live: 1},
				Workers: []store.WorkerActivity{{Lease: lease("w1", "*", time.Hour), Live: true, Running: 2, Beating: 2}}},
			check: "workers", status: recovery.StatusOK, summary: []string{"1 live worker claiming or idle"},
		},
		{
			name: "a worker that just started is not stalled",
			d: store.Dashboard{Queues: []store.QueueActivity{backlog("default", 3, 10*time.Minute)}, Leases: store.LeaseCounts{Live: 1},
				Workers: []store.WorkerActivity{{Lease: lease("w1", "*", 30*time.Second), Live: true}}},
			check: "workers", status: recovery.StatusOK,
		},
		{
			name: "a worker whose attempts fail and retry is finishing (the retry storm's, not Ray's)",
			d: store.Dashboard{Queues: []store.QueueActivity{{Name: "default", Queued: 3, RecentRetries: 3, OldestQueuedAt: ago(10 * time.Minute)}},
				Leases: store.LeaseCounts{Live: 1}, Workers: []store.WorkerActivity{{Lease: lease("w1", "*", time.Hour), Live: true}}},
			check: "workers", status: recovery.StatusOK,
		},
		{
			// finding 4: "1 live worker" while that worker polls another queue
			name: "the only live worker polls another queue",
			d: store.Dashboard{States: map[store.TaskState]int64{store.StateQueued: 1}, Queues: []store.QueueActivity{backlog("emails", 1, time.Second)},
				Leases: store.LeaseCounts{Live: 1}, Workers: []store.WorkerActivity{{Lease: lease("w1", "default", time.Hour), Live: true}}},
			check: "backlog", status: recovery.StatusFail, playbook: recovery.PlaybookBacklog,
			summary: []string{"no live worker polls emails (1 runnable); live workers poll: default"}, command: "rayctl inspect-leases",
		},
		{
			name:  "runnable tasks and no live worker",
			d:     store.Dashboard{States: map[store.TaskState]int64{store.StateQueued: 2}, Queues: []store.QueueActivity{backlog("default", 2, time.Second)}},
			check: "backlog", status: recovery.StatusFail, playbook: recovery.PlaybookBacklog,
			summary: []string{"2 runnable, 0 deferred, 0 running; 0 live workers", "no live worker to run them"}, command: "rayctl inspect-leases",
		},
		{
			// finding 1: rows frozen RUNNING by an outage no longer hide "nothing runs"
			name: "old backlog while the RUNNING rows are frozen",
			d: store.Dashboard{States: map[store.TaskState]int64{store.StateQueued: 2, store.StateRunning: 5}, Queues: []store.QueueActivity{backlog("default", 2, 6*time.Minute)},
				Leases: store.LeaseCounts{Live: 1}, Workers: []store.WorkerActivity{{Lease: lease("w1", "*", time.Hour), Live: true, LastFinish: ago(10 * time.Second)}}},
			check: "backlog", status: recovery.StatusFail, summary: []string{"2 runnable, 0 deferred, 5 running; 1 live worker", "while nothing runs"},
		},
		{
			name: "old backlog while tasks run: behind",
			d: store.Dashboard{States: map[store.TaskState]int64{store.StateQueued: 2, store.StateRunning: 5}, BeatingRunning: 5, Queues: []store.QueueActivity{backlog("default", 2, 6*time.Minute)},
				Leases: store.LeaseCounts{Live: 1}, Workers: []store.WorkerActivity{{Lease: lease("w1", "*", time.Hour), Live: true, Beating: 5}}},
			check: "backlog", status: recovery.StatusWarn, summary: []string{"longer than 5m"}, command: "rayctl stats",
		},
		{
			name:  "stuck RUNNING",
			d:     store.Dashboard{StaleRunning: 2, OrphanedRunning: 1},
			check: "stuck", status: recovery.StatusWarn, playbook: recovery.PlaybookStuck,
			summary: []string{"2 RUNNING without a heartbeat for 5m, 1 RUNNING owned by no live worker"}, command: "rayctl reconcile-jobs --ray-address http://ray:8265",
		},
		{
			// finding 6: the window holds FAILED and LOST rows only; retries are counted apart
			name:  "retry storm",
			d:     store.Dashboard{RecentFailures: []store.CallableFailures{{CallablePath: "app.charge", Failed: 9, Lost: 3, Retrying: 40}, {CallablePath: "app.mail", Failed: 4}}},
			check: "failures", status: recovery.StatusWarn, playbook: recovery.PlaybookRetryStorm,
			summary: []string{"16 FAILED or LOST in the last 5m, most from app.charge (12, 75%): retry storm"},
			command: "rayctl tasks count --by exception --state FAILED --state LOST --newer-than 5m --callable app.charge",
		},
		{
			name:  "retries alone are no storm in the window",
			d:     store.Dashboard{RecentFailures: []store.CallableFailures{{CallablePath: "app.charge", Failed: 2, Retrying: 400}}},
			check: "failures", status: recovery.StatusOK, summary: []string{"2 FAILED or LOST in the last 5m"},
		},
		{
			name:  "orphaned CANCELLING",
			d:     store.Dashboard{StuckCancelling: 3, OrphanedCancelling: 2},
			check: "cancelling", status: recovery.StatusWarn, playbook: recovery.PlaybookCancelling,
			summary: []string{"2 CANCELLING owned by no live worker"}, command: "rayctl cancel --state CANCELLING --dry-run",
		},
		{
			name:  "CANCELLING held by a live but silent owner",
			d:     store.Dashboard{StuckCancelling: 1},
			check: "cancelling", status: recovery.StatusWarn, playbook: recovery.PlaybookCancelling,
			summary: []string{"1 CANCELLING whose live owner has not heartbeated them"}, command: "rayctl inspect-leases",
		},
		{
			name:  "digest-only results",
			d:     store.Dashboard{References: []store.ReferenceCount{{Scheme: "oversize", Count: 2, LatestID: 42}, {Scheme: "resultfs", Count: 1, LatestID: 40}}},
			check: "references", status: recovery.StatusWarn, playbook: recovery.PlaybookReferences,
			summary: []string{"2 results in the last 1h larger than MAX_RESULT_SIZE_BYTES stored as a digest only"}, command: "rayctl tasks show 42",
		},
		{
			name:  "retrievable references are no signal",
			d:     store.Dashboard{References: []store.ReferenceCount{{Scheme: "s3", Count: 5, LatestID: 9}}},
			check: "references", status: recovery.StatusOK, summary: []string{"5 results in the last 1h stored by reference (s3 5)"},
		},
		{
			name:  "stale leases",
			d:     store.Dashboard{Leases: store.LeaseCounts{Live: 1, Stale: 1}},
			check: "leases", status: recovery.StatusWarn, summary: []string{"1 live, 1 stale, 0 inactive"}, command: "rayctl inspect-leases --stale-only",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.d.Now = sigNow
			if tc.d.States == nil {
				tc.d.States = map[store.TaskState]int64{}
			}
			fs := recovery.Evaluate(tc.d, th, recovery.EvalOptions{RayAddress: "http://ray:8265"})
			f := finding(t, fs, tc.check)
			if f.Status != tc.status || (tc.playbook != 0 && f.Playbook != tc.playbook) || (tc.command != "" && f.Command != tc.command) {
				t.Fatalf("got %+v", f)
			}
			text := f.Summary + " " + strings.Join(f.Details, " ")
			for _, want := range tc.summary {
				if !strings.Contains(text, want) {
					t.Errorf("%q lacks %q", text, want)
				}
			}
			signalled := false
			for _, sig := range recovery.Signals(fs) {
				signalled = signalled || sig.Check == tc.check
			}
			if signalled != (tc.status != recovery.StatusOK) {
				t.Errorf("%s signalled %v", tc.check, signalled)
			}
		})
	}
}

// TestSignalsOrder: failures before warnings, then by playbook, a stalled worker before the
// backlog it causes; ok findings are no signal.
func TestSignalsOrder(t *testing.T) {
	fs := []recovery.Finding{{Check: "a", Status: recovery.StatusWarn, Playbook: 2}, {Check: "b", Status: recovery.StatusOK},
		{Check: "c", Status: recovery.StatusFail, Playbook: 3}, {Check: "d", Status: recovery.StatusWarn, Playbook: 1}, {Check: "e", Status: recovery.StatusFail, Playbook: 1},
		{Check: "workers", Status: recovery.StatusFail, Playbook: 4}}
	var got []string
	for _, f := range recovery.Signals(fs) {
		got = append(got, f.Check)
	}
	if strings.Join(got, ",") != "workers,e,c,d,a" {
		t.Fatalf("order %v", got)
	}
}
