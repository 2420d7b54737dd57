package store_test

import (
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

var uuid4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEnqueueSuppliesEveryColumnAsDjango(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	before, _ := s.Now(ctx)
	task, err := s.Enqueue(ctx, store.NewTask{CallablePath: "app.tasks.add", ArgsJSON: "[2, 3]"})
	if err != nil {
		t.Fatal(err)
	}
	if task.State != store.StateQueued || task.QueueName != "default" || task.AttemptNumber != 1 ||
		task.ArgsJSON != "[2, 3]" || task.KwargsJSON != "{}" || task.RayAddress == nil || *task.RayAddress != "auto" {
		t.Fatalf("enqueued row: %+v", task)
	}
	if !uuid4.MatchString(task.TaskID) {
		t.Errorf("task_id %q is not a uuid4", task.TaskID)
	}
	if task.CreatedAt.Before(before.Add(-time.Second)) || task.StartedAt != nil || task.ClaimedByWorker != nil ||
		task.RunAfter != nil || task.TimeoutSeconds != nil || task.RayJobID != nil {
		t.Errorf("unexpected columns: %+v", task)
	}

	at := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	task, err = s.Enqueue(ctx, store.NewTask{CallablePath: "app.tasks.slow", Queue: "batch", KwargsJSON: `{"n": 1}`,
		RunAfter: &at, TimeoutSeconds: storetest.Ptr(int32(30))})
	if err != nil {
		t.Fatal(err)
	}
	if task.QueueName != "batch" || !task.RunAfter.Equal(at) || *task.TimeoutSeconds != 30 || task.KwargsJSON != `{"n": 1}` {
		t.Fatalf("enqueued row: %+v", task)
	}
}

func TestEnqueueRejectsBadInput(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	long := make([]byte, 101)
	for i := range long {
		long[i] = 'q'
	}
	cases := []struct {
		name string
		task store.NewTask
		want string
	}{
		{"no callable", store.NewTask{}, "callable path is empty"},
		{"args not JSON", store.NewTask{CallablePath: "a.b", ArgsJSON: "[1,"}, "args is not valid JSON"},
		{"args not a list", store.NewTask{CallablePath: "a.b", ArgsJSON: `{"a": 1}`}, "args must be a JSON array"},
		{"kwargs not an object", store.NewTask{CallablePath: "a.b", KwargsJSON: `[1]`}, "kwargs must be a JSON object"},
		{"queue too long", store.NewTask{CallablePath: "a.b", Queue: string(long)}, "longer than 100"},
		{"negative timeout", store.NewTask{CallablePath: "a.b", TimeoutSeconds: storetest.Ptr(int32(-1))}, "timeout"},
	}
	for _, tc := range cases {
		_, err := s.Enqueue(ctx, tc.task)
		if !errors.Is(err, store.ErrInvalid) || !regexp.MustCompile(regexp.QuoteMeta(tc.want)).MatchString(err.Error()) {
			t.Errorf("%s: got %v, want ErrInvalid mentioning %q", tc.name, err, tc.want)
		}
	}
	if n, err := s.CountTasks(ctx, store.TaskFilter{}); err != nil || n != 0 {
		t.Fatalf("bad input inserted %d rows (%v)", n, err)
	}
}

func TestEnqueueManyKeepsOrder(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	var batch []store.NewTask
	for i := range 50 {
		batch = append(batch, store.NewTask{CallablePath: fmt.Sprintf("app.tasks.t%02d", i)})
	}
	ids, err := s.EnqueueMany(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 50 {
		t.Fatalf("got %d ids", len(ids))
	}
	for i, id := range ids {
		task, err := s.GetTask(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if task.CallablePath != batch[i].CallablePath {
			t.Fatalf("id %d holds %s, want %s", id, task.CallablePath, batch[i].CallablePath)
		}
	}
	// one bad task refuses the whole batch
	_, err = s.EnqueueMany(ctx, []store.NewTask{{CallablePath: "ok.f"}, {CallablePath: "bad.f", ArgsJSON: "nope"}})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	if n, _ := s.CountTasks(ctx, store.TaskFilter{}); n != 50 {
		t.Fatalf("rows = %d after a refused batch", n)
	}
}

// TestClaimOrder follows django-ray 0.2.0: rows without run_after first, then due run_after
// rows; within each, queue priority, then created_at. Future rows are not claimed.
func TestClaimOrder(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	rows := []store.Task{
		{CallablePath: "deferred.due.high", QueueName: "high-priority", CreatedAt: at(0), RunAfter: storetest.Ago(time.Minute)},
		{CallablePath: "plain.low", QueueName: "low-priority", CreatedAt: at(1)},
		{CallablePath: "plain.default.late", QueueName: "default", CreatedAt: at(5)},
		{CallablePath: "plain.default.early", QueueName: "default", CreatedAt: at(2)},
		{CallablePath: "plain.urgent", QueueName: "urgent", CreatedAt: at(9)},
		{CallablePath: "plain.batch", QueueName: "batch", CreatedAt: at(0)},
		{CallablePath: "deferred.due.default", QueueName: "default", CreatedAt: at(0), RunAfter: storetest.Ago(2 * time.Minute)},
		{CallablePath: "deferred.future", QueueName: "high-priority", CreatedAt: at(0), RunAfter: storetest.Ptr(time.Now().Add(time.Hour))},
		{CallablePath: "not.queued", QueueName: "high-priority", CreatedAt: at(0), State: store.StateFailed},
	}
	for _, r := range rows {
		storetest.Insert(t, s, r)
	}
	want := []string{"plain.urgent", "plain.default.early", "plain.default.late", "plain.batch", "plain.low",
		"deferred.due.high", "deferred.due.default"}

	// one at a time: the order of successive claims
	var got []string
	for {
		claimed, err := s.Claim(ctx, store.ClaimParams{WorkerID: "w1", Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(claimed) == 0 {
			break
		}
		got = append(got, claimed[0].CallablePath)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claim order\n got %v\nwant %v", got, want)
	}
}

func TestClaimBatchFiltersAndFences(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	for _, q := range []string{"default", "default", "emails", "emails", "reports"} {
		storetest.Insert(t, s, store.Task{QueueName: q, RayJobID: storetest.Ptr("raysubmit_old")})
	}
	claimed, err := s.Claim(ctx, store.ClaimParams{WorkerID: "w1", Queues: []string{"emails", "reports"}, Limit: 2, RayAddress: "http://ray:8265"})
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 2 {
		t.Fatalf("claimed %d, want the limit of 2", len(claimed))
	}
	for _, c := range claimed {
		if c.QueueName == "default" {
			t.Errorf("claimed from an unselected queue: %+v", c)
		}
		if c.State != store.StateRunning || *c.ClaimedByWorker != "w1" || c.StartedAt == nil || c.LastHeartbeatAt == nil {
			t.Errorf("claim columns: %+v", c)
		}
		if c.RayJobID != nil {
			t.Errorf("stale ray_job_id %q kept: a later reader would take it for this attempt's job", *c.RayJobID)
		}
		if *c.RayAddress != "http://ray:8265" {
			t.Errorf("ray_address = %q", *c.RayAddress)
		}
	}
	claimed, err = s.Claim(ctx, store.ClaimParams{WorkerID: "w2", Limit: 10, AssignJobIDs: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 3 {
		t.Fatalf("claimed %d of the remaining 3", len(claimed))
	}
	jobRe := regexp.MustCompile(`^raysubmit_t(\d+)_a1_[0-9a-f]+$`)
	seen := map[string]bool{}
	for _, c := range claimed {
		if c.RayJobID == nil || !jobRe.MatchString(*c.RayJobID) || jobRe.FindStringSubmatch(*c.RayJobID)[1] != fmt.Sprint(c.ID) {
			t.Fatalf("assigned job id %v does not follow %s", c.RayJobID, store.JobIDFormat)
		}
		if seen[*c.RayJobID] {
			t.Fatalf("duplicate job id %s", *c.RayJobID)
		}
		seen[*c.RayJobID] = true
	}
}

// TestClaimJobIDsNeverRepeat: a task requeued and claimed again gets a new Ray submission id,
// even with the same attempt number, so it never collides with its old job.
func TestClaimJobIDsNeverRepeat(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	task := storetest.Insert(t, s, store.Task{})
	var ids []string
	for range 3 {
		c, err := s.Claim(ctx, store.ClaimParams{WorkerID: "w", Limit: 1, AssignJobIDs: true})
		if err != nil || len(c) != 1 {
			t.Fatalf("claim: %v %v", c, err)
		}
		ids = append(ids, *c[0].RayJobID)
		if _, err := s.Fail(ctx, c[0].Guard(), store.ErrorInfo{Message: "x"}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Requeue(ctx, []int64{task.ID}, []store.TaskState{store.StateFailed}, store.RequeueOptions{ResetAttempts: true}); err != nil || len(got) != 1 {
			t.Fatalf("requeue: %v %v", got, err)
		}
	}
	if ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Fatalf("job ids repeat across claims: %v", ids)
	}
}

// TestClaimConcurrentExactlyOnce: several claimers on separate connections drain thousands of
// tasks; every task is claimed exactly once.
func TestClaimConcurrentExactlyOnce(t *testing.T) {
	t.Parallel()
	const tasks, claimers = 5000, 8
	s, sc := storetest.New(t, storetest.Options{MaxConns: 2})
	ctx := t.Context()
	batch := make([]store.NewTask, 0, 1000)
	for i := range tasks {
		batch = append(batch, store.NewTask{CallablePath: "bench.noop", Queue: []string{"default", "urgent", "batch"}[i%3]})
		if len(batch) == cap(batch) {
			if _, err := s.EnqueueMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	var mu sync.Mutex
	claimedBy := map[int64]string{}
	var dup []int64
	var wg sync.WaitGroup
	errs := make(chan error, claimers)
	for w := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprintf("worker-%d", w)
			pool, err := pgxpool.New(ctx, sc.DSN) // its own connections, as a separate process would
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			ws := store.New(pool)
			for {
				got, err := ws.Claim(ctx, store.ClaimParams{WorkerID: worker, Limit: 1 + w*3})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				var done []store.Completion
				mu.Lock()
				for _, task := range got {
					if prev, ok := claimedBy[task.ID]; ok {
						dup = append(dup, task.ID)
						t.Errorf("task %d claimed by %s and %s", task.ID, prev, worker)
					}
					claimedBy[task.ID] = worker
					done = append(done, store.Completion{Guard: task.Guard(), Result: store.Result{Data: storetest.Ptr("null")}})
				}
				mu.Unlock()
				applied, err := ws.SucceedMany(ctx, done)
				if err != nil {
					errs <- err
					return
				}
				if len(applied) != len(done) {
					errs <- fmt.Errorf("%s: %d of %d completions applied", worker, len(applied), len(done))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(claimedBy) != tasks || len(dup) > 0 {
		t.Fatalf("claimed %d distinct tasks (want %d), %d duplicates", len(claimedBy), tasks, len(dup))
	}
	st, err := s.Stats(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if st.States[store.StateSucceeded] != tasks || st.Queued != 0 || st.Running != 0 {
		t.Fatalf("after draining: %v", st.States)
	}
	perWorker := map[string]int{}
	for _, w := range claimedBy {
		perWorker[w]++
	}
	if len(perWorker) < 2 {
		t.Errorf("only %d claimers got work: %v", len(perWorker), perWorker)
	}
}

func TestClaimRefusesBadParams(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	if _, err := s.Claim(t.Context(), store.ClaimParams{Limit: 1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("claim without a worker id: %v", err)
	}
	got, err := s.Claim(t.Context(), store.ClaimParams{WorkerID: "w", Limit: 0})
	if err != nil || len(got) != 0 {
		t.Fatalf("claim with no free slots: %v %v", got, err)
	}
}

func TestLeaseQueueLabel(t *testing.T) {
	t.Parallel()
	var many []string
	for i := range 30 {
		many = append(many, fmt.Sprintf("queue-%02d", i))
	}
	cases := []struct {
		in   []string
		want string
	}{
		{nil, "*"},
		{[]string{"default"}, "default"},
		{[]string{"a", "b"}, "a,b"},
	}
	for _, tc := range cases {
		if got := store.LeaseQueueLabel(tc.in); got != tc.want {
			t.Errorf("LeaseQueueLabel(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := store.LeaseQueueLabel(many); len(got) > 100 || got[len(got)-4:] != ",..." {
		t.Errorf("long label %q (%d chars)", got, len(got))
	}
}
