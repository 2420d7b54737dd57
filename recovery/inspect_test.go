package recovery_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/migrations"
	"github.com/rayctl/rayctl/recovery"
	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// workers stages three leases: alive (fresh), hung (active, heartbeat 10 minutes old) and
// gone (stopped).
func workers(t *testing.T, s *store.Store, sc storetest.Schema) {
	t.Helper()
	ctx := t.Context()
	for _, l := range []store.Lease{
		{WorkerID: "alive", Hostname: "host-a", PID: 11, QueueName: "default,emails"},
		{WorkerID: "hung", Hostname: "host-b", PID: 22, QueueName: "*"},
		{WorkerID: "gone", Hostname: "host-c", PID: 33, QueueName: "default"},
	} {
		if err := s.UpsertLease(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Pool.Exec(ctx, `UPDATE django_ray_taskworkerlease SET last_heartbeat_at = now() - interval '10 minutes',
		started_at = now() - interval '1 hour' WHERE worker_id = 'hung'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeactivateLease(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
}

func TestInspectLeases(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	workers(t, s, sc)
	own := func(state store.TaskState, w string) store.Task {
		return storetest.Insert(t, s, store.Task{State: state, ClaimedByWorker: storetest.Ptr(w), StartedAt: storetest.Ago(2 * time.Minute), LastHeartbeatAt: storetest.Ago(2 * time.Minute)})
	}
	a := own(store.StateRunning, "alive")
	h1 := own(store.StateRunning, "hung")
	h2 := own(store.StateCancelling, "hung")
	g := own(store.StateRunning, "gone")
	x := own(store.StateRunning, "never-registered")

	rep, err := recovery.InspectLeases(ctx, s, recovery.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts != (recovery.VerdictCounts{Fresh: 1, Stale: 1, Expired: 1}) || len(rep.Leases) != 3 {
		t.Fatalf("counts %+v, %d leases", rep.Counts, len(rep.Leases))
	}
	byID := map[string]recovery.LeaseInfo{}
	for _, l := range rep.Leases {
		byID[l.WorkerID] = l
	}
	hung := byID["hung"]
	if hung.Verdict != recovery.VerdictStale || hung.Running != 1 || hung.Cancelling != 1 || !reflect.DeepEqual(hung.TaskIDs, []int64{h1.ID, h2.ID}) ||
		hung.HeartbeatAgeSeconds < 590 || hung.AgeSeconds < 3590 || hung.Hostname != "host-b" || hung.PID != 22 {
		t.Fatalf("hung: %+v", hung)
	}
	if l := byID["alive"]; l.Verdict != recovery.VerdictFresh || l.Running != 1 || !reflect.DeepEqual(l.Queues, []string{"default", "emails"}) {
		t.Fatalf("alive: %+v", l)
	}
	if l := byID["gone"]; l.Verdict != recovery.VerdictExpired || l.StoppedAt == nil {
		t.Fatalf("gone: %+v", l)
	}
	reasons := map[int64]store.OwnerStatus{}
	for _, o := range rep.Orphans {
		reasons[o.Task.ID] = o.Reason
		if o.IdleSeconds < 110 {
			t.Errorf("orphan %d idle %f", o.Task.ID, o.IdleSeconds)
		}
	}
	want := map[int64]store.OwnerStatus{h1.ID: store.OwnerStale, h2.ID: store.OwnerStale, g.ID: store.OwnerInactive, x.ID: store.OwnerUnknown}
	if !reflect.DeepEqual(reasons, want) || rep.OrphansTotal != 4 {
		t.Fatalf("orphans %v (total %d), want %v; the live worker's row %d must not be one", reasons, rep.OrphansTotal, want, a.ID)
	}

	rep, _ = recovery.InspectLeases(ctx, s, recovery.LeaseOptions{StaleOnly: true})
	if len(rep.Leases) != 2 || rep.Counts.Fresh != 1 {
		t.Fatalf("stale only: %d leases, counts %+v", len(rep.Leases), rep.Counts)
	}
	// a long TTL makes the hung worker fresh
	rep, _ = recovery.InspectLeases(ctx, s, recovery.LeaseOptions{LeaseTTL: time.Hour})
	if rep.Counts.Fresh != 2 || rep.OrphansTotal != 2 {
		t.Fatalf("TTL 1h: %+v orphans %d", rep.Counts, rep.OrphansTotal)
	}
}

func TestLeaseCovers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		label, q string
		want     bool
	}{
		{"default,emails", "emails", true},
		{"default,emails", "email", false},
		{"*", "anything", true},
		{"a,b,...", "zzz", true},
		{"", "default", false},
	}
	for _, tc := range cases {
		if got := recovery.LeaseCovers(tc.label, tc.q); got != tc.want {
			t.Errorf("LeaseCovers(%q, %q) = %v", tc.label, tc.q, got)
		}
	}
}

func TestListTasksPaging(t *testing.T) {
	t.Parallel()
	s, _ := storetest.New(t)
	ctx := t.Context()
	var all []int64
	for i := 0; i < 7; i++ {
		all = append(all, storetest.Insert(t, s, store.Task{State: store.StateFailed}).ID)
	}
	storetest.Insert(t, s, store.Task{State: store.StateQueued})
	f := store.TaskFilter{States: []store.TaskState{store.StateFailed}}
	var got []int64
	var cursor int64
	pages := 0
	for {
		page, err := recovery.ListTasks(ctx, s, recovery.ListOptions{Filter: f, Limit: 3, BeforeID: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if page.Total != 7 {
			t.Fatalf("total %d", page.Total)
		}
		for _, task := range page.Tasks {
			got = append(got, task.ID)
		}
		if page.NextBeforeID == nil {
			break
		}
		cursor = *page.NextBeforeID
	}
	want := []int64{all[6], all[5], all[4], all[3], all[2], all[1], all[0]}
	if pages != 3 || !reflect.DeepEqual(got, want) {
		t.Fatalf("%d pages, ids %v, want %v newest first", pages, got, want)
	}
	if _, err := recovery.ListTasks(ctx, s, recovery.ListOptions{Limit: 10001}); !errors.Is(err, recovery.ErrBadSelection) {
		t.Fatalf("huge limit: %v", err)
	}
	// an exact page ends without a cursor
	page, _ := recovery.ListTasks(ctx, s, recovery.ListOptions{Filter: f, Limit: 7})
	if len(page.Tasks) != 7 || page.NextBeforeID != nil {
		t.Fatalf("exact page: %d tasks, cursor %v", len(page.Tasks), page.NextBeforeID)
	}
}

const digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseReference(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rel := "01/23/" + digest + ".json"
	if err := os.MkdirAll(filepath.Join(dir, "01", "23"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(rel)), []byte(`{"big": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := []struct {
		ref, dir    string
		scheme      string
		retrievable bool
		bytes       int64
		explain     string
	}{
		{"oversize://sha256/" + digest + "?bytes=2097152", "", "oversize", false, 2097152, "digest only"},
		{"resultfs://sha256/" + digest + "?rel=" + rel + "&bytes=13", "", "resultfs", true, 13, "file " + rel},
		{"s3://bucket/django-ray/results/01/23/" + digest + ".json?bytes=5", "", "s3", true, 5, "S3 object s3://bucket/django-ray/results"},
		{"gs://b/k.json?bytes=5", "", "gs", true, 5, "GCS object gs://b/k.json"},
	}
	for _, tc := range ok {
		r, err := recovery.ParseReference(tc.ref, tc.dir)
		if err != nil {
			t.Fatalf("%s: %v", tc.ref, err)
		}
		if r.Scheme != tc.scheme || r.Retrievable != tc.retrievable || r.Bytes == nil || *r.Bytes != tc.bytes || !strings.Contains(r.Explanation, tc.explain) {
			t.Errorf("%s: %+v", tc.ref, r)
		}
	}
	r, err := recovery.ParseReference("resultfs://sha256/"+digest+"?rel="+rel+"&bytes=13", dir)
	if err != nil || r.FileExists == nil || !*r.FileExists || *r.FileBytes != 13 || r.Path != filepath.Join(dir, "01", "23", digest+".json") {
		t.Fatalf("resolved file: %+v %v", r, err)
	}
	r, _ = recovery.ParseReference("resultfs://sha256/"+digest+"?rel=ff/ff/"+digest+".json&bytes=13", dir)
	if r.FileExists == nil || *r.FileExists {
		t.Fatalf("missing file reported present: %+v", r)
	}
	// symbolic links out of the result directory are not followed: neither a linked file nor
	// a linked directory reveals whether something exists elsewhere, or its size
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	linkedFile := "aa/aa/" + digest + ".json"
	if err := os.MkdirAll(filepath.Join(dir, "aa", "aa"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, filepath.FromSlash(linkedFile))); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(outside, "bb"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "bb", digest+".json"), []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "bb")); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{linkedFile, "bb/bb/" + digest + ".json"} {
		r, err := recovery.ParseReference("resultfs://sha256/"+digest+"?rel="+rel+"&bytes=13", dir)
		if err != nil {
			t.Fatal(err)
		}
		if r.FileExists == nil || *r.FileExists || r.FileBytes != nil || !strings.Contains(r.FileProblem, "not followed") {
			t.Errorf("%s: a symlink out of the result directory was followed: %+v", rel, r)
		}
	}
	// a relative link that stays inside is followed
	if err := os.Symlink(digest+".json", filepath.Join(dir, "01", "23", "link.json")); err != nil {
		t.Fatal(err)
	}
	if r, _ := recovery.ParseReference("resultfs://sha256/"+digest+"?rel=01/23/link.json&bytes=13", dir); r.FileExists == nil || !*r.FileExists {
		t.Errorf("a symlink inside the result directory: %+v", r)
	}

	bad := []struct{ ref, want string }{
		{"no-scheme", "no scheme"},
		{"oversize://md5/abc?bytes=1", "64 hex digits"},
		{"resultfs://sha256/" + digest + "?rel=../../etc/passwd&bytes=1", "unsafe"},
		{"resultfs://sha256/" + digest + "?rel=/etc/passwd&bytes=1", "unsafe"},
		{"s3://bucket-only?bytes=1", "want s3://<bucket>/<key>"},
		{"oversize://sha256/" + digest + "?bytes=-4", "bad byte count"},
		{"ftp://x/y", `unknown scheme "ftp"`},
	}
	for _, tc := range bad {
		if _, err := recovery.ParseReference(tc.ref, dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.ref, err, tc.want)
		}
	}
}

func TestTaskDetail(t *testing.T) {
	t.Parallel()
	s, sc := storetest.New(t)
	ctx := t.Context()
	workers(t, s, sc)
	task := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ClaimedByWorker: storetest.Ptr("hung"), RayJobID: storetest.Ptr("raysubmit_1"),
		CreatedAt: time.Now().Add(-time.Hour), StartedAt: storetest.Ago(50 * time.Minute), FinishedAt: storetest.Ago(40 * time.Minute),
		ResultReference: storetest.Ptr("oversize://sha256/" + digest + "?bytes=2000000")})
	d, err := recovery.TaskDetail(ctx, s, task.ID, recovery.DetailOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range d.Timeline {
		names = append(names, e.Name)
	}
	if !reflect.DeepEqual(names, []string{"created", "started", "finished"}) || d.Timeline[0].AgoSeconds < 3590 {
		t.Fatalf("timeline: %+v", d.Timeline)
	}
	if d.Result.Kind != "reference" || d.Result.Reference == nil || d.Result.Reference.Retrievable {
		t.Fatalf("result: %+v", d.Result)
	}
	if d.Owner == nil || d.Owner.Verdict != "stale" || d.Owner.Lease == nil || d.Owner.Lease.Hostname != "host-b" {
		t.Fatalf("owner: %+v", d.Owner)
	}
	inline := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultData: storetest.Ptr(`{"a": 1}`), ClaimedByWorker: storetest.Ptr("ghost"),
		ResultReference: nil})
	d, _ = recovery.TaskDetail(ctx, s, inline.ID, recovery.DetailOptions{})
	if d.Result.Kind != "inline" || d.Result.Bytes != 8 || d.Owner.Verdict != "unknown" || d.Owner.Lease != nil {
		t.Fatalf("inline/ghost: %+v %+v", d.Result, d.Owner)
	}
	weird := storetest.Insert(t, s, store.Task{ResultReference: storetest.Ptr("ftp://x")})
	d, _ = recovery.TaskDetail(ctx, s, weird.ID, recovery.DetailOptions{})
	if d.Result.ReferenceError == "" || d.Owner != nil {
		t.Fatalf("bad reference: %+v", d.Result)
	}
	if _, err := recovery.TaskDetail(ctx, s, 999999, recovery.DetailOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing task: %v", err)
	}
}

// fakeProber stands in for the Ray client.
type fakeProber struct {
	info recovery.RayInfo
	err  error
}

func (f fakeProber) ProbeRay(context.Context) (recovery.RayInfo, error) { return f.info, f.err }

func doctorCfg(sc storetest.Schema) recovery.DoctorConfig {
	return recovery.DoctorConfig{Connect: func(ctx context.Context) (*store.Pool, error) { return store.Open(ctx, sc.DSN) }}
}

func statuses(rep recovery.Report) map[string]recovery.Status {
	out := map[string]recovery.Status{}
	for _, c := range rep.Checks {
		out[c.Name] = c.Status
	}
	return out
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("healthy", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		if err := s.UpsertLease(ctx, store.Lease{WorkerID: "w", Hostname: "h", QueueName: "*"}); err != nil {
			t.Fatal(err)
		}
		storetest.Insert(t, s, store.Task{})
		cfg := doctorCfg(sc)
		cfg.Checks = []recovery.Check{recovery.RayCheck{Address: "http://ray:8265", Prober: fakeProber{info: recovery.RayInfo{Address: "http://ray:8265", Version: "2.40.0", AuthMode: "none"}}}}
		rep := recovery.Doctor(ctx, cfg)
		want := map[string]recovery.Status{"database": "ok", "schema": "ok", "clock": "ok", "leases": "ok", "backlog": "ok", "claims": "ok", "stuck": "ok", "cancelling": "ok", "failures": "ok", "workers": "ok", "references": "ok", "ray": "ok"}
		if got := statuses(rep); !reflect.DeepEqual(got, want) || !rep.OK || rep.Worst() != recovery.StatusOK {
			t.Fatalf("statuses %v\n%+v", got, rep)
		}
		if c := rep.Checks[len(rep.Checks)-1]; c.Name != "ray" || !strings.Contains(c.Summary, "Ray 2.40.0 reachable") {
			t.Fatalf("ray check: %+v", c)
		}
	})

	t.Run("incident", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		workers(t, s, sc) // alive polls default,emails; hung; gone
		old := time.Now().Add(-20 * time.Minute)
		storetest.Insert(t, s, store.Task{QueueName: "reports", CreatedAt: old})                                                                   // nobody polls reports
		storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("gone"), StartedAt: storetest.Ago(time.Hour)}) // stuck orphan
		storetest.Insert(t, s, store.Task{State: store.StateCancelling, ClaimedByWorker: storetest.Ptr("gone")})
		for i := 0; i < 12; i++ {
			storetest.Insert(t, s, store.Task{State: store.StateFailed, CallablePath: "app.charge", FinishedAt: storetest.Ago(time.Minute),
				LastHeartbeatAt: storetest.Ago(time.Minute), ErrorMessage: storetest.Ptr("boom")})
		}
		if _, err := sc.Pool.Exec(ctx, `DROP TABLE rayctl_audit_task, rayctl_audit; DELETE FROM rayctl_schema_migrations WHERE version = 2`); err != nil {
			t.Fatal(err)
		}
		cfg := doctorCfg(sc)
		cfg.Clock = func() time.Time { return time.Now().Add(30 * time.Second) } // this host runs 30 s fast
		cfg.Checks = []recovery.Check{recovery.RayCheck{Address: "http://ray:8265", Prober: fakeProber{err: errors.New("connection refused")}}}
		rep := recovery.Doctor(ctx, cfg)
		want := map[string]recovery.Status{"database": "ok", "schema": "ok", "clock": "fail", "leases": "warn", "backlog": "fail", "claims": "ok", "stuck": "warn", "cancelling": "warn", "failures": "warn", "workers": "ok", "references": "ok", "ray": "fail"}
		if got := statuses(rep); !reflect.DeepEqual(got, want) || rep.OK {
			t.Fatalf("statuses %v, want %v\n%+v", got, want, rep)
		}
		byName := map[string]recovery.CheckResult{}
		for _, c := range rep.Checks {
			byName[c.Name] = c
		}
		for name, text := range map[string]string{
			"backlog":    "no live worker polls reports (1 runnable)",
			"clock":      "ahead of the database",
			"failures":   "12 FAILED or LOST in the last 5m, most from app.charge",
			"cancelling": "1 CANCELLING owned by no live worker",
			"schema":     "audit trail off",
		} {
			if !strings.Contains(byName[name].Summary, text) {
				t.Errorf("%s: %q lacks %q", name, byName[name].Summary, text)
			}
		}
	})

	t.Run("no worker, old backlog", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		storetest.Insert(t, s, store.Task{CreatedAt: time.Now().Add(-time.Hour)})
		rep := recovery.Doctor(ctx, doctorCfg(sc))
		if got := statuses(rep); got["backlog"] != recovery.StatusFail || got["leases"] != recovery.StatusWarn || got["ray"] != "" || rep.OK {
			t.Fatalf("statuses %v", got)
		}
	})

	t.Run("nothing runs while the queue ages", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		if err := s.UpsertLease(ctx, store.Lease{WorkerID: "w", Hostname: "h", QueueName: "default"}); err != nil {
			t.Fatal(err)
		}
		storetest.Insert(t, s, store.Task{CreatedAt: time.Now().Add(-time.Hour)})
		rep := recovery.Doctor(ctx, doctorCfg(sc))
		if c := rep.Checks[4]; c.Name != "backlog" || c.Status != recovery.StatusFail || !strings.Contains(c.Summary, "while nothing runs") {
			t.Fatalf("backlog: %+v", c)
		}
	})

	t.Run("large backlog without the claim index", func(t *testing.T) {
		t.Parallel()
		s, sc := storetest.New(t)
		if err := s.UpsertLease(ctx, store.Lease{WorkerID: "w", Hostname: "h", QueueName: "*"}); err != nil {
			t.Fatal(err)
		}
		batch := make([]store.NewTask, 10000)
		for i := range batch {
			batch[i] = store.NewTask{CallablePath: "app.f"}
		}
		if _, err := s.EnqueueMany(ctx, batch); err != nil {
			t.Fatal(err)
		}
		claims := func() recovery.CheckResult {
			for _, c := range recovery.Doctor(ctx, doctorCfg(sc)).Checks {
				if c.Name == "claims" {
					return c
				}
			}
			t.Fatal("no claims check")
			return recovery.CheckResult{}
		}
		if c := claims(); c.Status != recovery.StatusWarn || !strings.Contains(c.Summary, "10000 QUEUED and no claim-order index") || !strings.Contains(c.Hint, "rayctl migrate indexes --apply") {
			t.Fatalf("without the index: %+v", c)
		}
		states, err := migrations.InspectOptional(ctx, sc.Pool)
		if err != nil {
			t.Fatal(err)
		}
		if err := migrations.CreateOptional(ctx, sc.Pool, states[0]); err != nil {
			t.Fatal(err)
		}
		if c := claims(); c.Status != recovery.StatusOK || !strings.Contains(c.Summary, "claims read rayctl_claim_order_idx") {
			t.Fatalf("with the index: %+v", c)
		}
	})

	t.Run("no tables", func(t *testing.T) {
		t.Parallel()
		sc := storetest.EmptySchema(t)
		rep := recovery.Doctor(ctx, doctorCfg(sc))
		got := statuses(rep)
		if got["schema"] != recovery.StatusFail || got["leases"] != recovery.StatusSkip || got["clock"] != recovery.StatusOK {
			t.Fatalf("statuses %v", got)
		}
	})

	t.Run("database down", func(t *testing.T) {
		t.Parallel()
		rep := recovery.Doctor(ctx, recovery.DoctorConfig{
			Connect: func(context.Context) (*store.Pool, error) {
				return nil, errors.New("cannot connect: connection refused")
			},
			Checks: []recovery.Check{recovery.RayCheck{Address: "http://ray:8265"}},
		})
		got := statuses(rep)
		if got["database"] != recovery.StatusFail || got["schema"] != recovery.StatusSkip || got["ray"] != recovery.StatusSkip || rep.OK {
			t.Fatalf("statuses %v", got)
		}
		if !strings.Contains(rep.Checks[0].Summary, "connection refused") || !strings.Contains(rep.Checks[len(rep.Checks)-1].Summary, "no Ray client yet") {
			t.Fatalf("summaries: %+v", rep.Checks)
		}
	})
}

func TestRayCheckWithoutAddress(t *testing.T) {
	t.Parallel()
	r := recovery.RayCheck{}.Run(t.Context())
	if r.Status != recovery.StatusSkip || !strings.Contains(r.Summary, "no --ray-address or RAY_ADDRESS") {
		t.Fatalf("%+v", r)
	}
}

// TestDoctorDjangoSchema: tables Django's migrate created are used as they are: the schema
// check passes and says the optional audit trail is off; the other checks still run.
func TestDoctorDjangoSchema(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	ddl, err := os.ReadFile("../migrations/testdata/django_0001_initial.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Pool.Exec(ctx, string(ddl)+`;
		CREATE TABLE django_migrations (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, app varchar(255) NOT NULL,
			name varchar(255) NOT NULL, applied timestamptz NOT NULL);
		INSERT INTO django_migrations (app, name, applied) VALUES ('django_ray', '0001_initial', now())`); err != nil {
		t.Fatal(err)
	}
	rep := recovery.Doctor(ctx, doctorCfg(sc))
	got := statuses(rep)
	if got["schema"] != recovery.StatusOK || got["backlog"] != recovery.StatusOK || got["stuck"] != recovery.StatusOK || !rep.OK {
		t.Fatalf("statuses %v\n%+v", got, rep.Checks[1])
	}
	if !strings.Contains(rep.Checks[1].Summary, "audit trail off") || !strings.Contains(rep.Checks[1].Hint, "rayctl migrate up --audit") {
		t.Fatalf("schema: %+v", rep.Checks[1])
	}
}
