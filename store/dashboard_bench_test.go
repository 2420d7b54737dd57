package store

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchmarkTopRefresh measures what one `rayctl top` refresh reads, per view, on a schema
// seeded by scripts/bench-top.sh (1,000,000 rows by default): RAYCTL_BENCH_SCHEMA names it.
// With RAYCTL_EXPLAIN=1 it also logs EXPLAIN (ANALYZE, BUFFERS) of every query (run with -v).
// Results and plans: docs/benchmarks.md, "rayctl top refresh at 1,000,000 rows".
func BenchmarkTopRefresh(b *testing.B) {
	schema := os.Getenv("RAYCTL_BENCH_SCHEMA")
	dsn := os.Getenv("DATABASE_URL")
	if schema == "" || dsn == "" {
		b.Skip("needs a seeded schema: run scripts/bench-top.sh")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	ctx := b.Context()
	pool, err := Open(ctx, u.String(), func(c *pgxpool.Config) { c.MaxConns = 2 })
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	s := New(pool)
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM django_ray_raytaskexecution`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s rows in %s", fmtCount(n), schema)

	if os.Getenv("RAYCTL_EXPLAIN") != "" {
		explainAll(b, pool)
	}

	page := 19 // an 80x24 tasks page plus one to know there is more
	cases := []struct {
		name string
		run  func() error
	}{
		{"overview_snapshot", func() error { _, err := s.Dashboard(ctx, benchThresholds); return err }},
		{"snapshot_with_totals", func() error { _, err := s.Dashboard(ctx, withTotals(benchThresholds)); return err }},
		{"workers", func() error { _, _, err := s.Workers(ctx, time.Minute, 500); return err }},
		{"tasks_page", func() error { _, err := s.ListTasks(ctx, TaskFilter{Limit: page}); return err }},
		{"tasks_page_state_failed", func() error {
			_, err := s.ListTasks(ctx, TaskFilter{States: []TaskState{StateFailed}, Limit: page})
			return err
		}},
		{"tasks_page_callable", func() error {
			_, err := s.ListTasks(ctx, TaskFilter{Callable: "app.tasks.job_7", Limit: page})
			return err
		}},
		{"tasks_page_search", func() error { _, err := s.ListTasks(ctx, TaskFilter{Search: "job_17", Limit: page}); return err }},
		{"task_detail", func() error { _, err := s.GetTask(ctx, n/2); return err }},
		{"failures_24h", func() error { _, err := s.FailureGroups(ctx, FailureParams{Window: 24 * time.Hour}); return err }},
		{"failures_all_time", func() error { _, err := s.FailureGroups(ctx, FailureParams{}); return err }},
		{"stats_full_scan_for_comparison", func() error { _, err := s.Stats(ctx, time.Minute); return err }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/refresh")
		})
	}
}

func fmtCount(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// benchThresholds are recovery.DefaultThresholds' (store cannot import recovery).
var benchThresholds = DashboardParams{LeaseTTL: time.Minute, StuckAfter: 5 * time.Minute,
	FailureWindow: 5 * time.Minute, StallAfter: 2 * time.Minute, ResultWindow: time.Hour}

func withTotals(p DashboardParams) DashboardParams {
	p.WithTotals = true
	return p
}

// explainAll logs EXPLAIN (ANALYZE, BUFFERS) of every query a refresh runs, with the
// arguments the code passes.
func explainAll(b *testing.B, pool *pgxpool.Pool) {
	ctx := b.Context()
	p, err := benchThresholds.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	window := time.Duration(p.Buckets) * time.Minute
	fg, fgArgs := failureGroupsQuery(FailureParams{Window: 24 * time.Hour}, 200)
	fgAll, fgAllArgs := failureGroupsQuery(FailureParams{}, 200)
	where, whereArgs := TaskFilter{States: []TaskState{StateFailed}}.where()
	queries := []struct {
		name string
		sql  string
		args []any
	}{
		{"dashboard 1: moving states per queue", dashHotSQL, []any{hotStates}},
		{"dashboard 2: QUEUED per queue and callable", dashQueuedSQL, []any{p.StallAfter.Seconds()}},
		{"dashboard 3: throughput per queue and minute", dashThroughputSQL, []any{(window + p.HeartbeatSlack).Seconds(), window.Seconds()}},
		{"dashboard 4: recent failures per callable", dashFailuresSQL, []any{(p.FailureWindow + p.HeartbeatSlack).Seconds(), p.FailureWindow.Seconds()}},
		{"dashboard 5: stale and orphaned work", dashStuckSQL, []any{p.LeaseTTL.Seconds(), p.StuckAfter.Seconds(), p.StallAfter.Seconds()}},
		{"dashboard 5b: active workers' claims, finishes and task heartbeats", dashWorkersSQL,
			[]any{p.LeaseTTL.Seconds(), p.StallAfter.Seconds(), (p.StallAfter + p.HeartbeatSlack).Seconds()}},
		{"dashboard 5c: results stored by reference", dashReferencesSQL, []any{(p.ResultWindow + p.HeartbeatSlack).Seconds(), p.ResultWindow.Seconds()}},
		{"dashboard 6: leases", dashLeasesSQL, []any{p.LeaseTTL.Seconds()}},
		{"dashboard 7 (every 30 s): SUCCEEDED and CANCELLED totals", dashTotalsSQL, nil},
		{"workers view", workersSQL, []any{time.Minute.Seconds(), 500}},
		{"tasks view: first page", `SELECT ` + taskColumns + ` FROM django_ray_raytaskexecution WHERE TRUE ORDER BY id DESC LIMIT 19`, nil},
		{"tasks view: state:failed", `SELECT ` + taskColumns + ` FROM django_ray_raytaskexecution WHERE ` + where + ` ORDER BY id DESC LIMIT 19`, whereArgs},
		{"failures view: last 24h", fg, fgArgs},
		{"failures view: all time", fgAll, fgAllArgs},
	}
	for _, q := range queries {
		rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q.sql, q.args...)
		if err != nil {
			b.Fatalf("%s: %v", q.name, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				b.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			b.Fatalf("%s: %v", q.name, err)
		}
		b.Logf("--- %s\n%s", q.name, strings.Join(plan, "\n"))
	}
}
