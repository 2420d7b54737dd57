package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestReadCommandsShowPoisonRows: rows nobody should write but anyone can (infinite and
// out-of-range timestamps, a state django-ray does not define, args that are not JSON) are
// shown by every read command, which used to fail on them.
func TestReadCommandsShowPoisonRows(t *testing.T) {
	t.Parallel()
	s, vars := migrated(t)
	ctx := t.Context()
	var ids []string
	for _, set := range []string{
		`run_after = '-infinity'`,
		`run_after = 'infinity', created_at = '-infinity'`,
		`state = 'weird', args_json = '[1,'`,
		`state = 'FAILED', finished_at = '20000-01-01', error_message = 'x'`,
	} {
		row := storetest.Insert(t, s, store.Task{})
		if _, err := storetest.DB(s).Exec(ctx, `UPDATE django_ray_raytaskexecution SET `+set+` WHERE id = $1`, row.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strconv.FormatInt(row.ID, 10))
	}

	r := rayctl(t, vars, "", "tasks", "ls").expect(t, exitOK)
	for _, want := range []string{"-infinity", "weird", "infinity"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("tasks ls does not show %q:\n%s", want, r.stdout)
		}
	}
	r = rayctl(t, vars, "", "tasks", "show", ids[1]).expect(t, exitOK)
	if !strings.Contains(r.stdout, "created    -infinity") || !strings.Contains(r.stdout, "run after  infinity") {
		t.Errorf("tasks show does not show the infinite timestamps:\n%s", r.stdout)
	}
	r = rayctl(t, vars, "", "tasks", "show", ids[2]).expect(t, exitOK)
	if !strings.Contains(r.stdout, "[1,") || !strings.Contains(r.stdout, "weird") {
		t.Errorf("tasks show does not show the malformed row as stored:\n%s", r.stdout)
	}
	r = rayctl(t, vars, "", "tasks", "count", "--by", "state").expect(t, exitOK)
	if !strings.Contains(r.stdout, "weird") {
		t.Errorf("tasks count does not count the unknown state:\n%s", r.stdout)
	}
	r = rayctl(t, vars, "", "stats").expect(t, exitOK)
	if !strings.Contains(r.stdout, "oldest queued: ∞") {
		t.Errorf("stats does not show the oldest runnable task as waiting since -infinity:\n%s", r.stdout)
	}
	for _, args := range [][]string{{"stats", "-o", "json"}, {"tasks", "ls", "-o", "json"}, {"tasks", "show", ids[1], "-o", "json"}} {
		r = rayctl(t, vars, "", args...).expect(t, exitOK)
		if !json.Valid([]byte(r.stdout)) {
			t.Errorf("%v printed invalid JSON:\n%s", args, r.stdout)
		}
	}
	r = rayctl(t, vars, "", "doctor")
	if strings.Contains(r.stdout+r.stderr, "scan") || !strings.Contains(r.stdout, "since -infinity") {
		t.Errorf("doctor cannot read the poison rows:\n%s%s", r.stdout, r.stderr)
	}

	// a lease and a RUNNING row whose heartbeats are infinite: ages are ∞, not an overflow
	if _, err := storetest.DB(s).Exec(ctx, `INSERT INTO django_ray_taskworkerlease VALUES
		('w-inf', 'h', 1, 'default', '-infinity', 'infinity', true, NULL), ('w-neg', 'h', 2, 'default', '-infinity', '-infinity', true, NULL)`); err != nil {
		t.Fatal(err)
	}
	storetest.Insert(t, s, store.Task{State: store.StateRunning, ClaimedByWorker: storetest.Ptr("w-neg"), StartedAt: &store.NegInfinity, LastHeartbeatAt: &store.Infinity})
	for _, args := range [][]string{{"inspect-leases"}, {"tasks", "ls", "--state", "RUNNING"}, {"doctor"}} {
		r = rayctl(t, vars, "", args...)
		if strings.Contains(r.stdout, "922337") || strings.Contains(r.stdout, "2562047h") || r.code != exitOK && r.code != exitUnhealthy {
			t.Errorf("rayctl %v on infinite heartbeats (exit %d):\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := rayctl(t, vars, "", "inspect-leases"); !strings.Contains(r.stdout, "∞ ago") {
		t.Errorf("inspect-leases does not show the infinite heartbeat age:\n%s", r.stdout)
	}
}
