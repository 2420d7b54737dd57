package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestNothingMatchedSuggestsNames: a --callable, --queue or --worker typo that matches no
// task gets the near names that exist (exit 3 still, nothing written); a module path gets
// the glob that selects its callables; a value that exists gets no hint.
func TestNothingMatchedSuggestsNames(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN}
	for _, row := range []store.Task{
		{State: store.StateFailed, CallablePath: "app.tasks.charge", QueueName: "payments", ClaimedByWorker: storetest.Ptr("worker-a1")},
		{State: store.StateFailed, CallablePath: "app.tasks.send_email", QueueName: "emails"},
		{State: store.StateSucceeded, CallablePath: "app.reports.build", QueueName: "reports"},
	} {
		storetest.Insert(t, s, row)
	}
	tests := []struct {
		args     []string
		stdout   string // a hint line
		oneLine  string // the error's clause
		noHintAt bool
	}{
		{[]string{"requeue", "--callable", "app.task.charge"}, "hint: no task has --callable app.task.charge; near names that exist: app.tasks.charge",
			"nothing matched the filter; nothing changed; did you mean --callable app.tasks.charge?", false},
		{[]string{"cancel", "--queue", "payment"}, "hint: no task has --queue payment; near names that exist: payments",
			"did you mean --queue payments?", false},
		{[]string{"requeue", "--callable", "app.tasks"}, "it is a module of app.tasks.charge, app.tasks.send_email: --callable 'app.tasks.*' selects them all",
			"did you mean --callable 'app.tasks.*'?", false},
		{[]string{"requeue", "--worker", "worker-a2"}, "hint: no task has --worker worker-a2; near names that exist: worker-a1",
			"did you mean --worker worker-a1?", false},
		// the names exist; the state filter excluded them: no hint
		{[]string{"requeue", "--queue", "payments", "--state", "CANCELLED"}, "", "nothing matched the filter; nothing changed", true},
		// nothing near: no hint
		{[]string{"requeue", "--queue", "zzzzzzzz"}, "", "nothing matched the filter; nothing changed", true},
	}
	for _, tt := range tests {
		before := snapshot(t, sc.Pool)
		r := rayctl(t, vars, "", append(tt.args, "--yes")...).expect(t, exitNoMatch)
		r.oneLine(t, tt.oneLine)
		if tt.noHintAt {
			if strings.Contains(r.stdout, "hint:") || strings.Contains(r.stderr, "did you mean") {
				t.Errorf("%v: unexpected hint:\n%s%s", tt.args, r.stdout, r.stderr)
			}
		} else if !strings.Contains(r.stdout, tt.stdout) {
			t.Errorf("%v: stdout lacks %q:\n%s", tt.args, tt.stdout, r.stdout)
		}
		if snapshot(t, sc.Pool) != before {
			t.Fatalf("%v wrote", tt.args)
		}
	}

	// JSON carries the hints
	r := rayctl(t, vars, "", "requeue", "--queue", "payment", "-o", "json", "--yes").expect(t, exitNoMatch)
	var rep struct {
		Hints []struct {
			Flag, Value string
			Near        []string
		} `json:"hints"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Hints) != 1 || rep.Hints[0].Flag != "queue" ||
		rep.Hints[0].Value != "payment" || len(rep.Hints[0].Near) != 1 || rep.Hints[0].Near[0] != "payments" {
		t.Fatalf("json hints %s: %v", r.stdout, err)
	}
	// listings say it too (and still exit 0)
	r = rayctl(t, vars, "", "tasks", "ls", "--callable", "app.task.charge").expect(t, exitOK)
	if !strings.Contains(r.stdout, "no tasks match\nhint: no task has --callable app.task.charge; near names that exist: app.tasks.charge") {
		t.Errorf("tasks ls:\n%s", r.stdout)
	}
	r = rayctl(t, vars, "", "tasks", "count", "--queue", "Payments").expect(t, exitOK)
	if !strings.Contains(r.stdout, "near names that exist: payments") {
		t.Errorf("tasks count:\n%s", r.stdout)
	}
}

// TestFlagErrors: an unknown flag is quoted as typed with the flags near it; a bad value
// says what the flag wants, never strconv's words; the command is named in full.
func TestFlagErrors(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/x"}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"requeue", "--olderthan", "3d"}, "requeue: unknown flag --olderthan; did you mean --older-than? (see rayctl requeue --help)"},
		{[]string{"requeue", "-olderthan", "3d"}, "requeue: unknown flag -olderthan; did you mean --older-than?"},
		{[]string{"requeue", "--olderthan=3d"}, "requeue: unknown flag --olderthan; did you mean --older-than?"},
		{[]string{"cancel", "--que", "x"}, "cancel: unknown flag --que; did you mean --queue?"},
		{[]string{"tasks", "ls", "--stat", "FAILED"}, "tasks ls: unknown flag --stat; did you mean --state? (see rayctl tasks ls --help)"},
		{[]string{"migrate", "up", "--audti"}, "migrate up: unknown flag --audti; did you mean --audit?"},
		{[]string{"--bogus", "stats"}, "unknown flag --bogus (see rayctl --help)"},
		{[]string{"requeue", "--id", "abc"}, `requeue: invalid --id "abc": want a task's row id, a positive whole number`},
		{[]string{"cancel", "--id", "1,abc"}, `cancel: invalid --id "1,abc": want a task's row id`},
		{[]string{"tasks", "ls", "--limit", "x"}, `tasks ls: invalid --limit "x": want a whole number`},
		{[]string{"tasks", "show", "1", "--lease-ttl", "5"}, `tasks show: invalid --lease-ttl "5": want a duration such as 90s`},
		{[]string{"tasks", "ls", "--state"}, "tasks ls: --state needs a value"},
	}
	for _, tt := range tests {
		r := rayctl(t, vars, "", tt.args...).expect(t, exitUsage)
		r.oneLine(t, tt.want)
		if strings.Contains(r.stderr, "strconv") || strings.Contains(r.stderr, "parse error") {
			t.Errorf("%v: raw parse error: %s", tt.args, r.stderr)
		}
	}
}
