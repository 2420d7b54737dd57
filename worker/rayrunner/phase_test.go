package rayrunner

import (
	"testing"
	"time"

	"github.com/rayctl/rayctl/rayjobs"
)

// TestJobPhase: the flags decode to one phase, the first that applies winning, as step
// acts on them.
func TestJobPhase(t *testing.T) {
	t.Parallel()
	at := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name string
		job  job
		want phase
	}{
		{"submitted by this process, not yet", job{own: true}, phaseSubmit},
		{"a POST of unknown fate", job{own: true, check: true}, phaseLookup},
		{"Poll asked about it", job{own: true, look: true}, phaseLookup},
		{"a dead worker's job", job{}, phaseLookup},
		{"to stop, maybe never submitted", job{own: true, stop: stopCancel}, phaseLookup},
		{"to stop", job{own: true, acked: true, stop: stopCancel}, phaseStop},
		{"stop accepted", job{own: true, acked: true, stop: stopCancel, stopSent: at}, phaseWatch},
		{"a list missed it", job{acked: true, confirm: true}, phaseConfirm},
		{"to stop beats confirm", job{acked: true, confirm: true, stop: stopPending}, phaseStop},
		{"running", job{acked: true}, phaseWatch},
		{"Ray does not know an orphan", job{orphan404: at}, phaseOrphan},
		{"finished beats everything", job{terminal: &rayjobs.JobDetails{}, orphan404: at, check: true, confirm: true}, phaseLogs},
	} {
		if got := tc.job.phase(); got != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.want)
		}
	}
}
