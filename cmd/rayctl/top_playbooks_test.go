package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

var (
	topBinOnce sync.Once
	topBin     string
	topBinErr  error
)

// rayctlBinary builds the real rayctl once per test run.
func rayctlBinary(t *testing.T) string {
	t.Helper()
	topBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rayctl-top-bin-")
		if err != nil {
			topBinErr = err
			return
		}
		topBin = filepath.Join(dir, "rayctl")
		if out, err := exec.Command("go", "build", "-o", topBin, ".").CombinedOutput(); err != nil {
			topBinErr = fmt.Errorf("build rayctl: %v\n%s", err, out)
		}
	})
	if topBinErr != nil {
		t.Fatal(topBinErr)
	}
	return topBin
}

// topTerm is `rayctl top` running in a tmux terminal.
type topTerm struct {
	t    *testing.T
	tmux string
	sock string
	exit string
}

// startTop runs the real rayctl top in a tmux terminal of w x h against the database (and
// the args), with colour off, and stops it when the test ends.
func startTop(t *testing.T, dsn string, w, h int, args ...string) *topTerm {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is required for the terminal tests (apt-get install tmux)")
		}
		t.Skip("tmux not installed")
	}
	bin := rayctlBinary(t)
	dir := t.TempDir()
	tt := &topTerm{t: t, tmux: tmux, sock: fmt.Sprintf("rayctl-top-%d-%s", os.Getpid(), strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())),
		exit: filepath.Join(dir, "exit")}
	quoted := []string{fmt.Sprintf("%q", bin), "top", "--database-url", fmt.Sprintf("%q", dsn), "--log-file", fmt.Sprintf("%q", filepath.Join(dir, "top.log")), "--refresh", "1s"}
	for _, a := range args {
		quoted = append(quoted, fmt.Sprintf("%q", a))
	}
	script := strings.Join(quoted, " ") + fmt.Sprintf("; echo $? > %q; sleep 60", tt.exit)
	tt.run("-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h),
		"env", "TERM=xterm-256color", "NO_COLOR=1", "RAY_ADDRESS=", "sh", "-c", script)
	t.Cleanup(func() { _ = exec.Command(tmux, "-L", tt.sock, "kill-server").Run() })
	return tt
}

func (tt *topTerm) run(args ...string) string {
	tt.t.Helper()
	out, err := exec.Command(tt.tmux, append([]string{"-L", tt.sock}, args...)...).CombinedOutput()
	if err != nil {
		tt.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (tt *topTerm) screen() string { return tt.run("capture-pane", "-p", "-t", "top") }

// waitFor waits until the screen shows every one of want, and returns it.
func (tt *topTerm) waitFor(want ...string) string {
	tt.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sc := tt.screen()
		missing := slices.IndexFunc(want, func(w string) bool { return !strings.Contains(sc, w) })
		if missing < 0 {
			return sc
		}
		if time.Now().After(deadline) {
			tt.t.Fatalf("the screen never showed %q; it shows:\n%s", want[missing], sc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone waits until the screen no longer shows what.
func (tt *topTerm) waitGone(what string) {
	tt.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Contains(tt.screen(), what) {
		if time.Now().After(deadline) {
			tt.t.Fatalf("the screen still shows %q:\n%s", what, tt.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (tt *topTerm) keys(k ...string) { tt.run(append([]string{"send-keys", "-t", "top"}, k...)...) }

// command types a `:` command and runs it.
func (tt *topTerm) command(c string) {
	tt.keys(":")
	tt.run("send-keys", "-t", "top", "-l", c)
	tt.keys("Enter")
}

// quit leaves top with :q and checks it exits 0.
func (tt *topTerm) quit() {
	tt.t.Helper()
	tt.command("q")
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(tt.exit)
		if err == nil && strings.TrimSpace(string(b)) != "" {
			if code := strings.TrimSpace(string(b)); code != "0" {
				tt.t.Fatalf("rayctl top exited %s; screen:\n%s", code, tt.screen())
			}
			return
		}
		if time.Now().After(deadline) {
			tt.t.Fatalf("rayctl top did not exit on :q; screen:\n%s", tt.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rowStates reads the rows' states.
func rowStates(t *testing.T, s *store.Store, ids ...int64) map[int64]store.TaskState {
	t.Helper()
	out := map[int64]store.TaskState{}
	for _, id := range ids {
		tk, err := s.GetTask(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = tk.State
	}
	return out
}

func liveLease(t *testing.T, s *store.Store, id, queues string) {
	t.Helper()
	if err := s.UpsertLease(t.Context(), store.Lease{WorkerID: id, Hostname: store.LeaseHostname("host-"+id, "rayjob", 0), PID: 7, QueueName: queues}); err != nil {
		t.Fatal(err)
	}
}

// TestTopPlaybooks stages each runbook incident in a real database and drives the real
// rayctl binary's top in a terminal (tmux, 120x40): top names the playbook in its banner,
// shows the next command, and the fix made from top changes exactly the rows its dialog
// promised (issue 11, "Must show").
func TestTopPlaybooks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	fails := func(s *store.Store, callable string, n int) []int64 {
		var ids []int64
		for range n {
			ids = append(ids, storetest.Insert(t, s, store.Task{CallablePath: callable, State: store.StateFailed, AttemptNumber: 3,
				StartedAt: storetest.Ago(2 * time.Minute), FinishedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Minute),
				ErrorMessage: storetest.Ptr("card declined"), ErrorTraceback: storetest.Ptr("Traceback (most recent call last):\nValueError: card declined")}).ID)
		}
		return ids
	}

	t.Run("1 queue backlog", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		liveLease(t, s, "w-default", "default")
		var waiting []int64
		for i := range 4 {
			waiting = append(waiting, storetest.Insert(t, s, store.Task{QueueName: "emails", CallablePath: "app.mail", CreatedAt: time.Now().Add(-time.Duration(i) * time.Minute)}).ID)
		}
		tt := startTop(t, sc.DSN, 120, 40)
		tt.waitFor("!! playbook 1 queue backlog: no live worker polls emails (4 runnable); live workers poll: default",
			"next: rayctl inspect-leases")
		tt.keys("4")
		tt.waitFor("w-default", "default") // the QUEUES column shows why
		// the fix is the workers' (their --queue flags): a worker polling emails clears it
		liveLease(t, s, "w-emails", "emails")
		tt.waitGone("playbook 1 queue backlog")
		for id, st := range rowStates(t, s, waiting...) {
			if st != store.StateQueued {
				t.Errorf("task %d changed to %s", id, st)
			}
		}
		tt.quit()
	})

	t.Run("2 stuck RUNNING", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		ray := raytest.New(t)
		liveLease(t, s, "w-live", "*")
		stuck := func(job string) int64 {
			return storetest.Insert(t, s, store.Task{State: store.StateRunning, CallablePath: "app.report", ClaimedByWorker: storetest.Ptr("w-dead"),
				StartedAt: storetest.Ago(time.Hour), LastHeartbeatAt: storetest.Ago(time.Hour), RayJobID: storetest.Ptr(job)}).ID
		}
		a, b := stuck("raysubmit_forgotten_a"), stuck("raysubmit_forgotten_b")
		healthy := storetest.Insert(t, s, store.Task{State: store.StateRunning, CallablePath: "app.report", ClaimedByWorker: storetest.Ptr("w-live"),
			StartedAt: storetest.Ago(time.Minute), LastHeartbeatAt: storetest.Ago(time.Second), RayJobID: storetest.Ptr("raysubmit_running")})
		ray.AddJob(raytest.Job{SubmissionID: "raysubmit_running", Status: raytest.Running})
		tt := startTop(t, sc.DSN, 120, 40, "--ray-address", ray.URL)
		tt.waitFor("!! playbook 2 stuck RUNNING: 2 RUNNING without a heartbeat for 5m, 2 RUNNING owned by no live worker",
			"next: rayctl reconcile-jobs --ray-address "+ray.URL, "in top: :reconcile")
		tt.command("reconcile")
		tt.waitFor("Apply 2 reconcile actions?", "2 RUNNING → QUEUED (unknown to Ray, owner dead)", "1 consistent")
		if got := rowStates(t, s, a, b); got[a] != store.StateRunning || got[b] != store.StateRunning {
			t.Fatalf("changed before the confirmation: %v", got)
		}
		tt.keys("y")
		tt.waitFor("reconciled 2 of RUNNING and CANCELLING tasks with a Ray job")
		if got := rowStates(t, s, a, b, healthy.ID); got[a] != store.StateQueued || got[b] != store.StateQueued || got[healthy.ID] != store.StateRunning {
			t.Fatalf("after reconcile: %v", got)
		}
		tt.waitGone("playbook 2 stuck RUNNING")
		tt.quit()
	})

	t.Run("3 retry storm", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		liveLease(t, s, "w-live", "*")
		storm := fails(s, "app.charge", 12)
		other := fails(s, "app.mail", 1)
		tt := startTop(t, sc.DSN, 120, 40)
		tt.waitFor("!! playbook 3 retry storm: 13 FAILED or LOST in the last 5m, most from app.charge (12, 92%): retry storm",
			"next: rayctl tasks count --by exception --state FAILED --state LOST --newer-than 5m --callable app.charge")
		tt.keys("3")
		tt.waitFor("app.charge", "builtins.ValueError")
		tt.keys("R")
		tt.waitFor("Requeue 12 tasks?", "12 FAILED → QUEUED", "attempt_number kept, as rayctl requeue")
		tt.keys("y")
		tt.waitFor("requeued 12 of failure group app.charge / builtins.ValueError")
		for id, st := range rowStates(t, s, storm...) {
			if st != store.StateQueued {
				t.Errorf("storm task %d is %s", id, st)
			}
		}
		if st := rowStates(t, s, other...)[other[0]]; st != store.StateFailed {
			t.Errorf("another callable's task was requeued: %s", st)
		}
		tk, _ := s.GetTask(ctx, storm[0])
		if tk.AttemptNumber != 3 {
			t.Errorf("attempt_number %d, want kept at 3", tk.AttemptNumber)
		}
		tt.quit()
	})

	t.Run("4 Ray connection loss", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		// a rayjob worker whose Ray is gone: its lease stays fresh, it claims nothing, the rows it
		// holds are no longer heartbeated, its queue grows
		liveLease(t, s, "w-cut-off", "default")
		if _, err := storetest.DB(s).Exec(ctx, `UPDATE django_ray_taskworkerlease SET started_at = now() - interval '1 hour'`); err != nil {
			t.Fatal(err)
		}
		frozen := storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w-cut-off"),
			StartedAt: storetest.Ago(4 * time.Minute), LastHeartbeatAt: storetest.Ago(3 * time.Minute), RayJobID: storetest.Ptr("raysubmit_x")})
		for i := range 3 {
			storetest.Insert(t, s, store.Task{QueueName: "default", CreatedAt: time.Now().Add(-time.Duration(150+i) * time.Second)})
		}
		tt := startTop(t, sc.DSN, 120, 40, "--ray-address", "http://ray-head:8265")
		tt.waitFor("!! playbook 4 Ray connection loss: worker w-cut-off: live, no claim or finish for 2m+; its queues (default) have 3",
			"next: rayctl doctor --ray-address http://ray-head:8265")
		tt.keys("4")
		tt.waitFor("!!stalled", "w-cut-off")
		// Ray is back: the worker heartbeats its task and claims again
		if _, err := storetest.DB(s).Exec(ctx, `UPDATE django_ray_raytaskexecution SET last_heartbeat_at = now() WHERE id = $1`, frozen.ID); err != nil {
			t.Fatal(err)
		}
		tt.waitGone("playbook 4 Ray connection loss")
		tt.quit()
	})

	t.Run("5 stuck CANCELLING", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		liveLease(t, s, "w-live", "*")
		orphan := func() int64 {
			return storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("w-gone"), StartedAt: storetest.Ago(time.Hour),
				LastHeartbeatAt: storetest.Ago(time.Hour)}).ID
		}
		a, b := orphan(), orphan()
		owned := storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("w-live"), StartedAt: storetest.Ago(time.Minute),
			LastHeartbeatAt: storetest.Ago(time.Second)})
		tt := startTop(t, sc.DSN, 120, 40)
		tt.waitFor("!! playbook 5 stuck CANCELLING: 2 CANCELLING owned by no live worker",
			"next: rayctl cancel --state CANCELLING --dry-run · in top: :finalize")
		tt.command("finalize")
		tt.waitFor("Cancel 2 tasks?", "2 CANCELLING → CANCELLED (its worker is gone)")
		tt.keys("y")
		tt.waitFor("cancelled 2 of CANCELLING tasks whose worker is gone")
		if got := rowStates(t, s, a, b, owned.ID); got[a] != store.StateCancelled || got[b] != store.StateCancelled || got[owned.ID] != store.StateCancelling {
			t.Fatalf("after finalize: %v", got)
		}
		tt.waitGone("playbook 5 stuck CANCELLING")
		tt.quit()
	})

	t.Run("6 oversized results", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		liveLease(t, s, "w-live", "*")
		big := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, CallablePath: "app.export", ClaimedByWorker: storetest.Ptr("w-live"),
			StartedAt: storetest.Ago(time.Minute), FinishedAt: storetest.Ago(30 * time.Second), LastHeartbeatAt: storetest.Ago(30 * time.Second),
			ResultReference: storetest.Ptr("oversize://sha256/" + strings.Repeat("ab", 32) + "?bytes=2097152")})
		tt := startTop(t, sc.DSN, 120, 40)
		tt.waitFor("!! playbook 6 oversized results: 1 result in the last 1h larger than MAX_RESULT_SIZE_BYTES stored as a digest only",
			fmt.Sprintf("next: rayctl tasks show %d · in top: :task %d", big.ID, big.ID))
		tt.command(fmt.Sprintf("task %d", big.ID))
		tt.waitFor("result ref", "digest only: larger than MAX_RESULT_SIZE_BYTES and stored nowhere")
		// the fix is the result store's configuration: nothing is written
		if st := rowStates(t, s, big.ID)[big.ID]; st != store.StateSucceeded {
			t.Fatalf("task changed to %s", st)
		}
		tt.quit()
	})
}
