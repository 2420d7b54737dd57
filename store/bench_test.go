package store_test

import (
	"testing"

	"github.com/rayctl/rayctl/migrations"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// BenchmarkClaimComplete measures the claim + batched completion path a worker runs, in
// batches of 50 (results in docs/benchmarks.md).
func BenchmarkClaimComplete(b *testing.B) {
	s, _ := storetest.New(b)
	ctx := b.Context()
	batch := make([]store.NewTask, 1000)
	for i := range batch {
		batch[i] = store.NewTask{CallablePath: "bench.noop"}
	}
	for n := 0; n < b.N; n += len(batch) {
		if _, err := s.EnqueueMany(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	done := 0
	for done < b.N {
		tasks, err := s.Claim(ctx, store.ClaimParams{WorkerID: "bench", Limit: 50})
		if err != nil {
			b.Fatal(err)
		}
		cs := make([]store.Completion, len(tasks))
		res := "null"
		for i, t := range tasks {
			cs[i] = store.Completion{Guard: t.Guard(), Result: store.Result{Data: &res}}
		}
		if _, err := s.SucceedMany(ctx, cs); err != nil {
			b.Fatal(err)
		}
		done += len(tasks)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkEnqueueMany measures batched inserts of 1000 rows.
func BenchmarkEnqueueMany(b *testing.B) {
	s, _ := storetest.New(b)
	ctx := b.Context()
	batch := make([]store.NewTask, 1000)
	for i := range batch {
		batch[i] = store.NewTask{CallablePath: "bench.noop", ArgsJSON: "[1, 2]"}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.EnqueueMany(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkClaimSingleRowParallel measures single-row claims (LIMIT 1 ... FOR UPDATE SKIP
// LOCKED) plus a single-row completion from 8 concurrent claimers (the anchors' floor harness),
// over a backlog of 20,000 QUEUED rows, without and with rayctl_claim_order_idx.
func BenchmarkClaimSingleRowParallel(b *testing.B) {
	for _, indexed := range []bool{false, true} {
		name := "django-schema"
		if indexed {
			name = "with-claim-index"
		}
		b.Run(name, func(b *testing.B) { benchClaimParallel(b, indexed) })
	}
}

func benchClaimParallel(b *testing.B, indexed bool) {
	s, sc := storetest.New(b, storetest.Options{MaxConns: 8})
	ctx := b.Context()
	batch := make([]store.NewTask, 1000)
	for i := range batch {
		batch[i] = store.NewTask{CallablePath: "bench.noop", Queue: []string{"default", "urgent", "batch"}[i%3]}
	}
	for n := 0; n < b.N+20000; n += len(batch) {
		if _, err := s.EnqueueMany(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if indexed {
		states, err := migrations.InspectOptional(ctx, sc.Pool)
		if err != nil {
			b.Fatal(err)
		}
		for _, st := range states {
			if err := migrations.CreateOptional(ctx, sc.Pool, st); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := sc.Pool.Exec(ctx, `ANALYZE django_ray_raytaskexecution`); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(4) // 8 goroutines on the 2-core machine
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		worker := store.NewUUID()
		res := "null"
		for pb.Next() {
			tasks, err := s.Claim(ctx, store.ClaimParams{WorkerID: worker, Limit: 1})
			if err != nil {
				b.Error(err)
				return
			}
			for _, t := range tasks {
				if _, err := s.Succeed(ctx, t.Guard(), store.Result{Data: &res}); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
}
