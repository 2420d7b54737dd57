package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/internal/settings"
)

// TestSettingRanges: every number rayworker takes is refused one past either end of its
// range, from the flag or from its variable, with one line naming the flag and the table's
// words for what it accepts; exit 2.
func TestSettingRanges(t *testing.T) {
	type bad struct{ name, env, value, want string }
	var cases []bad
	for _, s := range []settings.Int{settings.Concurrency, settings.MaxTasksPerExecutor, settings.ExecutorMaxRSSMB, settings.RayEntrypointMemoryMB,
		settings.MaxTaskAttempts, settings.RetryBackoffSeconds, settings.StuckTaskTimeoutSeconds, settings.WorkerLeaseSeconds,
		settings.WorkerHeartbeatSeconds, settings.MaxResultSizeBytes} {
		want := "want an integer in " + s.Setting().Accepts
		cases = append(cases, bad{s.Name, s.Env, strconv.FormatInt(s.Min-1, 10), want}, bad{s.Name, s.Env, strconv.FormatInt(s.Max+1, 10), want})
	}
	for _, s := range []settings.Float{settings.RayEntrypointNumCPUs, settings.RayEntrypointNumGPUs} {
		cases = append(cases, bad{s.Name, s.Env, "-1", "want " + s.Setting().Accepts}, bad{s.Name, s.Env, strconv.FormatFloat(s.Max+0.5, 'f', -1, 64), "want " + s.Setting().Accepts})
	}
	for _, s := range []settings.Duration{settings.ExecutorStartTimeout, settings.RayPendingTimeout, settings.ShutdownTimeout} {
		cases = append(cases, bad{s.Name, s.Env, (s.Min - time.Millisecond).String(), "want " + s.Setting().Accepts}, bad{s.Name, s.Env, (s.Max + time.Second).String(), "want " + s.Setting().Accepts})
	}
	for _, c := range cases {
		t.Run(c.name+"="+c.value, func(t *testing.T) {
			want := `rayworker: invalid --` + c.name + ` "` + c.value + `": ` + c.want + "\n"
			if r := rayworker(t, nil, "--"+c.name+"="+c.value); r.code != exitUsage || r.stderr != want {
				t.Errorf("flag: exit %d, stderr %q; want %q", r.code, r.stderr, want)
			}
			want = `rayworker: invalid --` + c.name + ` "` + c.value + `" (from $` + c.env + `): ` + c.want + "\n"
			if r := rayworker(t, map[string]string{c.env: c.value}); r.code != exitUsage || r.stderr != want {
				t.Errorf("variable: exit %d, stderr %q; want %q", r.code, r.stderr, want)
			}
		})
	}
}

// TestFlagsFromTable: rayworker has exactly the table's flags, each with its variable,
// placeholder, accepted values and default in its help.
func TestFlagsFromTable(t *testing.T) {
	flags := settingFlags()
	if len(flags) != len(settings.Worker) {
		t.Fatalf("%d flags for %d settings", len(flags), len(settings.Worker))
	}
	for i, s := range settings.Worker {
		f := flags[i]
		if f.Names()[0] != s.Name {
			t.Errorf("flag %d is --%s, want --%s", i, f.Names()[0], s.Name)
		}
		help := f.String()
		for _, want := range []string{"$" + s.Env, s.Usage} {
			if !strings.Contains(help, want) {
				t.Errorf("--%s help lacks %q: %s", s.Name, want, help)
			}
		}
		if s.Arg != "" && (!strings.Contains(help, s.Accepts) || !strings.Contains(help, "--"+s.Name+" "+s.Arg) ||
			s.Default != "" && !strings.Contains(help, "default "+s.Default+";")) {
			t.Errorf("--%s help lacks its placeholder, accepted values or default: %s", s.Name, help)
		}
	}
}
