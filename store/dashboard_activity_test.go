package store_test

import (
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestDashboardActivity: what the snapshot tells about each active worker (claims, finishes,
// task heartbeats within StallAfter), orphaned CANCELLING apart from silent ones, RUNNING rows
// still heartbeated, retries (all of them, and the recent ones per queue) and results stored
// by reference: what recovery.Evaluate's signals read.
func TestDashboardActivity(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	for _, l := range []store.Lease{
		{WorkerID: "busy", Hostname: "h", QueueName: "default"},
		{WorkerID: "frozen", Hostname: store.LeaseHostname("h2", "rayjob", 0), QueueName: "default"},
		{WorkerID: "idle", Hostname: "h3", QueueName: "*"},
		{WorkerID: "gone", Hostname: "h4", QueueName: "*"},
	} {
		if err := s.UpsertLease(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET started_at = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET is_active = false WHERE worker_id = 'gone'`); err != nil {
		t.Fatal(err)
	}
	w := storetest.Ptr[string]
	storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: w("busy"), StartedAt: storetest.Ago(10 * time.Minute), LastHeartbeatAt: storetest.Ago(5 * time.Second)})
	storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ClaimedByWorker: w("busy"), StartedAt: storetest.Ago(90 * time.Second),
		FinishedAt: storetest.Ago(30 * time.Second), LastHeartbeatAt: storetest.Ago(30 * time.Second), ResultReference: w("oversize://sha256/ab?bytes=9")})
	storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: w("frozen"), StartedAt: storetest.Ago(time.Hour), LastHeartbeatAt: storetest.Ago(3 * time.Minute)})
	storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: w("gone"), StartedAt: storetest.Ago(time.Hour), LastHeartbeatAt: storetest.Ago(time.Hour)})
	storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: w("busy"), StartedAt: storetest.Ago(time.Hour), LastHeartbeatAt: storetest.Ago(time.Hour)})
	// a retry that failed lately (due in 30 s) and one whose run_after passed long ago
	storetest.Insert(t, s, store.Task{QueueName: "default", AttemptNumber: 2, ErrorMessage: w("boom"), RunAfter: storetest.Ptr(time.Now().Add(30 * time.Second))})
	storetest.Insert(t, s, store.Task{QueueName: "default", AttemptNumber: 2, ErrorMessage: w("boom"), RunAfter: storetest.Ago(time.Hour)})

	d, err := s.Dashboard(ctx, withThresholds(store.DashboardParams{StuckAfter: 5 * time.Minute, StallAfter: 2 * time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	if d.OrphanedCancelling != 1 || d.StuckCancelling != 2 || d.BeatingRunning != 1 {
		t.Fatalf("orphaned cancelling %d, stuck cancelling %d, beating %d", d.OrphanedCancelling, d.StuckCancelling, d.BeatingRunning)
	}
	byID := map[string]store.WorkerActivity{}
	for _, a := range d.Workers {
		byID[a.Lease.WorkerID] = a
	}
	if len(byID) != 3 || byID["gone"].Lease.WorkerID != "" {
		t.Fatalf("workers %+v (only the active leases)", d.Workers)
	}
	busy, frozen, idle := byID["busy"], byID["frozen"], byID["idle"]
	if !busy.Live || busy.Running != 1 || busy.Beating != 1 || busy.Cancelling != 1 || busy.LastFinish == nil || busy.LastClaim == nil {
		t.Errorf("busy %+v", busy)
	}
	if !frozen.Live || frozen.Running != 1 || frozen.Beating != 0 || frozen.LastClaim != nil || frozen.LastFinish != nil || frozen.Lease.Mode() != "rayjob" {
		t.Errorf("frozen %+v (claimed an hour ago: no claim within the window)", frozen)
	}
	if !idle.Live || idle.Running != 0 || idle.LastClaim != nil || idle.LastFinish != nil {
		t.Errorf("idle %+v", idle)
	}
	var q store.QueueActivity
	for _, qa := range d.Queues {
		if qa.Name == "default" {
			q = qa
		}
	}
	if q.RecentRetries != 1 || q.Deferred != 1 {
		t.Errorf("default queue %+v", q)
	}
	if len(d.RecentFailures) != 1 || d.RecentFailures[0].Retrying != 2 || d.RecentFailures[0].Total() != 0 {
		t.Errorf("recent failures %+v (every retry waiting, none in the window)", d.RecentFailures)
	}
	if len(d.References) != 1 || d.References[0].Scheme != "oversize" || d.References[0].Count != 1 || d.References[0].LatestID == 0 {
		t.Errorf("references %+v", d.References)
	}
}
