package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

type result struct {
	stdout, stderr string
	code           int
}

// appMu serialises in-process runs: urfave/cli v2 mutates its package-level help and version
// flags while parsing, which races when two apps run at once. A real rayctl process runs one.
var appMu sync.Mutex

// rayctl runs the app in-process with buffers. vars is the whole environment it sees.
func rayctl(t *testing.T, vars map[string]string, stdin string, args ...string) result {
	t.Helper()
	appMu.Lock()
	defer appMu.Unlock()
	var out, errb bytes.Buffer
	e := env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv:     func(k string) string { return vars[k] },
		stdinIsTTY: func() bool { return false },
	}
	code := e.run(context.Background(), append([]string{"rayctl"}, args...))
	return result{out.String(), errb.String(), code}
}

func (r result) expect(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

func migrated(t *testing.T) (*store.Store, map[string]string) {
	t.Helper()
	s, sc := storetest.New(t)
	return s, map[string]string{"DATABASE_URL": sc.DSN}
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	vars := map[string]string{"DATABASE_URL": sc.DSN}

	r := rayctl(t, vars, "", "migrate", "validate").expect(t, exitUnhealthy)
	if !strings.Contains(r.stdout, "pending: 0001_initial") || !strings.Contains(r.stderr, "schema not valid") {
		t.Fatalf("validate before up: %+v", r)
	}
	r = rayctl(t, vars, "", "migrate", "up", "--dry-run").expect(t, exitOK)
	if !strings.Contains(r.stdout, "0001_initial: would apply") || !strings.Contains(r.stdout, `CREATE TABLE "django_ray_raytaskexecution"`) {
		t.Fatalf("dry run output: %s", r.stdout)
	}
	rayctl(t, vars, "", "migrate", "validate").expect(t, exitUnhealthy) // the dry run changed nothing
	r = rayctl(t, vars, "", "migrate", "up").expect(t, exitOK)
	if strings.TrimSpace(r.stdout) != "0001_initial: applied\n0002_rayctl_audit: applied" {
		t.Fatalf("up output: %q", r.stdout)
	}
	r = rayctl(t, vars, "", "migrate", "validate").expect(t, exitOK)
	if !strings.Contains(r.stdout, "schema is current") {
		t.Fatalf("validate output: %q", r.stdout)
	}
	r = rayctl(t, vars, "", "migrate", "status", "-o", "json").expect(t, exitOK)
	var st []struct {
		Version int    `json:"version"`
		Name    string `json:"name"`
		Applied bool   `json:"applied"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 2 || !st[0].Applied || st[0].Name != "initial" || st[1].Name != "rayctl_audit" {
		t.Fatalf("status json %q: %v", r.stdout, err)
	}
	// drift makes validate fail in CI gates
	if _, err := sc.Pool.Exec(context.Background(), `DROP INDEX ray_task_heartbeat_idx`); err != nil {
		t.Fatal(err)
	}
	r = rayctl(t, vars, "", "-o", "json", "migrate", "validate").expect(t, exitUnhealthy)
	var rep struct {
		OK       bool     `json:"ok"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.OK || len(rep.Problems) != 1 {
		t.Fatalf("validate json %q: %v", r.stdout, err)
	}
}

func TestEnqueueCommand(t *testing.T) {
	t.Parallel()
	s, vars := migrated(t)
	ctx := context.Background()

	r := rayctl(t, vars, "", "enqueue", "billing.tasks.charge", "--queue", "payments", "--args", `[2, "x"]`,
		"--kwargs", `{"cents": 100}`, "--timeout", "30", "--run-after", "5m").expect(t, exitOK)
	id, err := strconv.ParseInt(strings.TrimSpace(r.stdout), 10, 64)
	if err != nil {
		t.Fatalf("enqueue printed %q, want the new id", r.stdout)
	}
	task, err := s.GetTask(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if task.CallablePath != "billing.tasks.charge" || task.QueueName != "payments" || task.ArgsJSON != `[2, "x"]` ||
		task.KwargsJSON != `{"cents": 100}` || *task.TimeoutSeconds != 30 || task.RunAfter == nil || task.State != store.StateQueued {
		t.Fatalf("row: %+v", task)
	}

	r = rayctl(t, vars, "", "enqueue", "app.f", "--count", "3", "-o", "json").expect(t, exitOK)
	var many struct{ IDs []int64 }
	if err := json.Unmarshal([]byte(r.stdout), &many); err != nil || len(many.IDs) != 3 {
		t.Fatalf("--count json %q: %v", r.stdout, err)
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"enqueue", "app.f", "--args", "[1,"}, "args is not valid JSON"},
		{[]string{"enqueue", "app.f", "--args", `{"a":1}`}, "args must be a JSON array"},
		{[]string{"enqueue", "app.f", "--kwargs", "[]"}, "kwargs must be a JSON object"},
		{[]string{"enqueue", "app.f", "--run-after", "soon"}, `invalid --run-after "soon"`},
		{[]string{"enqueue", "app.f", "--timeout", "-5"}, "invalid --timeout -5"},
		{[]string{"enqueue", "app.f", "--count", "0"}, "invalid --count 0"},
		{[]string{"enqueue"}, "want exactly one CALLABLE"},
		{[]string{"enqueue", "a.f", "b.g"}, "want exactly one CALLABLE"},
		{[]string{"enqueue", "app.f", "--timeout", "abc"}, "invalid value"},
	}
	for _, b := range bad {
		r := rayctl(t, vars, "", b.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, b.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", b.args, r.code, r.stderr, b.want)
		}
	}
	if n, _ := s.CountTasks(ctx, store.TaskFilter{}); n != 4 {
		t.Fatalf("%d rows: bad input wrote something", n)
	}
}

func TestStatsCommand(t *testing.T) {
	t.Parallel()
	s, vars := migrated(t)
	for _, row := range []store.Task{{QueueName: "default"}, {QueueName: "default"}, {QueueName: "emails", State: store.StateFailed}} {
		storetest.Insert(t, s, row)
	}
	r := rayctl(t, vars, "", "stats", "-o", "json").expect(t, exitOK)
	var st store.Stats
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("stats json: %v\n%s", err, r.stdout)
	}
	if st.Queued != 2 || st.States[store.StateFailed] != 1 || len(st.Queues) != 2 || st.Queues[0].Depth != 2 {
		t.Fatalf("stats: %+v", st)
	}
	// the field names scripts gate on
	for _, key := range []string{`"states"`, `"queued"`, `"running"`, `"oldest_queued_age_seconds"`, `"succeeded_last_minute"`, `"depth"`, `"leases"`} {
		if !strings.Contains(r.stdout, key) {
			t.Errorf("stats json lacks %s", key)
		}
	}
	r = rayctl(t, vars, "", "stats").expect(t, exitOK)
	for _, want := range []string{"QUEUED      2", "FAILED      1", "default", "emails", "leases: 0 live"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stats text lacks %q:\n%s", want, r.stdout)
		}
	}
	r = rayctl(t, vars, "", "stats", "-o", "jsonl").expect(t, exitOK)
	if strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 {
		t.Errorf("jsonl is not one line: %q", r.stdout)
	}
}

// TestBadInput: every way to get it wrong is one clear line and a defined exit code.
func TestBadInput(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	empty := storetest.EmptySchema(t)
	cases := []struct {
		name string
		vars map[string]string
		args []string
		code int
		want string
	}{
		{"malformed DSN", nil, []string{"stats", "--database-url", "postgres://admin:pa55word@db:port/x"}, exitFailed, "invalid database URL postgres://admin:xxxxx@db:port/x"},
		{"unreachable server", map[string]string{"DATABASE_URL": "postgres://admin:pa55word@" + dead + "/x"}, []string{"stats"}, exitFailed, "cannot connect to database " + dead + "/x (user admin): connection refused"},
		{"no tables", map[string]string{"DATABASE_URL": empty.DSN}, []string{"stats"}, exitFailed, "run `rayctl migrate up`"},
		{"no tables, enqueue", map[string]string{"DATABASE_URL": empty.DSN}, []string{"enqueue", "a.b"}, exitFailed, "run `rayctl migrate up`"},
		{"unknown command", nil, []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"unknown flag", nil, []string{"stats", "--frob"}, exitUsage, "flag provided but not defined: -frob"},
		{"unknown subcommand", nil, []string{"migrate", "sideways"}, exitUsage, `unknown subcommand "sideways"`},
		{"bad output format", nil, []string{"stats", "-o", "yaml"}, exitUsage, `invalid --output "yaml"`},
		{"bad lease ttl", nil, []string{"stats", "--lease-ttl", "-1s"}, exitUsage, "invalid --lease-ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rayctl(t, tc.vars, "", tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "rayctl: ") {
				t.Fatalf("stderr %q, want one line containing %q", r.stderr, tc.want)
			}
			if strings.Contains(r.stdout+r.stderr, "pa55word") {
				t.Fatal("password leaked")
			}
			if strings.Contains(r.stderr, "goroutine") || strings.Contains(r.stderr, "pgconn") {
				t.Fatalf("internals leaked: %s", r.stderr)
			}
		})
	}
}

func TestGlobalFlagsEitherSide(t *testing.T) {
	t.Parallel()
	_, vars := migrated(t)
	dsn := vars["DATABASE_URL"]
	for _, args := range [][]string{
		{"--database-url", dsn, "-o", "json", "stats"},
		{"stats", "--database-url", dsn, "-o", "json"},
		{"-o", "json", "stats", "--database-url", dsn},
	} {
		r := rayctl(t, nil, "", args...).expect(t, exitOK)
		if !strings.HasPrefix(r.stdout, "{") {
			t.Errorf("%v: not JSON: %q", args, r.stdout)
		}
	}
	// the flag beats the environment
	r := rayctl(t, map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/x"}, "", "stats", "--database-url", dsn)
	r.expect(t, exitOK)
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	r := rayctl(t, nil, "", "version").expect(t, exitOK)
	if !strings.HasPrefix(r.stdout, "rayctl dev") {
		t.Fatalf("version: %q", r.stdout)
	}
	r = rayctl(t, nil, "", "--help").expect(t, exitOK)
	for _, want := range []string{"EXIT CODES", "migrate", "enqueue", "stats", "--database-url", "nothing matched"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestIntersperse(t *testing.T) {
	t.Parallel()
	app := env{}.newApp()
	cases := []struct{ in, want string }{
		{"rayctl enqueue a.b --args [1]", "rayctl enqueue --args [1] -- a.b"},
		{"rayctl -o json enqueue a.b -q x --yes", "rayctl -o json enqueue -q x --yes -- a.b"},
		{"rayctl migrate up --dry-run", "rayctl migrate up --dry-run"},
		{"rayctl enqueue --args=[1] a.b", "rayctl enqueue --args=[1] -- a.b"},
		{"rayctl enqueue a.b -- --weird", "rayctl enqueue -- a.b --weird"},
	}
	for _, tc := range cases {
		if got := strings.Join(intersperse(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("intersperse(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMigrateIndexes(t *testing.T) {
	t.Parallel()
	_, vars := migrated(t)
	r := rayctl(t, vars, "", "migrate", "indexes").expect(t, exitOK)
	if !strings.Contains(r.stdout, "rayctl_claim_order_idx: absent") || !strings.Contains(r.stdout, "CREATE INDEX CONCURRENTLY IF NOT EXISTS rayctl_claim_order_idx") {
		t.Fatalf("listing: %s", r.stdout)
	}
	rayctl(t, vars, "", "migrate", "indexes", "--apply").expect(t, exitOK)
	r = rayctl(t, vars, "", "migrate", "indexes", "-o", "json").expect(t, exitOK)
	var st []struct {
		Name    string `json:"name"`
		Present bool   `json:"present"`
		Valid   bool   `json:"valid"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 1 || !st[0].Present || !st[0].Valid {
		t.Fatalf("after --apply: %q %v", r.stdout, err)
	}
	rayctl(t, vars, "", "migrate", "validate").expect(t, exitOK)
	r = rayctl(t, vars, "", "migrate", "indexes", "--drop").expect(t, exitOK)
	if !strings.Contains(r.stdout, "absent") {
		t.Fatalf("after --drop: %s", r.stdout)
	}
	r = rayctl(t, vars, "", "migrate", "indexes", "--apply", "--drop").expect(t, exitUsage)
	if !strings.Contains(r.stderr, "exclude each other") {
		t.Fatalf("stderr %q", r.stderr)
	}
}
