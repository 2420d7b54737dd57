package store_test

import (
	"context"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// BenchmarkClaimComplete measures the claim + batched completion path a worker runs, in
// batches of 50 (results in docs/benchmarks.md).
func BenchmarkClaimComplete(b *testing.B) {
	s, _ := storetest.New(b)
	ctx := context.Background()
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
	ctx := context.Background()
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
