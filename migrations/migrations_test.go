package migrations_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/migrations"
	"github.com/rayctl/rayctl/store/storetest"
)

// catalog is everything about the two tables that a schema comparison must see.
type catalog struct {
	columns     []string // table.column type notnull default identity, in ordinal order
	constraints []string // table constraint-name definition
	indexes     []string // index-name definition (schema-qualification removed)
}

func readCatalog(t *testing.T, pool *pgxpool.Pool, schema string) catalog {
	t.Helper()
	ctx := t.Context()
	var c catalog
	q := func(sql string) []string {
		rows, err := pool.Query(ctx, sql, schema)
		if err != nil {
			t.Fatalf("catalog query: %v", err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("catalog query: %v", err)
		}
		for i := range out {
			out[i] = strings.ReplaceAll(out[i], schema+".", "")
		}
		return out
	}
	c.columns = q(`SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
			|| CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END
			|| COALESCE(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
			|| CASE a.attidentity WHEN 'd' THEN ' IDENTITY BY DEFAULT' WHEN 'a' THEN ' IDENTITY ALWAYS' ELSE '' END
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE c.relnamespace = $1::regnamespace AND c.relname LIKE 'django_ray_%' AND c.relkind = 'r'
		  AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum`)
	c.constraints = q(`SELECT cl.relname || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
		FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
		WHERE co.connamespace = $1::regnamespace AND cl.relname LIKE 'django_ray_%'
		ORDER BY cl.relname, co.conname`)
	c.indexes = q(`SELECT indexname || ' ' || indexdef FROM pg_indexes
		WHERE schemaname = $1 AND tablename LIKE 'django_ray_%' ORDER BY indexname`)
	return c
}

func djangoDDL(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/django_0001_initial.sql")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func execDjangoDDL(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), djangoDDL(t)); err != nil {
		t.Fatalf("apply Django's DDL: %v", err)
	}
}

func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	gs, ws := map[string]bool{}, map[string]bool{}
	for _, g := range got {
		gs[g] = true
	}
	for _, w := range want {
		ws[w] = true
		if !gs[w] {
			t.Errorf("%s: missing from ours: %s", what, w)
		}
	}
	for _, g := range got {
		if !ws[g] {
			t.Errorf("%s: only in ours: %s", what, g)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d in ours, %d in Django's", what, len(got), len(want))
	}
}

// TestSchemaMatchesDjango builds the schema with our migrations and with the DDL Django
// emits (testdata, from `manage.py sqlmigrate django_ray 0001` with django-ray 0.2.0) and
// compares them column by column, constraint by constraint and index by index.
func TestSchemaMatchesDjango(t *testing.T) {
	t.Parallel()
	ours := storetest.EmptySchema(t)
	if _, err := migrations.Up(t.Context(), ours.Pool, migrations.Options{}); err != nil {
		t.Fatal(err)
	}
	theirs := storetest.EmptySchema(t)
	execDjangoDDL(t, theirs.Pool)

	got, want := readCatalog(t, ours.Pool, ours.Name), readCatalog(t, theirs.Pool, theirs.Name)
	if len(want.columns) != 29 || len(want.indexes) != 18 {
		t.Fatalf("reference schema read wrong: %d columns, %d indexes", len(want.columns), len(want.indexes))
	}
	diffLines(t, "columns", got.columns, want.columns)
	diffLines(t, "constraints", got.constraints, want.constraints)
	diffLines(t, "indexes", got.indexes, want.indexes)
	// Column order matters to anyone reading SELECT * output; keep it identical too.
	if strings.Join(got.columns, "\n") != strings.Join(want.columns, "\n") {
		t.Errorf("column order differs")
	}
}

func bookkeeping(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	var exists bool
	if err := pool.QueryRow(t.Context(), `SELECT to_regclass('rayctl_schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		return nil
	}
	rows, err := pool.Query(t.Context(), `SELECT version || ' ' || name || ' adopted=' || adopted FROM rayctl_schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpCreatesAndIsIdempotent: up creates the django_ray tables but not the optional audit
// tables; up --audit adds them later; each run again changes nothing.
func TestUpCreatesAndIsIdempotent(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	res, err := migrations.Up(ctx, sc.Pool, migrations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 2 || res.Steps[0].Action != migrations.ActionApplied || res.Steps[1].Action != migrations.ActionNotEnabled {
		t.Fatalf("first up: %+v", res.Steps)
	}
	if got := bookkeeping(t, sc.Pool); len(got) != 1 || got[0] != "1 initial adopted=false" {
		t.Fatalf("bookkeeping = %v", got)
	}
	if auditTables(t, sc.Pool) {
		t.Fatal("up without --audit created the audit tables")
	}
	rep, err := migrations.Validate(ctx, sc.Pool)
	if err != nil || !rep.OK() || fmt.Sprint(rep.NotEnabled) != "[0002_rayctl_audit]" {
		t.Fatalf("validate after up: %+v, %v", rep, err)
	}
	res, err = migrations.Up(ctx, sc.Pool, migrations.Options{Audit: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 2 || res.Steps[0].Action != migrations.ActionAlreadyReady || res.Steps[1].Action != migrations.ActionApplied {
		t.Fatalf("up --audit: %+v", res.Steps)
	}
	for _, audit := range []bool{true, false} {
		res, err = migrations.Up(ctx, sc.Pool, migrations.Options{Audit: audit})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Steps) != 2 || res.Steps[0].Action != migrations.ActionAlreadyReady || res.Steps[1].Action != migrations.ActionAlreadyReady {
			t.Fatalf("up again (audit %v): %+v", audit, res.Steps)
		}
	}
	if got := bookkeeping(t, sc.Pool); len(got) != 2 || got[0] != "1 initial adopted=false" || got[1] != "2 rayctl_audit adopted=false" {
		t.Fatalf("bookkeeping = %v", got)
	}
	rep, err = migrations.Validate(ctx, sc.Pool)
	if err != nil || !rep.OK() || len(rep.NotEnabled) != 0 {
		t.Fatalf("validate after up --audit: %+v, %v", rep, err)
	}
}

func auditTables(t *testing.T, pool *pgxpool.Pool) bool {
	t.Helper()
	var exists bool
	if err := pool.QueryRow(t.Context(), `SELECT to_regclass('rayctl_audit') IS NOT NULL OR to_regclass('rayctl_audit_task') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

// TestUpAdoptsDjangoSchema: a database where Django's migrate created the tables is used as
// it is: status says so, validate accepts it, up (and its dry run) writes nothing at all, not
// even a table of rayctl's own; up --audit adds only rayctl's tables.
func TestUpAdoptsDjangoSchema(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	execDjangoDDL(t, sc.Pool)
	if _, err := sc.Pool.Exec(ctx, `CREATE TABLE django_migrations (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL, applied timestamptz NOT NULL);
		INSERT INTO django_migrations (app, name, applied) VALUES ('django_ray', '0001_initial', now());
		INSERT INTO django_ray_raytaskexecution (task_id, callable_path, queue_name, state, attempt_number, created_at, args_json, kwargs_json)
		VALUES ('u1', 'app.tasks.f', 'default', 'QUEUED', 1, now(), '[]', '{}')`); err != nil {
		t.Fatal(err)
	}
	before := readCatalog(t, sc.Pool, sc.Name)
	relations := func() int {
		var n int
		if err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	nrel := relations()

	rep, err := migrations.Validate(ctx, sc.Pool)
	if err != nil || !rep.OK() || len(rep.Pending) != 0 || len(rep.Warnings) != 0 || fmt.Sprint(rep.NotEnabled) != "[0002_rayctl_audit]" {
		t.Fatalf("validate on Django's tables: %+v, %v", rep, err)
	}
	st, err := migrations.Status(ctx, sc.Pool)
	if err != nil || len(st) != 2 || st[0].State != "created_by_django" || !st[0].Applied || st[0].AppliedAt == nil || st[1].State != "not_enabled" || !st[1].Optional {
		t.Fatalf("status on Django's tables: %+v, %v", st, err)
	}
	for _, dry := range []bool{true, false} {
		res, err := migrations.Up(ctx, sc.Pool, migrations.Options{DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		if res.Steps[0].Action != migrations.ActionByDjango || res.Steps[1].Action != migrations.ActionNotEnabled || len(res.Warnings) != 0 {
			t.Fatalf("up (dry run %v): %+v", dry, res)
		}
		if n := relations(); n != nrel {
			t.Fatalf("up (dry run %v) created %d relations", dry, n-nrel)
		}
	}
	res, err := migrations.Up(ctx, sc.Pool, migrations.Options{Audit: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps[0].Action != migrations.ActionByDjango || res.Steps[1].Action != migrations.ActionApplied {
		t.Fatalf("up --audit: %+v", res)
	}
	after := readCatalog(t, sc.Pool, sc.Name)
	diffLines(t, "columns", after.columns, before.columns)
	diffLines(t, "indexes", after.indexes, before.indexes)
	diffLines(t, "constraints", after.constraints, before.constraints)
	var n int
	if err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM django_ray_raytaskexecution`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("existing row: n=%d err=%v", n, err)
	}
	// our own audit table is created beside Django's tables (it is not a django_ray table)
	if got := bookkeeping(t, sc.Pool); len(got) != 1 || got[0] != "2 rayctl_audit adopted=false" {
		t.Fatalf("bookkeeping = %v", got)
	}
	if !auditTables(t, sc.Pool) {
		t.Fatal("up --audit did not create the audit tables")
	}
	if rep, err := migrations.Validate(ctx, sc.Pool); err != nil || !rep.OK() || len(rep.NotEnabled) != 0 {
		t.Fatalf("validate after up --audit: %+v, %v", rep, err)
	}
	if err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM django_migrations WHERE app = 'django_ray'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("django_migrations rows = %d, %v", n, err)
	}
}

// TestUpToleratesLaterColumns: columns django-ray 0.3.x adds are tolerated.
func TestUpToleratesLaterColumns(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	execDjangoDDL(t, sc.Pool)
	if _, err := sc.Pool.Exec(ctx, `ALTER TABLE django_ray_raytaskexecution
		ADD COLUMN progress_data text NULL,
		ADD COLUMN runtime_env_profile varchar(100) NULL,
		ADD COLUMN completion_data text NULL,
		ADD COLUMN execution_generation bigint NOT NULL DEFAULT 0 CHECK (execution_generation >= 0),
		ADD COLUMN runtime_env_hash varchar(64) NOT NULL DEFAULT ''`); err != nil {
		t.Fatal(err)
	}
	res, err := migrations.Up(ctx, sc.Pool, migrations.Options{})
	if err != nil {
		t.Fatalf("up on a 0.3.x-style schema: %v", err)
	}
	if res.Steps[0].Action != migrations.ActionAdopted {
		t.Fatalf("steps: %+v", res.Steps)
	}
	if len(res.Warnings) != 5 {
		t.Errorf("want a warning per extra column, got %q", res.Warnings)
	}
	rep, err := migrations.Validate(ctx, sc.Pool)
	if err != nil || !rep.OK() {
		t.Fatalf("validate: %+v %v", rep, err)
	}
}

// TestUpRefusesIncompatible: a missing or wrongly typed required column is a clear error
// naming the column, and nothing is recorded.
func TestUpRefusesIncompatible(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		alter string
		want  string
	}{
		{"missing column", `ALTER TABLE django_ray_raytaskexecution DROP COLUMN claimed_by_worker`, "column django_ray_raytaskexecution.claimed_by_worker is missing"},
		{"wrong type", `ALTER TABLE django_ray_raytaskexecution DROP CONSTRAINT django_ray_raytaskexecution_attempt_number_check, ALTER COLUMN attempt_number TYPE text`, "column django_ray_raytaskexecution.attempt_number has type text, want integer"},
		{"narrower varchar", `ALTER TABLE django_ray_raytaskexecution ALTER COLUMN ray_job_id TYPE varchar(10)`, "ray_job_id has type character varying(10)"},
		{"nullability", `ALTER TABLE django_ray_raytaskexecution ALTER COLUMN result_data SET NOT NULL`, "result_data is NOT NULL, want nullable"},
		{"missing table", `DROP TABLE django_ray_taskworkerlease`, "table django_ray_taskworkerlease is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := storetest.EmptySchema(t)
			ctx := t.Context()
			execDjangoDDL(t, sc.Pool)
			if _, err := sc.Pool.Exec(ctx, tc.alter); err != nil {
				t.Fatal(err)
			}
			_, err := migrations.Up(ctx, sc.Pool, migrations.Options{})
			var inc *migrations.IncompatibleError
			if !errors.As(err, &inc) {
				t.Fatalf("want IncompatibleError, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
			if got := bookkeeping(t, sc.Pool); len(got) != 0 {
				t.Fatalf("recorded %v despite the error", got)
			}
		})
	}
}

// TestUpConcurrent: several processes migrating at once create the schema exactly once.
func TestUpConcurrent(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t, storetest.Options{MaxConns: 8})
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	applied := make(chan migrations.Action, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// a separate pool per migrator, as separate processes would have
			pool, err := pgxpool.New(ctx, sc.DSN)
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			res, err := migrations.Up(ctx, pool, migrations.Options{})
			if err != nil {
				errs <- err
				return
			}
			applied <- res.Steps[0].Action
		}()
	}
	wg.Wait()
	close(errs)
	close(applied)
	for err := range errs {
		t.Errorf("concurrent up: %v", err)
	}
	count := map[migrations.Action]int{}
	for a := range applied {
		count[a]++
	}
	if count[migrations.ActionApplied] != 1 || count[migrations.ActionAlreadyReady] != 5 {
		t.Fatalf("actions = %v, want 1 applied and 5 already applied", count)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	res, err := migrations.Up(ctx, sc.Pool, migrations.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps[0].Action != migrations.ActionWouldApply || !strings.Contains(res.Steps[0].SQL, `CREATE TABLE "django_ray_raytaskexecution"`) {
		t.Fatalf("dry run: %+v", res.Steps)
	}
	var n int
	if err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("dry run created %d relations", n)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cases := []struct {
		name    string
		prepare func(pool *pgxpool.Pool) error
		pending int
		problem string
	}{
		{"empty database", func(*pgxpool.Pool) error { return nil }, 1, ""},
		{"current", func(p *pgxpool.Pool) error { _, err := migrations.Up(ctx, p, migrations.Options{}); return err }, 0, ""},
		{"dropped index", func(p *pgxpool.Pool) error {
			if _, err := migrations.Up(ctx, p, migrations.Options{}); err != nil {
				return err
			}
			_, err := p.Exec(ctx, `DROP INDEX ray_task_claimable_idx`)
			return err
		}, 0, "missing index ray_task_claimable_idx"},
		{"altered column", func(p *pgxpool.Pool) error {
			if _, err := migrations.Up(ctx, p, migrations.Options{}); err != nil {
				return err
			}
			_, err := p.Exec(ctx, `ALTER TABLE django_ray_taskworkerlease ALTER COLUMN pid TYPE bigint`)
			return err
		}, 0, "column django_ray_taskworkerlease.pid has type bigint, want integer"},
		{"changed migration", func(p *pgxpool.Pool) error {
			if _, err := migrations.Up(ctx, p, migrations.Options{}); err != nil {
				return err
			}
			_, err := p.Exec(ctx, `UPDATE rayctl_schema_migrations SET checksum = 'abc'`)
			return err
		}, 0, "changed since it was applied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := storetest.EmptySchema(t)
			if err := tc.prepare(sc.Pool); err != nil {
				t.Fatal(err)
			}
			rep, err := migrations.Validate(ctx, sc.Pool)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Pending) != tc.pending {
				t.Errorf("pending = %v, want %d", rep.Pending, tc.pending)
			}
			joined := strings.Join(rep.Problems, "\n")
			if tc.problem == "" && len(rep.Problems) > 0 {
				t.Errorf("unexpected problems: %v", rep.Problems)
			}
			if tc.problem != "" && !strings.Contains(joined, tc.problem) {
				t.Errorf("problems %q do not mention %q", joined, tc.problem)
			}
			if ok := tc.pending == 0 && tc.problem == ""; rep.OK() != ok {
				t.Errorf("OK() = %v, want %v", rep.OK(), ok)
			}
		})
	}
}

// TestUpRecordsInDjangoMigrations: when Django's bookkeeping exists but our migration creates
// the tables, Django is told, so a later `manage.py migrate` does not try to create them.
func TestUpRecordsInDjangoMigrations(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	if _, err := sc.Pool.Exec(ctx, `CREATE TABLE django_migrations (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL, applied timestamptz NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Up(ctx, sc.Pool, migrations.Options{}); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := sc.Pool.QueryRow(ctx, `SELECT app || '.' || name FROM django_migrations`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "django_ray.0001_initial" {
		t.Fatalf("django_migrations has %q", got)
	}
}

// TestUpCreatesDjangoMigrations: on a database Django has not touched yet, migrate up creates
// Django's bookkeeping table as Django would and records 0001_initial there, so a Django
// project pointed at it later finds the tables migrated (the interop tier runs the real
// `manage.py migrate` on it). Running up again adds nothing.
func TestUpCreatesDjangoMigrations(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	for range 2 {
		if _, err := migrations.Up(ctx, sc.Pool, migrations.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := sc.Pool.Query(ctx, `SELECT app || '.' || name FROM django_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(got) != 1 || got[0] != "django_ray.0001_initial" {
		t.Fatalf("django_migrations: %v %v", got, err)
	}
	var cols string
	if err := sc.Pool.QueryRow(ctx, `SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable || ' ' || is_identity, ', ' ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'django_migrations'`).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if want := "id bigint NO YES, app character varying NO NO, name character varying NO NO, applied timestamp with time zone NO NO"; cols != want {
		t.Fatalf("django_migrations columns:\n%s\nwant\n%s", cols, want)
	}
}

func TestDjango03MigrationsWarn(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	execDjangoDDL(t, sc.Pool)
	if _, err := sc.Pool.Exec(ctx, `CREATE TABLE django_migrations (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL, applied timestamptz NOT NULL);
		INSERT INTO django_migrations (app, name, applied) VALUES ('django_ray', '0001_initial', now()), ('django_ray', '0002_workflows_and_runtime_env', now())`); err != nil {
		t.Fatal(err)
	}
	res, err := migrations.Up(ctx, sc.Pool, migrations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w := fmt.Sprint(res.Warnings); !strings.Contains(w, "0002_workflows_and_runtime_env") {
		t.Fatalf("warnings %q do not mention the 0.3 migration", w)
	}
}

// TestAuditTables: migration 0002 creates rayctl's own audit tables, outside the django_ray
// namespace, and its foreign key cascades from an entry to its task rows.
func TestAuditTables(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	if _, err := migrations.Up(ctx, sc.Pool, migrations.Options{Audit: true}); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := sc.Pool.QueryRow(ctx, `INSERT INTO rayctl_audit (action, actor, selection, options, matched, selected)
		VALUES ('requeue', 'op@host', '{}', '{}', 1, 1) RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, `INSERT INTO rayctl_audit_task (audit_id, execution_id, from_state, to_state) VALUES ($1, 7, 'FAILED', 'QUEUED')`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, `INSERT INTO rayctl_audit_task (audit_id, execution_id, from_state, to_state) VALUES ($1, 7, 'FAILED', 'QUEUED')`, id); err == nil {
		t.Fatal("the same task recorded twice for one entry")
	}
	if _, err := sc.Pool.Exec(ctx, `DELETE FROM rayctl_audit WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := sc.Pool.QueryRow(ctx, `SELECT count(*) FROM rayctl_audit_task`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("task rows after deleting the entry: %d, %v", n, err)
	}
}
