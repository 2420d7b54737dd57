// Package migrations creates, adopts and checks the django-ray 0.2.0 schema.
//
// sql/0001_initial.sql is what Django's migration django_ray.0001_initial emits on PostgreSQL,
// byte for byte in structure: a database created by Django and one created here are the same.
// Later files create rayctl's own tables (0002: the rayctl_audit trail of operator actions),
// which Django never reads; the django_ray tables stay exactly Django's.
// Applied versions are recorded in our own bookkeeping table, rayctl_schema_migrations. On a
// database where Django already created the tables, Up checks that they are compatible,
// records them as adopted and changes nothing else. Runs hold an advisory lock, so two
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

// Migration is one embedded schema version.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string // sha256 of SQL, hex
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
		out = append(out, Migration{Version: v, Name: rest, SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
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
}

// IncompatibleError reports an existing schema that the worker cannot use.
type IncompatibleError struct{ Problems []string }

func (e *IncompatibleError) Error() string {
	return "existing django-ray tables are not compatible: " + strings.Join(e.Problems, "; ")
}

// Up applies every pending migration. On a database where Django created the 0.2.0 tables it
// records them as adopted after checking them, and changes nothing else.
func Up(ctx context.Context, pool *pgxpool.Pool, opts Options) (Result, error) {
	var res Result
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Release()
	if err := lock(ctx, conn.Conn()); err != nil {
		return res, err
	}
	defer unlock(conn.Conn())

	if !opts.DryRun {
		if _, err := conn.Exec(ctx, bookkeepingDDL); err != nil {
			return res, fmt.Errorf("create %s: %w", BookkeepingTable, err)
		}
	}
	applied, err := appliedVersions(ctx, conn.Conn())
	if err != nil {
		return res, err
	}
	info, err := inspect(ctx, conn.Conn())
	if err != nil {
		return res, err
	}
	res.Warnings = append(res.Warnings, info.djangoWarnings()...)

	for _, m := range All() {
		if _, ok := applied[m.Version]; ok {
			if m.Version == 1 && !opts.DryRun {
				// Tables created by an older rayctl were not recorded for Django: do it now.
				if err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error { return recordInDjango(ctx, tx) }); err != nil {
					return res, err
				}
			}
			res.Steps = append(res.Steps, Step{Version: m.Version, Name: m.Name, Action: ActionAlreadyReady})
			continue
		}
		if m.Version == 1 && info.anyTable() {
			problems, warnings := info.check()
			res.Warnings = append(res.Warnings, warnings...)
			if len(problems) > 0 {
				return res, &IncompatibleError{Problems: problems}
			}
			step := Step{Version: m.Version, Name: m.Name, Action: ActionWouldAdopt}
			if !opts.DryRun {
				err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `INSERT INTO rayctl_schema_migrations (version, name, checksum, adopted, applied_at) VALUES ($1, $2, $3, true, now())`,
						m.Version, m.Name, m.Checksum); err != nil {
						return fmt.Errorf("record adopted migration %04d: %w", m.Version, err)
					}
					return recordInDjango(ctx, tx) // a no-op when Django created the tables
				})
				if err != nil {
					return res, err
				}
				step.Action = ActionAdopted
			}
			res.Steps = append(res.Steps, step)
			continue
		}
		step := Step{Version: m.Version, Name: m.Name, Action: ActionWouldApply, SQL: m.SQL}
		if !opts.DryRun {
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
	Version   int        `json:"version"`
	Name      string     `json:"name"`
	Applied   bool       `json:"applied"`
	Adopted   bool       `json:"adopted"`
	AppliedAt *time.Time `json:"applied_at"`
}

// Status lists every embedded migration with its state in the database.
func Status(ctx context.Context, pool *pgxpool.Pool) ([]MigrationStatus, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	applied, err := appliedVersions(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	var out []MigrationStatus
	for _, m := range All() {
		s := MigrationStatus{Version: m.Version, Name: m.Name}
		if r, ok := applied[m.Version]; ok {
			at := r.AppliedAt
			s.Applied, s.Adopted, s.AppliedAt = true, r.Adopted, &at
		}
		out = append(out, s)
	}
	return out, nil
}

// Report is the outcome of Validate.
type Report struct {
	Pending  []string `json:"pending"`  // migrations not yet applied, as "0001_initial"
	Problems []string `json:"problems"` // schema drift that breaks or slows the worker
	Warnings []string `json:"warnings"` // tolerated differences
}

// OK reports whether the schema is current and matches.
func (r Report) OK() bool { return len(r.Pending) == 0 && len(r.Problems) == 0 }

// Validate compares the database with the embedded migrations: pending versions, changed
// migration files, missing or wrongly typed columns, missing indexes. It writes nothing.
func Validate(ctx context.Context, pool *pgxpool.Pool) (Report, error) {
	var rep Report
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return rep, err
	}
	defer conn.Release()
	applied, err := appliedVersions(ctx, conn.Conn())
	if err != nil {
		return rep, err
	}
	for _, m := range All() {
		r, ok := applied[m.Version]
		switch {
		case !ok:
			rep.Pending = append(rep.Pending, fmt.Sprintf("%04d_%s", m.Version, m.Name))
		case !r.Adopted && r.Checksum != m.Checksum:
			rep.Problems = append(rep.Problems, fmt.Sprintf("migration %04d_%s changed since it was applied (checksum %.12s, now %.12s)", m.Version, m.Name, r.Checksum, m.Checksum))
		}
	}
	info, err := inspect(ctx, conn.Conn())
	if err != nil {
		return rep, err
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
