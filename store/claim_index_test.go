package store_test

import (
	"strings"
	"testing"

	"github.com/rayctl/rayctl/migrations"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestClaimUsesOptionalIndex: with rayctl_claim_order_idx the planner reads claims from it
// (its expressions must match Claim's ORDER BY), and claim order is unchanged.
func TestClaimUsesOptionalIndex(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	batch := make([]store.NewTask, 5000)
	for i := range batch {
		batch[i] = store.NewTask{CallablePath: "bench.noop", Queue: []string{"default", "urgent", "batch"}[i%3]}
	}
	if _, err := s.EnqueueMany(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, `ANALYZE django_ray_raytaskexecution`); err != nil {
		t.Fatal(err)
	}
	p := store.ClaimParams{WorkerID: "w", Limit: 50}
	plan, err := s.ExplainClaim(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plan, "rayctl_claim_order_idx") {
		t.Fatalf("plan uses an index that does not exist:\n%s", plan)
	}
	states, err := migrations.InspectOptional(ctx, sc.Pool)
	if err != nil || len(states) != 1 || states[0].Present {
		t.Fatalf("before: %+v %v", states, err)
	}
	if err := migrations.CreateOptional(ctx, sc.Pool, states[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, `ANALYZE django_ray_raytaskexecution`); err != nil {
		t.Fatal(err)
	}
	for _, q := range [][]string{nil, {"default"}} {
		p.Queues = q
		plan, err = s.ExplainClaim(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, "Index Scan using rayctl_claim_order_idx") || strings.Contains(plan, "Sort") {
			t.Fatalf("queues %v: claim does not read the index in order:\n%s", q, plan)
		}
	}
	states, _ = migrations.InspectOptional(ctx, sc.Pool)
	if !states[0].Present || !states[0].Valid || states[0].Bytes == 0 {
		t.Fatalf("after: %+v", states)
	}
	got, err := s.Claim(ctx, store.ClaimParams{WorkerID: "w", Limit: 3})
	if err != nil || len(got) != 3 {
		t.Fatal(got, err)
	}
	for _, task := range got {
		if task.QueueName != "urgent" {
			t.Fatalf("claim order changed with the index: got %s first", task.QueueName)
		}
	}
	// migrate validate neither requires nor objects to it
	rep, err := migrations.Validate(ctx, sc.Pool)
	if err != nil || !rep.OK() {
		t.Fatalf("validate with the optional index: %+v %v", rep, err)
	}
	if err := migrations.DropOptional(ctx, sc.Pool, states[0].OptionalIndex); err != nil {
		t.Fatal(err)
	}
	if states, _ = migrations.InspectOptional(ctx, sc.Pool); states[0].Present {
		t.Fatal("drop left the index")
	}
}
