package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/internal/settings"
)

// TestPolicySettings: reconcile-jobs (and top) read the workers' numeric settings with
// rayworker's ranges and words, from the flag or rayworker's variable; --help lists each
// with its variable and default, from the one table.
func TestPolicySettings(t *testing.T) {
	for _, s := range []settings.Int{settings.MaxTaskAttempts, settings.RetryBackoffSeconds, settings.MaxResultSizeBytes} {
		bad := strconv.FormatInt(s.Max+1, 10)
		want := "rayctl: reconcile-jobs: invalid --" + s.Name + ` "` + bad + `": want an integer in ` + s.Setting().Accepts + "\n"
		if r := rayctl(t, nil, "", "reconcile-jobs", "--"+s.Name, bad); r.code != exitUsage || r.stderr != want {
			t.Errorf("--%s %s: exit %d, stderr %q; want %q", s.Name, bad, r.code, r.stderr, want)
		}
		bad = strconv.FormatInt(s.Min-1, 10)
		want = "rayctl: reconcile-jobs: invalid --" + s.Name + ` "` + bad + `" (from $` + s.Env + `): want an integer in ` + s.Setting().Accepts + "\n"
		if r := rayctl(t, map[string]string{s.Env: bad}, "", "reconcile-jobs"); r.code != exitUsage || r.stderr != want {
			t.Errorf("$%s=%s: exit %d, stderr %q; want %q", s.Env, bad, r.code, r.stderr, want)
		}
	}
	r := rayctl(t, nil, "", "reconcile-jobs", "--help")
	for _, s := range settings.Policy {
		if !strings.Contains(r.stdout, "--"+s.Name) || !strings.Contains(r.stdout, "$"+s.Env+")") {
			t.Errorf("reconcile-jobs --help lacks --%s with $%s", s.Name, s.Env)
		}
		if s.Default != "" && !strings.Contains(r.stdout, "default "+s.Default+";") {
			t.Errorf("reconcile-jobs --help lacks --%s's default %s", s.Name, s.Default)
		}
	}
}
