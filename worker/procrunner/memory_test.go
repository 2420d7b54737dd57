package procrunner

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/worker"
	"github.com/rayctl/rayctl/worker/workertest"
)

// captureBound is what a task's captured output may cost: its bounds (32 MiB of stdout, 64
// KiB of stderr) and two chunks of slack.
const captureBound = DefaultMaxStdout + DefaultMaxStderr + 2*maxChunk

// runChatty runs n tasks at once, each printing size bytes of output lines and then its
// result line, and returns the bytes the test process allocated per task while they ran and
// the largest live heap seen meanwhile (sampled every millisecond, without stopping the
// world; a figure for reports, not for assertions).
func runChatty(t testing.TB, r *Runner, n, size int, samplePeak bool) (allocPerTask uint64, peakHeap uint64) {
	tasks := make([]store.Task, n)
	for i := range tasks {
		tasks[i] = task("spew", fmt.Sprintf("[%d]", size), `{}`)
	}
	var stop atomic.Bool
	var peak atomic.Uint64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for samplePeak && !stop.Load() {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	outcomes := make([]lifecycle.Outcome, n)
	var wg sync.WaitGroup
	for i := range tasks {
		if err := r.Start(t.Context(), tasks[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range tasks {
		wg.Add(1)
		go func() { defer wg.Done(); outcomes[i] = waitQuiet(r, tasks[i]) }()
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	stop.Store(true)
	sampler.Wait()
	for i, o := range outcomes {
		if o.Kind != lifecycle.Succeeded || string(o.Result.JSON) != `"spewed"` {
			t.Fatalf("task %d: %+v", i, o.Kind)
		}
		r.Forget(tasks[i])
	}
	return (after.TotalAlloc - before.TotalAlloc) / uint64(n), peak.Load()
}

// waitQuiet polls until the task is done (Events may be consumed by the other waiters).
func waitQuiet(r *Runner, tk store.Task) lifecycle.Outcome {
	for {
		st, _ := r.Poll(context.Background(), []store.Task{tk})
		if st[0].Phase == worker.Done {
			return st[0].Outcome
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCapturedOutputCostsItsBound: tasks printing more than the 32 MiB kept of stdout make
// the worker allocate about that bound per task over their whole run, not several times it
// (the ring used to be grown by doubling, copied out whole, decoded into a string and
// re-encoded: about 5x).
func TestCapturedOutputCostsItsBound(t *testing.T) {
	if testing.Short() {
		t.Skip("prints 2 x 40 MiB")
	}
	r := newRunner(t, nil)
	perTask, _ := runChatty(t, r, 2, 40<<20, false)
	t.Logf("allocated %.1f MiB per task printing 40 MiB (bound %.2f MiB)", float64(perTask)/(1<<20), float64(captureBound)/(1<<20))
	if perTask > captureBound+captureBound/32 {
		t.Fatalf("allocated %d bytes per task, more than its capture bound %d (+3%%)", perTask, captureBound)
	}
}

// BenchmarkChattyTasks is the measurement: 8 tasks at once, each printing 100 MiB.
// It reports the bytes allocated per task and the peak live heap of the run.
//
//	go test -run '^$' -bench ChattyTasks -benchtime 1x ./worker/procrunner/
func BenchmarkChattyTasks(b *testing.B) {
	r, err := New(Config{Entrypoint: workertest.Entrypoint(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(b.Context())
	var perTask, peak uint64
	for b.Loop() {
		perTask, peak = runChatty(b, r, 8, 100<<20, true)
	}
	b.ReportMetric(float64(perTask)/(1<<20), "alloc-MiB/task")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
