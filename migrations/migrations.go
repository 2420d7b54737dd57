// Package migrations creates, adopts and checks the django-ray 0.2.0 schema.
//
// sql/0001_initial.sql is what Django's migration django_ray.0001_initial emits on PostgreSQL,
// byte for byte in structure: a database created by Django and one created here are the same.
// Later files create rayctl's own tables (0002: the rayctl_audit trail of operator actions),
// which Django never reads; the django_ray tables stay exactly Django's. 0002 is optional
// (AuditVersion): applied only when asked for (Options.Audit, rayctl migrate up --audit).
// Versions rayctl applied are recorded in its own bookkeeping table, rayctl_schema_migrations,
// created only when rayctl applies something. On a database where Django already created the
// tables, Up checks that they are compatible and writes nothing: Status reports them as
// created by Django and Validate accepts them as they are. Runs hold an advisory lock, so two
// processes migrating the same schema at once is safe.
package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed sql/*.sql
var sqlFS embed.FS

// BookkeepingTable records applied migration versions.
const BookkeepingTable = "rayctl_schema_migrations"

const bookkeepingDDL = `CREATE TABLE IF NOT EXISTS rayctl_schema_migrations (
	version integer PRIMARY KEY,
	name text NOT NULL,
	checksum text NOT NULL,
	adopted boolean NOT NULL,
	applied_at timestamptz NOT NULL
)`

// AuditVersion is the migration that creates rayctl's audit tables (rayctl_audit,
// rayctl_audit_task). It is optional: Up applies it only with Options.Audit, Validate never
// counts it as pending, and without it requeue, cancel and reconcile-jobs simply keep no
// audit record.
const AuditVersion = 2

// Migration is one embedded schema version.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string // sha256 of SQL, hex
	// Optional migrations (AuditVersion) create rayctl's own tables, which nothing requires;
	// they are applied only when asked for.
	Optional bool
}

// All returns the embedded migrations in version order.
func All() []Migration {
	entries, err := fs.ReadDir(sqlFS, "sql")
	if err != nil {
		panic(err) // embedded at build time; cannot fail at run time
	}
	var out []Migration
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".sql")
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			panic(fmt.Sprintf("migrations: bad file name %q", e.Name()))
		}
		b, err := sqlFS.ReadFile(path.Join("sql", e.Name()))
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: rest, SQL: string(b), Checksum: hex.EncodeToString(sum[:]), Optional: v == AuditVersion})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Action says what Up did, or would do, for one migration.
type Action string

const (
	ActionApplied      Action = "applied"
	ActionAdopted      Action = "adopted"
	ActionWouldApply   Action = "would apply"
	ActionWouldAdopt   Action = "would adopt"
	ActionAlreadyReady Action = "already applied"
	// ActionByDjango: Django's migrate created the tables and recorded it; rayctl uses them
	// as they are and writes nothing.
	ActionByDjango Action = "created by Django, nothing to do"
	// ActionNotEnabled: an optional migration that was not asked for (Options.Audit).
	ActionNotEnabled Action = "not enabled (optional: rayctl migrate up --audit creates the audit tables)"
)

// Step is the outcome of Up for one migration.
type Step struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	Action  Action `json:"action"`
	SQL     string `json:"sql,omitempty"`
}

// Result is what Up did.
type Result struct {
	Steps    []Step   `json:"steps"`
	Warnings []string `json:"warnings"`
}

// Options tune Up.
type Options struct {
	// DryRun reports the steps and the SQL they would run and writes nothing (not even the
	// bookkeeping table).
	DryRun bool
	// Audit also applies the optional audit migration (AuditVersion): rayctl's own tables in
	// the application's database, which requeue, cancel and reconcile-jobs then record to.
	Audit bool
}

// IncompatibleError reports an existing schema that the worker cannot use.
type IncompatibleError struct{ Problems []string }

func (e *IncompatibleError) Error() string {
	return "existing django-ray tables are not compatible: " + strings.Join(e.Problems, "; ")
}

// Up applies every pending required migration, and the optional ones when asked (Audit).
//
// On a database where Django's migrate created the 0.2.0 tables it checks them and writes
// nothing at all (no rayctl table either, unless Audit): such a database is used as it is.
// Tables that exist without a django_migrations record (made by hand, or by an old rayctl)
// are checked and recorded there, so a later manage.py migrate does not try to create them.
// On an empty database it creates the tables exactly as Django's 0001_initial does, records
// them in django_migrations, and keeps its own record in rayctl_schema_migrations.
func Up(ctx context.Context, pool *pgxpool.Pool, opts Options) (Result, error) {
	res := Result{Steps: []Step{}, Warnings: []string{}}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Release()
	if err := lock(ctx, conn.Conn()); err != nil {
		return res, err
	}
	defer unlock(conn.Conn())

	applied, info, err := current(ctx, conn.Conn())
	if err != nil {
		return res, err
	}
	res.Warnings = append(res.Warnings, info.djangoWarnings()...)
	bookkeeping := func() error {
		if _, err := conn.Exec(ctx, bookkeepingDDL); err != nil {
			return fmt.Errorf("create %s: %w", BookkeepingTable, err)
		}
		return nil
	}

	for _, m := range All() {
		if _, ok := applied[m.Version]; ok {
			if m.Version == 1 && !opts.DryRun && !info.djangoRecorded() {
				// Tables created by an older rayctl were not recorded for Django: do it now.
				if err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error { return recordInDjango(ctx, tx) }); err != nil {
					return res, err
				}
			}
			res.Steps = append(res.Steps, Step{Version: m.Version, Name: m.Name, Action: ActionAlreadyReady})
			continue
		}
		if m.Optional && !opts.Audit {
			res.Steps = append(res.Steps, Step{Version: m.Version, Name: m.Name, Action: ActionNotEnabled})
			continue
		}
		if m.Version == 1 && info.anyTable() {
			problems, warnings := info.check()
			res.Warnings = append(res.Warnings, warnings...)
			if len(problems) > 0 {
				return res, &IncompatibleError{Problems: problems}
			}
			if info.djangoRecorded() {
				res.Steps = append(res.Steps, Step{Version: m.Version, Name: m.Name, Action: ActionByDjango})
				continue
			}
			step := Step{Version: m.Version, Name: m.Name, Action: ActionWouldAdopt}
			if !opts.DryRun {
				if err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error { return recordInDjango(ctx, tx) }); err != nil {
					return res, err
				}
				step.Action = ActionAdopted
			}
			res.Steps = append(res.Steps, step)
			continue
		}
		step := Step{Version: m.Version, Name: m.Name, Action: ActionWouldApply, SQL: m.SQL}
		if !opts.DryRun {
			if err := bookkeeping(); err != nil {
				return res, err
			}
			if err := apply(ctx, conn.Conn(), m); err != nil {
				return res, err
			}
			step.Action = ActionApplied
			step.SQL = ""
		}
		res.Steps = append(res.Steps, step)
	}
	return res, nil
}

func apply(ctx context.Context, conn *pgx.Conn, m Migration) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rayctl_schema_migrations (version, name, checksum, adopted, applied_at) VALUES ($1, $2, $3, false, now())`,
			m.Version, m.Name, m.Checksum); err != nil {
			return fmt.Errorf("record migration %04d: %w", m.Version, err)
		}
		if m.Version == 1 {
			return recordInDjango(ctx, tx)
		}
		return nil
	})
}

// djangoMigrationsDDL is the table Django's MigrationRecorder creates on PostgreSQL (Django 6),
// column for column.
const djangoMigrationsDDL = `CREATE TABLE IF NOT EXISTS django_migrations (
	id bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
	app varchar(255) NOT NULL,
	name varchar(255) NOT NULL,
	applied timestamp with time zone NOT NULL)`

// recordInDjango records django_ray.0001_initial in Django's own bookkeeping, creating
// django_migrations as Django would if it does not exist yet: a Django project that later
// runs `manage.py migrate` on this database then sees the tables as migrated instead of
// failing on "relation django_ray_taskworkerlease already exists" (the interop tier checks
// this against the real Django).
func recordInDjango(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, djangoMigrationsDDL); err != nil {
		return fmt.Errorf("create django_migrations: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO django_migrations (app, name, applied)
		SELECT 'django_ray', '0001_initial', now()
		WHERE NOT EXISTS (SELECT 1 FROM django_migrations WHERE app = 'django_ray' AND name = '0001_initial')`); err != nil {
		return fmt.Errorf("record migration in django_migrations: %w", err)
	}
	return nil
}

// lockKey is per schema, so tests migrating separate schemas in parallel do not serialise.
const lockSQL = `SELECT pg_advisory_lock(hashtext('rayctl.migrate:' || current_schema()))`
const unlockSQL = `SELECT pg_advisory_unlock(hashtext('rayctl.migrate:' || current_schema()))`

func lock(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, lockSQL); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	return nil
}

func unlock(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// An error here means the connection is broken; the server drops the lock with it.
	_, _ = conn.Exec(ctx, unlockSQL)
}

type appliedRow struct {
	Name      string
	Checksum  string
	Adopted   bool
	AppliedAt time.Time
}

// current reads what the database holds: the migrations recorded as applied, and its tables.
func current(ctx context.Context, conn *pgx.Conn) (map[int]appliedRow, schemaInfo, error) {
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, schemaInfo{}, err
	}
	info, err := inspect(ctx, conn)
	return applied, info, err
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int]appliedRow, error) {
	out := map[int]appliedRow{}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('rayctl_schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		return out, nil
	}
	rows, err := conn.Query(ctx, `SELECT version, name, checksum, adopted, applied_at FROM rayctl_schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", BookkeepingTable, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var r appliedRow
		if err := rows.Scan(&v, &r.Name, &r.Checksum, &r.Adopted, &r.AppliedAt); err != nil {
			return nil, err
		}
		out[v] = r
	}
	return out, rows.Err()
}

// MigrationStatus is one migration and whether it is applied.
type MigrationStatus struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	// Applied: the migration's tables are there (Adopted: they were not created by rayctl).
	Applied bool `json:"applied"`
	Adopted bool `json:"adopted"`
	// AppliedAt is when rayctl applied or adopted it, or when Django recorded it.
	AppliedAt *time.Time `json:"applied_at"`
	// Optional migrations (the audit tables) are applied only when asked for.
	Optional bool `json:"optional"`
	// State says the same in one word: applied, adopted, created_by_django (Django's migrate
	// made the tables: nothing to do), present (the tables are there, not recorded anywhere),
	// pending, or not_enabled (optional and not applied).
	State string `json:"state"`
}

// Status lists every embedded migration with its state in the database. It writes nothing.
func Status(ctx context.Context, pool *pgxpool.Pool) ([]MigrationStatus, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	applied, info, err := current(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	var out []MigrationStatus
	for _, m := range All() {
		s := MigrationStatus{Version: m.Version, Name: m.Name, Optional: m.Optional, State: "pending"}
		r, ok := applied[m.Version]
		switch {
		case ok:
			at := r.AppliedAt
			s.Applied, s.Adopted, s.AppliedAt, s.State = true, r.Adopted, &at, "applied"
			if r.Adopted {
				s.State = "adopted"
			}
		case m.Version == 1 && info.anyTable():
			s.Applied, s.Adopted, s.State = true, true, "present"
			if info.djangoRecorded() {
				s.State, s.AppliedAt = "created_by_django", info.djangoInitialAt
			}
		case m.Optional:
			s.State = "not_enabled"
		}
		out = append(out, s)
	}
	return out, nil
}

// Report is the outcome of Validate. Its lists are empty, never null, in JSON.
type Report struct {
	Pending  []string `json:"pending"`  // required migrations not yet applied, as "0001_initial"
	Problems []string `json:"problems"` // schema drift that breaks or slows the worker
	Warnings []string `json:"warnings"` // tolerated differences
	// NotEnabled are optional migrations not applied (the audit tables): not a problem.
	NotEnabled []string `json:"not_enabled"`
}

// OK reports whether the schema is current and matches.
func (r Report) OK() bool { return len(r.Pending) == 0 && len(r.Problems) == 0 }

// Validate compares the database with the embedded migrations: pending required versions,
// changed migration files, missing or wrongly typed columns, missing indexes. A database
// whose tables Django's migrate created is valid as it is; optional migrations that are not
// applied are listed in NotEnabled, not as pending. It writes nothing.
func Validate(ctx context.Context, pool *pgxpool.Pool) (Report, error) {
	rep := Report{Pending: []string{}, Problems: []string{}, Warnings: []string{}, NotEnabled: []string{}}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return rep, err
	}
	defer conn.Release()
	applied, info, err := current(ctx, conn.Conn())
	if err != nil {
		return rep, err
	}
	for _, m := range All() {
		name := fmt.Sprintf("%04d_%s", m.Version, m.Name)
		r, ok := applied[m.Version]
		switch {
		case ok && !r.Adopted && r.Checksum != m.Checksum:
			rep.Problems = append(rep.Problems, fmt.Sprintf("migration %s changed since it was applied (checksum %.12s, now %.12s)", name, r.Checksum, m.Checksum))
		case ok:
		case m.Optional:
			rep.NotEnabled = append(rep.NotEnabled, name)
		case m.Version == 1 && info.anyTable():
			// the tables are there (checked below); Django's migrate made them, or someone did
			if !info.djangoRecorded() {
				rep.Warnings = append(rep.Warnings, "django_migrations does not record django_ray 0001_initial, so manage.py migrate would try to create the tables again (rayctl migrate up records it)")
			}
		default:
			rep.Pending = append(rep.Pending, name)
		}
	}
	rep.Warnings = append(rep.Warnings, info.djangoWarnings()...)
	if info.anyTable() {
		problems, warnings := info.check()
		rep.Problems = append(rep.Problems, problems...)
		for _, w := range warnings {
			if strings.HasPrefix(w, "missing index") {
				rep.Problems = append(rep.Problems, w)
			} else {
				rep.Warnings = append(rep.Warnings, w)
			}
		}
	}
	return rep, nil
}

// ErrNoSchema is returned by callers that need the tables when they do not exist.
var ErrNoSchema = errors.New("the django-ray tables do not exist in this database (run `rayctl migrate up`)")
