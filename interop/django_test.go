package interop_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker/workertest"
)

// django is the Python side: the venv's python and this repo's python/ directory (manage.py,
// rayctl_testapp).
type django struct {
	python string
	dir    string
}

func needDjango(t *testing.T) django {
	t.Helper()
	storetest.DSN(t) // a database first: skips (or fails under CI) the same way
	py := os.Getenv("RAYCTL_PYTHON")
	if py == "" {
		msg := "RAYCTL_PYTHON is not set: the Django interop tier needs the venv from scripts/pyenv.sh (scripts/test.sh with no arguments sets it up)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true, so this is a failure, not a skip")
		}
		t.Skip(msg)
	}
	dir := os.Getenv("RAYCTL_PYTHONPATH")
	if dir == "" {
		var err error
		if dir, err = filepath.Abs("../python"); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(py, "-c", "import django, django_ray, importlib.metadata as m; print(django.get_version(), m.version('django-ray'))").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import Django and django-ray: %v\n%s", py, err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, " 0.2.0") {
		t.Fatalf("the venv has Django/django-ray %q; the interop tier targets django-ray 0.2.0", got)
	}
	return django{python: py, dir: dir}
}

// env is the environment of a Django command or a Go binary for one schema: the test
// process's, DATABASE_URL for the schema, the interop settings, and extra.
func (d django) env(dsn string, extra ...string) []string {
	env := append(os.Environ(), "DATABASE_URL="+dsn, "DJANGO_SETTINGS_MODULE=rayctl_testapp.interop_settings",
		"PYTHONPATH="+d.dir, "PYTHONDONTWRITEBYTECODE=1")
	return append(env, extra...)
}

// run runs the venv's python with args in python/ and returns its stdout; a non-zero exit
// fails the test with both streams.
func (d django) run(t *testing.T, dsn string, extra []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(d.python, args...)
	cmd.Dir, cmd.Env = d.dir, d.env(dsn, extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("python %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

var (
	buildMu sync.Mutex
	binDir  string
	built   = map[string]error{}
)

// binary builds ./cmd/<name> once per test binary and returns its path.
func binary(t *testing.T, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "rayctl-interop-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	err, done := built[name]
	if !done {
		if out, berr := exec.Command("go", "build", "-o", filepath.Join(binDir, name), "../cmd/"+name).CombinedOutput(); berr != nil {
			err = &buildError{err: berr, out: string(out)}
		}
		built[name] = err
	}
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	return filepath.Join(binDir, name)
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// group is a worker process (rayworker or django_ray_worker) in a process group of its own,
// so that stopping it stops its task processes too.
type group struct {
	name   string
	cmd    *exec.Cmd
	log    workertest.LogBuffer
	exited chan struct{} // closed when the process has exited; then err is set
	err    error
}

// startGroup starts cmd in a process group of its own, its output in log; the end of the test
// kills the group.
func startGroup(t *testing.T, name string, cmd *exec.Cmd) *group {
	t.Helper()
	g := &group{name: name, cmd: cmd, exited: make(chan struct{})}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second // Wait must not hang on a pipe a stray child still holds
	cmd.Stdout, cmd.Stderr = &g.log, &g.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { g.err = cmd.Wait(); close(g.exited) }()
	t.Cleanup(g.kill)
	return g
}

// kill kills the process group and waits for the process to be gone.
func (g *group) kill() {
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.exited
}

// waitEnded waits until every task in the schema has ended, failing the test should the
// process exit first or two minutes pass.
func (g *group) waitEnded(t *testing.T, sc storetest.Schema) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var open int
		if err := sc.Pool.QueryRow(t.Context(), `SELECT count(*) FROM django_ray_raytaskexecution WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'LOST')`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			return
		}
		select {
		case <-g.exited:
			t.Fatalf("%s exited early: %v\n%s", g.name, g.err, g.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks still open after 2 minutes; %s log:\n%s", open, g.name, g.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runIn runs a Go binary against a schema, with extra environment, and returns stdout,
// stderr and the exit code.
func runIn(t *testing.T, d django, dsn string, extra []string, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = d.env(dsn, extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return out.String(), errb.String(), code
}

// schemaDump describes the django-ray tables as PostgreSQL holds them: columns with types,
// nullability and defaults, constraints, and indexes, one sorted line each. Equal dumps are
// the same schema.
func schemaDump(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '') ||
		       CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END || coalesce(' DEFAULT ' || column_default, '') ||
		       CASE WHEN is_identity = 'YES' THEN ' IDENTITY ' || identity_generation ELSE '' END
		FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name IN ('django_ray_raytaskexecution', 'django_ray_taskworkerlease')
		UNION ALL
		SELECT 'constraint ' || c.conrelid::regclass::text || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE n.nspname = current_schema() AND c.conrelid::regclass::text IN ('django_ray_raytaskexecution', 'django_ray_taskworkerlease')
		UNION ALL
		SELECT 'index ' || regexp_replace(indexdef, ' ON \S+\.', ' ON ')
		FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN ('django_ray_raytaskexecution', 'django_ray_taskworkerlease')
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 30 {
		t.Fatalf("schema dump has only %d lines: are the tables there?\n%s", len(lines), strings.Join(lines, "\n"))
	}
	return strings.Join(lines, "\n")
}

func djangoMigrations(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT app || '.' || name FROM django_migrations ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestMigrateBothWays: the tables Django's migrate creates are the ones rayctl's migration
// creates, column for column, constraint for constraint, index for index; rayctl migrate up
// adopts a Django-created schema without changing it, and Django's migrate sees rayctl's
// 0001 as applied.
func TestMigrateBothWays(t *testing.T) {
	t.Parallel()
	d := needDjango(t)
	rayctl := binary(t, "rayctl")

	// Django first, then rayctl
	byDjango := storetest.EmptySchema(t)
	out := d.run(t, byDjango.DSN, nil, "manage.py", "migrate", "django_ray")
	if !strings.Contains(out, "Applying django_ray.0001_initial... OK") {
		t.Fatalf("manage.py migrate: %s", out)
	}
	djangoSchema := schemaDump(t, byDjango.Pool)
	stdout, stderr, code := runIn(t, d, byDjango.DSN, nil, rayctl, "migrate", "up")
	if code != 0 || stdout != "0001_initial: created by Django, nothing to do\n0002_rayctl_audit: not enabled (optional: rayctl migrate up --audit creates the audit tables)\n" {
		t.Fatalf("rayctl migrate up on Django's tables: exit %d\n%s%s", code, stdout, stderr)
	}
	var ours int
	if err := byDjango.Pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relname LIKE 'rayctl%'`).Scan(&ours); err != nil || ours != 0 {
		t.Fatalf("rayctl migrate up added %d relations of its own to Django's database (%v)", ours, err)
	}
	if got := schemaDump(t, byDjango.Pool); got != djangoSchema {
		t.Fatalf("rayctl migrate up changed Django's tables:\nbefore:\n%s\nafter:\n%s", djangoSchema, got)
	}
	if got := djangoMigrations(t, byDjango.Pool); strings.Join(got, ",") != "django_ray.0001_initial" {
		t.Fatalf("django_migrations after adoption: %v", got)
	}
	if stdout, stderr, code = runIn(t, d, byDjango.DSN, nil, rayctl, "migrate", "validate"); code != 0 {
		t.Fatalf("rayctl migrate validate: exit %d\n%s%s", code, stdout, stderr)
	}
	if out := d.run(t, byDjango.DSN, nil, "manage.py", "migrate", "django_ray"); !strings.Contains(out, "No migrations to apply.") {
		t.Fatalf("manage.py migrate after adoption: %s", out)
	}

	// rayctl first, then Django
	byRayctl := storetest.EmptySchema(t)
	if stdout, stderr, code = runIn(t, d, byRayctl.DSN, nil, rayctl, "migrate", "up"); code != 0 || !strings.Contains(stdout, "0001_initial: applied") {
		t.Fatalf("rayctl migrate up on an empty schema: exit %d\n%s%s", code, stdout, stderr)
	}
	if out := d.run(t, byRayctl.DSN, nil, "manage.py", "showmigrations", "django_ray"); !strings.Contains(out, "[X] 0001_initial") {
		t.Fatalf("Django does not see rayctl's 0001 as applied:\n%s", out)
	}
	if out := d.run(t, byRayctl.DSN, nil, "manage.py", "migrate", "django_ray"); !strings.Contains(out, "No migrations to apply.") {
		t.Fatalf("manage.py migrate after rayctl: %s", out)
	}
	if got := schemaDump(t, byRayctl.Pool); got != djangoSchema {
		t.Fatalf("rayctl's tables differ from Django's:\nDjango:\n%s\nrayctl:\n%s", djangoSchema, got)
	}
	// Django's model check finds nothing to migrate either
	if out := d.run(t, byRayctl.DSN, nil, "manage.py", "makemigrations", "django_ray", "--check", "--dry-run"); !strings.Contains(out, "No changes detected") {
		t.Fatalf("makemigrations --check: %s", out)
	}
}

// djangoResult is what rayctl_testapp.interop prints per task: Django's get_result() view.
type djangoResult struct {
	Status             string          `json:"status"`
	State              string          `json:"state"`
	Args               json.RawMessage `json:"args"`
	Kwargs             json.RawMessage `json:"kwargs"`
	AttemptNumber      int             `json:"attempt_number"`
	WorkerIDs          []string        `json:"worker_ids"`
	ResultReference    *string         `json:"result_reference"`
	ReturnValueJSON    *string         `json:"return_value_json"`
	ReturnValueSHA256  string          `json:"return_value_sha256"`
	ReturnValueBytes   int             `json:"return_value_bytes"`
	ReturnValueMissing bool            `json:"return_value_missing"`
	ResultDataIsPython *bool           `json:"result_data_is_python_json"`
	ReferenceIsPython  *bool           `json:"reference_is_python_reference"`
	Errors             []djangoError   `json:"errors"`
	// s3:// and gs:// results: the stored object, and the one django-ray's own backend writes
	// for the same value
	Object       *djangoObject `json:"object"`
	PythonObject *djangoObject `json:"python_object"`
}

type djangoObject struct {
	Key         string `json:"key"`
	ContentType string `json:"content_type"`
	SHA256      string `json:"sha256"`
	Bytes       int    `json:"bytes"`
}

type djangoError struct {
	ExceptionClassPath string `json:"exception_class_path"`
	ExceptionClass     string `json:"exception_class"`
	TracebackLastLine  string `json:"traceback_last_line"`
}

func (d django) results(t *testing.T, dsn string, extra []string, ids ...string) map[string]djangoResult {
	t.Helper()
	out := d.run(t, dsn, extra, append([]string{"-m", "rayctl_testapp.interop", "results"}, ids...)...)
	var res map[string]djangoResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("results: %v\n%s", err, out)
	}
	return res
}

// TestDjangoEnqueuesGoWorkerRunsDjangoReads: Django enqueues through django-ray's real
// RayTaskBackend, rayctl enqueue adds a row of its own, the Go rayworker runs them all with
// django-ray's real entrypoint (--sync), and Django's get_result() reads every outcome: inline
// values byte for byte as Python's json.dumps writes them, an oversize result through a
// resultfs:// reference in the shared filesystem store (rehydrated to the exact value), and
// failures with the task's own exception class.
// TestDjangoEnqueuesGoWorkerRunsDjangoReads runs for both --sync executors: a process per
// task with django-ray's own entrypoint, and the executor pool (django-ray's execution
// function in long-lived executors). Django must read the same results from either.
func TestDjangoEnqueuesGoWorkerRunsDjangoReads(t *testing.T) {
	t.Parallel()
	d := needDjango(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"process", []string{"--executor", "process", "--entrypoint", d.python + " -m django_ray.runtime.entrypoint"}},
		{"pool", []string{"--executor", "pool", "--python", d.python}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			djangoEnqueuesGoWorkerRuns(t, d, c.args)
		})
	}
}

func djangoEnqueuesGoWorkerRuns(t *testing.T, d django, workerArgs []string) {
	rayctl, rayworker := binary(t, "rayctl"), binary(t, "rayworker")
	sc := storetest.EmptySchema(t)
	results := t.TempDir()
	shared := []string{"DJANGO_RAY_RESULT_STORAGE_BACKEND=filesystem", "DJANGO_RAY_RESULT_STORAGE_FILESYSTEM_PATH=" + results}

	d.run(t, sc.DSN, nil, "manage.py", "migrate", "django_ray")
	var ids map[string]string
	if err := json.Unmarshal([]byte(d.run(t, sc.DSN, shared, "-m", "rayctl_testapp.interop", "enqueue")), &ids); err != nil {
		t.Fatal(err)
	}
	// (c) a row rayctl enqueued is a task Django's backend reads
	stdout, stderr, code := runIn(t, d, sc.DSN, nil, rayctl, "enqueue", "rayctl_testapp.tasks.add", "--args", "[40, 2]", "-o", "json")
	if code != 0 {
		t.Fatalf("rayctl enqueue: exit %d %s", code, stderr)
	}
	var enq struct {
		TaskID string `json:"task_id"`
	}
	if err := json.Unmarshal([]byte(stdout), &enq); err != nil || enq.TaskID == "" {
		t.Fatalf("rayctl enqueue -o json: %q %v", stdout, err)
	}
	ids["rayctl_add"] = enq.TaskID
	before := d.results(t, sc.DSN, shared, enq.TaskID)[enq.TaskID]
	if before.Status != "READY" || before.State != "QUEUED" || string(before.Args) != "[40, 2]" || string(before.Kwargs) != "{}" || before.AttemptNumber != 1 {
		t.Fatalf("Django reads rayctl's row as %+v", before)
	}

	// (b) the Go worker runs everything with django-ray's own entrypoint
	worker := exec.Command(rayworker, append(append([]string{"--sync"}, workerArgs...),
		"--max-task-attempts", "1", "--concurrency", "4", "--worker-heartbeat-seconds", "1", "--shutdown-timeout", "5s")...)
	worker.Env = d.env(sc.DSN, shared...)
	w := startGroup(t, "rayworker", worker)
	w.waitEnded(t, sc)
	if err := worker.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
		if ee, ok := w.err.(*exec.ExitError); !ok || ee.ExitCode() != 143 {
			t.Fatalf("rayworker after SIGTERM: %v (want exit 143)\n%s", w.err, w.log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("rayworker did not stop within 30s of SIGTERM\n%s", w.log.String())
	}

	all := make([]string, 0, len(ids))
	for _, id := range ids {
		all = append(all, id)
	}
	res := d.results(t, sc.DSN, shared, all...)
	get := func(name string) djangoResult {
		r, ok := res[ids[name]]
		if !ok {
			t.Fatalf("no result for %s", name)
		}
		return r
	}
	success := func(name, wantJSON string) {
		t.Helper()
		r := get(name)
		if r.Status != "SUCCESSFUL" || r.ReturnValueMissing || r.ReturnValueJSON == nil || *r.ReturnValueJSON != wantJSON ||
			r.ResultDataIsPython == nil || !*r.ResultDataIsPython || r.ResultReference != nil || len(r.Errors) != 0 || len(r.WorkerIDs) != 1 {
			t.Errorf("%s: Django reads %+v, want SUCCESSFUL %s stored inline as Python writes it", name, r, wantJSON)
		}
	}
	success("add", "5")
	success("rayctl_add", "42")
	success("noisy", `"done"`)
	success("echo", `{"text": "h\u00e9llo \u2713 \ud83d\ude00 \"q\" </tag> \\ \t", "floats": [1.5, 0.30000000000000004, 1e-07, 1e+22, -0.0, 123456789.125], `+
		`"big": 100000000000000000000, "nested": [null, true, false, {"k": [1, 2], "": "empty key"}]}`)

	// the oversize result: a resultfs:// reference Python would have written, rehydrated
	big := get("oversize")
	text := `"` + strings.Repeat("x", 2*1024*1024+5) + `"`
	sum := sha256.Sum256([]byte(text))
	digest := hex.EncodeToString(sum[:])
	wantRef := "resultfs://sha256/" + digest + "?rel=" + digest[:2] + "/" + digest[2:4] + "/" + digest + ".json&bytes=" + strconv.Itoa(len(text))
	if big.Status != "SUCCESSFUL" || big.ResultReference == nil || *big.ResultReference != wantRef || big.ReturnValueSHA256 != digest ||
		big.ReturnValueBytes != len(text) || big.ReferenceIsPython == nil || !*big.ReferenceIsPython {
		t.Errorf("oversize: Django reads %+v; want %s rehydrated", big, wantRef)
	}
	if b, err := os.ReadFile(filepath.Join(results, digest[:2], digest[2:4], digest+".json")); err != nil || string(b) != text {
		t.Errorf("the stored payload: %d bytes, %v", len(b), err)
	}

	// failures: Django's TaskError names the task's own exception class
	for name, want := range map[string][2]string{
		"fail_value":  {"builtins.ValueError", "ValueError: bad value"},
		"fail_custom": {"rayctl_testapp.tasks.NonRetryableError", "rayctl_testapp.tasks.NonRetryableError: do not retry"},
	} {
		r := get(name)
		if r.Status != "FAILED" || r.State != "FAILED" || len(r.Errors) != 1 || r.Errors[0].ExceptionClassPath != want[0] ||
			r.Errors[0].ExceptionClass != want[0] || r.Errors[0].TracebackLastLine != want[1] {
			t.Errorf("%s: Django reads %+v, want FAILED with %s", name, r, want[0])
		}
	}
}

// TestMixedFleet: a Python django_ray_worker and a Go rayworker share one database (both
// --sync, with django-ray's own code running the tasks): both register leases, every task
// Django enqueued succeeds exactly once (attempt 1, no error) with its own result, and no
// claim is lost between them.
func TestMixedFleet(t *testing.T) {
	t.Parallel()
	d := needDjango(t)
	rayworker := binary(t, "rayworker")
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	d.run(t, sc.DSN, nil, "manage.py", "migrate", "django_ray")
	start := func(name string, args ...string) *workertest.LogBuffer {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir, cmd.Env = d.dir, d.env(sc.DSN)
		return &startGroup(t, name, cmd).log
	}
	pylog := start("django_ray_worker", d.python, "manage.py", "django_ray_worker", "--sync", "--concurrency", "2")
	golog := start("rayworker", rayworker, "--sync", "--python", d.python, "--concurrency", "2") // the executor pool
	// both registered before any work exists, so they compete for it (the pool alone can run
	// all of it before Django's worker has started)
	workertest.Eventually(t, 2*time.Minute, "both workers' leases", func() bool {
		var leases int
		return sc.Pool.QueryRow(ctx, `SELECT count(*) FROM django_ray_taskworkerlease WHERE is_active`).Scan(&leases) == nil && leases == 2
	})
	const n = 24
	script := `import json, django; django.setup()
from rayctl_testapp import tasks
print(json.dumps([tasks.add.enqueue(i, 1000).id for i in range(` + strconv.Itoa(n) + `)]))`
	var ids []string
	if err := json.Unmarshal([]byte(d.run(t, sc.DSN, nil, "-c", script)), &ids); err != nil || len(ids) != n {
		t.Fatalf("enqueue: %v %v", ids, err)
	}

	deadline := time.Now().Add(2 * time.Minute)
	for {
		var open int
		if err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM django_ray_raytaskexecution WHERE state <> 'SUCCEEDED'`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks not SUCCEEDED after 2 minutes\ndjango_ray_worker:\n%s\nrayworker:\n%s", open, pylog.String(), golog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var leases int
	if err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM django_ray_taskworkerlease WHERE is_active`).Scan(&leases); err != nil || leases != 2 {
		t.Fatalf("active leases: %d %v\ndjango_ray_worker:\n%s\nrayworker:\n%s", leases, err, pylog.String(), golog.String())
	}
	rows, err := sc.Pool.Query(ctx, `SELECT task_id, args_json, result_data, attempt_number, error_message IS NULL, claimed_by_worker FROM django_ray_raytaskexecution`)
	if err != nil {
		t.Fatal(err)
	}
	byWorker := map[string]int{}
	for rows.Next() {
		var taskID, args, worker string
		var result *string
		var attempt int
		var noError bool
		if err := rows.Scan(&taskID, &args, &result, &attempt, &noError, &worker); err != nil {
			t.Fatal(err)
		}
		var in []int
		if err := json.Unmarshal([]byte(args), &in); err != nil || len(in) != 2 || result == nil || *result != strconv.Itoa(in[0]+in[1]) || attempt != 1 || !noError {
			t.Errorf("task %s args %s: result %v, attempt %d, no error %v", taskID, args, result, attempt, noError)
		}
		byWorker[worker]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("tasks per worker: %v", byWorker)
	// Django reads them all, whichever worker ran them
	for id, r := range d.results(t, sc.DSN, nil, ids...) {
		if r.Status != "SUCCESSFUL" || r.ReturnValueJSON == nil {
			t.Errorf("%s: %+v", id, r)
		}
	}
}
