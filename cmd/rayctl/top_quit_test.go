package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestTopQuitCancelsWrite (issue 13): quitting rayctl top while a requeue is in flight (its
// UPDATE waits on a row lock another session holds) cancels the write: top exits at once
// rather than when the write's timeout ends, the write rolls back (the row stays FAILED once
// the lock is gone), and stderr says what became of it.
func TestTopQuitCancelsWrite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, sc := storetest.New(t)
	victim := storetest.Insert(t, s, store.Task{CallablePath: "app.flaky", State: store.StateFailed, AttemptNumber: 3,
		ErrorMessage: storetest.Ptr("boom"), StartedAt: storetest.Ago(2 * time.Minute), FinishedAt: storetest.Ago(time.Minute)})

	locker, err := pgx.Connect(ctx, sc.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close(context.Background()) })
	lock, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, "SELECT 1 FROM django_ray_raytaskexecution WHERE id = $1 FOR UPDATE", victim.ID); err != nil {
		t.Fatal(err)
	}
	// waiters counts the sessions waiting on the lock
	waiters := func() int {
		t.Helper()
		var n int
		if err := sc.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
			locker.PgConn().PID()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	tt := startTop(t, sc.DSN, 100, 30)
	tt.keys("2")
	tt.waitFor(fmt.Sprint(victim.ID))
	tt.keys("R")
	tt.waitFor("Requeue 1 task?")
	tt.keys("y")
	tt.waitFor("requeue: working on 1 task")
	for deadline := time.Now().Add(20 * time.Second); waiters() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the requeue never waited on the lock; screen:\n%s", tt.screen())
		}
	}

	tt.quit() // fails unless top exits 0 within 20 s: the write's own timeout is 5 minutes
	if n := waiters(); n != 0 {
		t.Fatalf("%d sessions still wait on the lock after top exited", n)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rowStates(t, s, victim.ID)[victim.ID]; got != store.StateFailed {
		t.Fatalf("task %d is %s: the cancelled requeue was not rolled back", victim.ID, got)
	}
	want := fmt.Sprintf("rayctl top: the requeue of task %d was cancelled as top ended: 0 changed before it", victim.ID)
	if sc := tt.screen(); !strings.Contains(strings.Join(strings.Fields(sc), " "), want) {
		t.Fatalf("stderr does not say %q; screen:\n%s", want, sc)
	}
}
