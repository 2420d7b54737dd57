package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs/raytest"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// Hostile values anyone who can enqueue a task (or write a lease row) can put in front of an
// operator: an OSC 0 set-title, a screen clear, a C1 CSI, a right-to-left override, a bell.
const (
	osc0Queue   = "q\x1b]0;pwned\x07"
	clearError  = "boom\x1b[2J\x1b[H"
	c1Callable  = "app.tasks.\u009b31mred"
	bidiWorker  = "w-\u202egnp.exe"
	bellHost    = "host\x07\x07"
	escTraceTab = "Traceback\x1b[1A\r\nValueError: \x1b[8mhidden\x7f"
)

// terminalActive reports a character a terminal would act on rather than print (what
// termtext escapes), other than newline and tab.
func terminalActive(s string) (rune, bool) {
	for _, r := range s {
		switch {
		case r < 0x20 && r != '\n' && r != '\t', r >= 0x7f && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return r, true
		}
	}
	return 0, false
}

// TestTextOutputShowsTaskDataInsteadOfObeyingIt runs every command that prints task-derived
// text against rows full of escape sequences: text output shows them escaped (\x1b), JSON
// output carries them unchanged (as JSON escapes, DEL, C1 and bidi included).
func TestTextOutputShowsTaskDataInsteadOfObeyingIt(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	fake := raytest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN, "RAY_ADDRESS": fake.URL, "USER": "oncall"}

	if err := s.UpsertLease(ctx, store.Lease{WorkerID: bidiWorker, Hostname: bellHost, PID: 1, QueueName: osc0Queue}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '10 minutes'`); err != nil {
		t.Fatal(err)
	}
	failed := storetest.Insert(t, s, store.Task{State: store.StateFailed, QueueName: osc0Queue, CallablePath: c1Callable,
		ArgsJSON: `["\u001b]0;args\u0007"]`, KwargsJSON: `{"k": "\u001b[2J"}`, ErrorMessage: storetest.Ptr(clearError),
		ErrorTraceback: storetest.Ptr(escTraceTab), ClaimedByWorker: storetest.Ptr(bidiWorker), FinishedAt: storetest.Ago(time.Minute),
		LastHeartbeatAt: storetest.Ago(time.Minute), ResultData: storetest.Ptr(`"\u001b[2J"`)})
	running := storetest.Insert(t, s, store.Task{State: store.StateRunning, QueueName: osc0Queue, CallablePath: c1Callable,
		ClaimedByWorker: storetest.Ptr(bidiWorker), StartedAt: storetest.Ago(20 * time.Minute), LastHeartbeatAt: storetest.Ago(20 * time.Minute),
		RayJobID: storetest.Ptr("raysubmit_\x1b]0;job\x07"), RayAddress: storetest.Ptr(fake.URL)})
	id := strconv.FormatInt(failed.ID, 10)

	runs := [][]string{
		{"tasks", "ls"},
		{"tasks", "show", id},
		{"tasks", "count", "--by", "queue"},
		{"tasks", "count", "--by", "callable"},
		{"tasks", "count", "--by", "error"},
		{"tasks", "count", "--by", "worker"},
		{"stats"},
		{"requeue", "--id", id, "--dry-run"},
		{"cancel", "--id", strconv.FormatInt(running.ID, 10), "--dry-run"},
		{"inspect-leases"},
		{"reconcile-jobs"},
		{"doctor"},
	}
	for _, args := range runs {
		r := rayctl(t, vars, "", args...)
		all := r.stdout + r.stderr
		if c, bad := terminalActive(all); bad {
			t.Errorf("rayctl %s wrote %U raw to the terminal:\n%s", strings.Join(args, " "), c, all)
		}
		if !strings.Contains(all, `\x1b`) && !strings.Contains(all, `\u009b`) && !strings.Contains(all, `\u202e`) {
			t.Errorf("rayctl %s shows no task data escaped:\n%s", strings.Join(args, " "), all)
		}
	}

	// requeue for real prints a summary, and audit shows it
	r := rayctl(t, vars, "", "requeue", "--id", id, "--yes", "--reason", "INC-\x1b[2J").expect(t, exitOK)
	if c, bad := terminalActive(r.stdout + r.stderr); bad {
		t.Errorf("requeue summary wrote %U raw:\n%s%s", c, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"audit", "ls"}, {"audit", "show", "1"}} {
		r := rayctl(t, vars, "", args...)
		if c, bad := terminalActive(r.stdout + r.stderr); bad {
			t.Errorf("rayctl %s wrote %U raw:\n%s%s", strings.Join(args, " "), c, r.stdout, r.stderr)
		}
	}

	// JSON is unchanged: the values come back exactly as stored, yet nothing in it acts on a
	// terminal (encoding/json leaves DEL, C1 and bidi characters raw; rayctl escapes them)
	r = rayctl(t, vars, "", "tasks", "ls", "-o", "json").expect(t, exitOK)
	if c, bad := terminalActive(strings.ReplaceAll(r.stdout, "\n", "")); bad {
		t.Errorf("tasks ls -o json wrote %U raw:\n%s", c, r.stdout)
	}
	var doc struct {
		Tasks []struct {
			QueueName    string  `json:"queue_name"`
			CallablePath string  `json:"callable_path"`
			ErrorMessage *string `json:"error_message"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Tasks) != 2 {
		t.Fatalf("tasks ls -o json: %v\n%s", err, r.stdout)
	}
	if got := doc.Tasks[1]; got.QueueName != osc0Queue || got.CallablePath != c1Callable {
		t.Errorf("JSON changed the values: %+v", got)
	}
	if !strings.Contains(r.stdout, `\u001b]0;pwned\u0007`) {
		t.Errorf("JSON output is not encoding/json's:\n%s", r.stdout)
	}
}
