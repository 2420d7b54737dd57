package migrations

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Table names of the django-ray 0.2.0 schema.
const (
	TaskTable  = "django_ray_raytaskexecution"
	LeaseTable = "django_ray_taskworkerlease"
)

type columnSpec struct {
	name    string
	typ     string // as format_type() prints it
	notNull bool
}

// required is the 0001_initial column set: everything the worker reads or writes.
var required = map[string][]columnSpec{
	TaskTable: {
		{"id", "bigint", true},
		{"task_id", "character varying(255)", true},
		{"callable_path", "character varying(500)", true},
		{"queue_name", "character varying(100)", true},
		{"state", "character varying(20)", true},
		{"attempt_number", "integer", true},
		{"ray_job_id", "character varying(255)", false},
		{"ray_address", "character varying(255)", false},
		{"created_at", "timestamp with time zone", true},
		{"started_at", "timestamp with time zone", false},
		{"finished_at", "timestamp with time zone", false},
		{"last_heartbeat_at", "timestamp with time zone", false},
		{"run_after", "timestamp with time zone", false},
		{"timeout_seconds", "integer", false},
		{"claimed_by_worker", "character varying(255)", false},
		{"args_json", "text", true},
		{"kwargs_json", "text", true},
		{"result_data", "text", false},
		{"result_reference", "character varying(500)", false},
		{"error_message", "text", false},
		{"error_traceback", "text", false},
	},
	LeaseTable: {
		{"worker_id", "character varying(255)", true},
		{"hostname", "character varying(255)", true},
		{"pid", "integer", true},
		{"queue_name", "character varying(100)", true},
		{"started_at", "timestamp with time zone", true},
		{"last_heartbeat_at", "timestamp with time zone", true},
		{"is_active", "boolean", true},
		{"stopped_at", "timestamp with time zone", false},
	},
}

// requiredIndexes are the index names Django creates in 0001_initial.
var requiredIndexes = []string{
	"django_ray_raytaskexecution_pkey",
	"django_ray_raytaskexecution_task_id_68336790",
	"django_ray_raytaskexecution_task_id_68336790_like",
	"django_ray_raytaskexecution_queue_name_c1ff6fd2",
	"django_ray_raytaskexecution_queue_name_c1ff6fd2_like",
	"django_ray_raytaskexecution_state_263fafac",
	"django_ray_raytaskexecution_state_263fafac_like",
	"django_ray_raytaskexecution_ray_job_id_1f69cb86",
	"django_ray_raytaskexecution_ray_job_id_1f69cb86_like",
	"django_ray_raytaskexecution_created_at_040a081d",
	"django_ray_raytaskexecution_run_after_970909c0",
	"ray_task_claimable_idx",
	"ray_task_heartbeat_idx",
	"django_ray_taskworkerlease_pkey",
	"django_ray_taskworkerlease_worker_id_d47c8e87_like",
	"django_ray_taskworkerlease_queue_name_cab35e98",
	"django_ray_taskworkerlease_queue_name_cab35e98_like",
	"django_ray_taskworkerlease_is_active_994f0370",
}

type column struct {
	typ        string
	notNull    bool
	hasDefault bool // a DEFAULT expression or an identity
}

type schemaInfo struct {
	tables           map[string]map[string]column // table -> column -> info; only tables that exist
	indexes          map[string]bool
	djangoMigrations bool       // a django_migrations table exists
	djangoRayApplied []string   // django_ray migration names recorded there
	djangoInitialAt  *time.Time // when django_migrations recorded django_ray 0001_initial
}

// djangoRecorded reports whether django_migrations records django_ray 0001_initial.
func (s schemaInfo) djangoRecorded() bool { return slices.Contains(s.djangoRayApplied, "0001_initial") }

func (s schemaInfo) anyTable() bool { return len(s.tables) > 0 }

// inspect reads the catalog for the current schema.
func inspect(ctx context.Context, conn *pgx.Conn) (schemaInfo, error) {
	info := schemaInfo{tables: map[string]map[string]column{}, indexes: map[string]bool{}}
	rows, err := conn.Query(ctx, `
		SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
		       a.atthasdef OR a.attidentity <> ''
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid
		WHERE c.relnamespace = current_schema()::regnamespace
		  AND c.relname = ANY($1) AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped`,
		[]string{TaskTable, LeaseTable})
	if err != nil {
		return info, fmt.Errorf("read table columns: %w", err)
	}
	for rows.Next() {
		var table, name string
		var col column
		if err := rows.Scan(&table, &name, &col.typ, &col.notNull, &col.hasDefault); err != nil {
			rows.Close()
			return info, err
		}
		if info.tables[table] == nil {
			info.tables[table] = map[string]column{}
		}
		info.tables[table][name] = col
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return info, err
	}
	idx, err := conn.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ANY($1)`,
		[]string{TaskTable, LeaseTable})
	if err != nil {
		return info, fmt.Errorf("read indexes: %w", err)
	}
	names, err := pgx.CollectRows(idx, pgx.RowTo[string])
	if err != nil {
		return info, fmt.Errorf("read indexes: %w", err)
	}
	for _, n := range names {
		info.indexes[n] = true
	}
	if err := conn.QueryRow(ctx, `SELECT to_regclass('django_migrations') IS NOT NULL`).Scan(&info.djangoMigrations); err != nil {
		return info, err
	}
	if info.djangoMigrations {
		r, err := conn.Query(ctx, `SELECT name, applied FROM django_migrations WHERE app = 'django_ray' ORDER BY name, applied`)
		if err != nil {
			return info, fmt.Errorf("read django_migrations: %w", err)
		}
		type rec struct {
			Name    string
			Applied time.Time
		}
		recs, err := pgx.CollectRows(r, pgx.RowToStructByPos[rec])
		if err != nil {
			return info, fmt.Errorf("read django_migrations: %w", err)
		}
		for _, x := range recs {
			info.djangoRayApplied = append(info.djangoRayApplied, x.Name)
			if x.Name == "0001_initial" && info.djangoInitialAt == nil {
				at := x.Applied
				info.djangoInitialAt = &at
			}
		}
	}
	return info, nil
}

var varcharRe = regexp.MustCompile(`^character varying\((\d+)\)$`)

// typeCompatible reports whether a column of type have can hold every value of type want.
func typeCompatible(have, want string) bool {
	if have == want {
		return true
	}
	w := varcharRe.FindStringSubmatch(want)
	if w == nil {
		return false
	}
	if have == "text" || have == "character varying" {
		return true
	}
	h := varcharRe.FindStringSubmatch(have)
	if h == nil {
		return false
	}
	hn, _ := strconv.Atoi(h[1])
	wn, _ := strconv.Atoi(w[1])
	return hn >= wn
}

// check compares existing tables with 0001_initial. Problems make the schema unusable;
// warnings are tolerated differences (wider columns, extra columns, missing indexes).
func (s schemaInfo) check() (problems, warnings []string) {
	for _, table := range []string{TaskTable, LeaseTable} {
		cols, ok := s.tables[table]
		if !ok {
			problems = append(problems, fmt.Sprintf("table %s is missing", table))
			continue
		}
		known := map[string]bool{}
		for _, want := range required[table] {
			known[want.name] = true
			have, ok := cols[want.name]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("column %s.%s is missing (want %s)", table, want.name, want.typ))
			case !typeCompatible(have.typ, want.typ):
				problems = append(problems, fmt.Sprintf("column %s.%s has type %s, want %s", table, want.name, have.typ, want.typ))
			case have.notNull != want.notNull:
				problems = append(problems, fmt.Sprintf("column %s.%s is %s, want %s", table, want.name, nullWord(have.notNull), nullWord(want.notNull)))
			case have.typ != want.typ:
				warnings = append(warnings, fmt.Sprintf("column %s.%s has type %s (django-ray 0.2.0 has %s); tolerated", table, want.name, have.typ, want.typ))
			}
		}
		if id, ok := cols["id"]; ok && table == TaskTable && !id.hasDefault {
			problems = append(problems, fmt.Sprintf("column %s.id has no identity or default, so new rows cannot get an id", table))
		}
		var extra []string
		for name := range cols {
			if !known[name] {
				extra = append(extra, name)
			}
		}
		sort.Strings(extra)
		for _, name := range extra {
			c := cols[name]
			if c.notNull && !c.hasDefault {
				warnings = append(warnings, fmt.Sprintf("extra column %s.%s is NOT NULL without a default: rows inserted by rayctl enqueue will be refused (a django-ray 0.3.x schema?)", table, name))
			} else {
				warnings = append(warnings, fmt.Sprintf("extra column %s.%s (%s) is not used; tolerated", table, name, c.typ))
			}
		}
	}
	for _, name := range requiredIndexes {
		if !s.indexes[name] {
			warnings = append(warnings, "missing index "+name)
		}
	}
	return problems, warnings
}

func (s schemaInfo) djangoWarnings() []string {
	var out []string
	for _, name := range s.djangoRayApplied {
		if name > "0001_initial" {
			out = append(out, fmt.Sprintf("django_migrations records django_ray %s: this database was migrated by django-ray 0.3 or later, whose Ray Job contract differs from 0.2.0", name))
		}
	}
	return out
}

func nullWord(notNull bool) string {
	if notNull {
		return "NOT NULL"
	}
	return "nullable"
}
