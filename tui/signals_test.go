package tui

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/recovery"
)

// TestSignalsAreDoctors: top's signals are recovery.Evaluate's on the same snapshot, with the
// same thresholds — what rayctl doctor reports (issue 11, findings 2 and 6: one definition) —
// and top adds only how much the queue grew in the last minute.
func TestSignalsAreDoctors(t *testing.T) {
	db := newFakeDB()
	m := New(Options{Source: fakeSource{db}, Clock: func() time.Time { return fixedNow }, RayAddress: "http://ray:8265"})
	d := db.dash
	fs, sigs := m.evaluate(d)
	want := recovery.Evaluate(d, recovery.DefaultThresholds(), recovery.EvalOptions{RayAddress: "http://ray:8265"})
	if !reflect.DeepEqual(fs, want) {
		t.Fatalf("findings differ from recovery.Evaluate:\n%+v\n%+v", fs, want)
	}
	if !reflect.DeepEqual(sigs, recovery.Signals(want)) {
		t.Fatalf("signals %+v", sigs)
	}
	m.history = []sample{{at: fixedNow.Add(-70 * time.Second), queued: 1000}, {at: fixedNow.Add(-2 * time.Second), queued: 1200}}
	_, sigs = m.evaluate(d)
	if !strings.HasSuffix(sigs[0].Summary, "(queued +204 in 1m10s)") || sigs[0].Playbook != recovery.PlaybookBacklog {
		t.Fatalf("backlog note: %+v", sigs[0])
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := num(in); got != want {
			t.Errorf("num(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{3 * time.Second: "3s", 90 * time.Second: "1m30s", 12 * time.Minute: "12m",
		3*time.Hour + 5*time.Minute: "3h5m", 50 * time.Hour: "2d2h", -time.Second: "0s"} {
		if got := shortDur(in); got != want {
			t.Errorf("shortDur(%v) = %q, want %q", in, got, want)
		}
	}
	if got := sparkline([]int64{0, 1, 4, 8}); got != " ▁▄█" {
		t.Errorf("sparkline = %q", got)
	}
	if got := trunc("app.tasks.charge_card", 10); got != "app.tasks…" {
		t.Errorf("trunc = %q", got)
	}
}
