package settings

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The typed rows: every one of them must be in Worker, with the row its type writes.
var (
	ints      = []Int{Concurrency, MaxTasksPerExecutor, ExecutorMaxRSSMB, RayEntrypointMemoryMB, MaxTaskAttempts, RetryBackoffSeconds, StuckTaskTimeoutSeconds, WorkerLeaseSeconds, WorkerHeartbeatSeconds, MaxResultSizeBytes}
	floats    = []Float{RayEntrypointNumCPUs, RayEntrypointNumGPUs}
	durations = []Duration{ExecutorStartTimeout, RayPendingTimeout, ShutdownTimeout}
)

func byName(t *testing.T, name string) Setting {
	t.Helper()
	for _, s := range Worker {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("--%s is not in settings.Worker", name)
	return Setting{}
}

// TestTable: every row is complete, names and variables are unique, and every subset rayctl
// uses is made of Worker's rows exactly.
func TestTable(t *testing.T) {
	names, envs := map[string]bool{}, map[string]bool{}
	for _, s := range Worker {
		if s.Name == "" || s.Env == "" || s.Accepts == "" || s.Usage == "" {
			t.Errorf("incomplete row %+v", s)
		}
		if names[s.Name] || envs[s.Env] {
			t.Errorf("--%s / $%s appears twice", s.Name, s.Env)
		}
		names[s.Name], envs[s.Env] = true, true
		if !strings.HasPrefix(s.Env, "DJANGO_RAY_") && s.Env != "DATABASE_URL" && !strings.HasPrefix(s.Env, "RAY_") {
			t.Errorf("--%s: $%s is neither django-ray's DJANGO_RAY_ name nor a standard variable", s.Name, s.Env)
		}
		if s.Arg == "" && (s.Default != "false" || s.Accepts != "true/false") {
			t.Errorf("--%s has no value placeholder but is not a boolean: %+v", s.Name, s)
		}
		// urfave/cli takes the first `quoted` word of a usage as the placeholder
		if strings.Contains(s.Usage+s.Accepts+s.Default, "`") {
			t.Errorf("--%s: a backquote in its help would replace the placeholder %s", s.Name, s.Arg)
		}
	}
	for name := range docNotes {
		byName(t, name)
	}
	for name, rows := range map[string][]Setting{"Policy": Policy, "ResultStorage": ResultStorage, "CloudStorage": CloudStorage} {
		for _, s := range rows {
			if byName(t, s.Name) != s {
				t.Errorf("%s's --%s differs from Worker's", name, s.Name)
			}
		}
	}
	for _, s := range ints {
		if byName(t, s.Name) != s.Setting() {
			t.Errorf("Worker's --%s is not its Int's row", s.Name)
		}
	}
	for _, s := range floats {
		if byName(t, s.Name) != s.Setting() {
			t.Errorf("Worker's --%s is not its Float's row", s.Name)
		}
	}
	for _, s := range durations {
		if byName(t, s.Name) != s.Setting() {
			t.Errorf("Worker's --%s is not its Duration's row", s.Name)
		}
	}
}

// TestRanges: each number's default is in its range and parses back; the bounds are accepted
// and one past them is refused with the message rayworker and rayctl print after the flag.
func TestRanges(t *testing.T) {
	for _, s := range ints {
		if s.Default < s.Min || s.Default > s.Max {
			t.Errorf("--%s: default %d outside %d..%d", s.Name, s.Default, s.Min, s.Max)
		}
		if n, err := s.Parse(s.Setting().Default); err != nil || n != s.Default {
			t.Errorf("--%s: shown default %q parses to %d, %v", s.Name, s.Setting().Default, n, err)
		}
		for _, v := range []int64{s.Min, s.Max} {
			if n, err := s.Parse(" " + strconv.FormatInt(v, 10) + " "); err != nil || n != v {
				t.Errorf("--%s %d: %d, %v", s.Name, v, n, err)
			}
		}
		want := "want an integer in " + s.Setting().Accepts
		for _, v := range []string{strconv.FormatInt(s.Min-1, 10), strconv.FormatInt(s.Max+1, 10), "1.5", "", "ten"} {
			if _, err := s.Parse(v); err == nil || err.Error() != want {
				t.Errorf("--%s %q: error %v, want %q", s.Name, v, err, want)
			}
		}
	}
	for _, s := range floats {
		if f, err := s.Parse(s.Setting().Default); err != nil || f != s.Default {
			t.Errorf("--%s: shown default parses to %v, %v", s.Name, f, err)
		}
		if _, err := s.Parse("0.25"); err != nil {
			t.Errorf("--%s 0.25: %v", s.Name, err)
		}
		want := "want " + s.Setting().Accepts
		for _, v := range []string{"-0.5", strconv.FormatFloat(s.Max+1, 'f', -1, 64), "NaN", "x"} {
			if _, err := s.Parse(v); err == nil || err.Error() != want {
				t.Errorf("--%s %q: error %v, want %q", s.Name, v, err, want)
			}
		}
	}
	for _, s := range durations {
		if d, err := s.Parse(s.Setting().Default); err != nil || d != s.Default {
			t.Errorf("--%s: shown default %q parses to %v, %v", s.Name, s.Setting().Default, d, err)
		}
		if d, err := s.Parse(strconv.FormatInt(int64(s.Max/time.Second), 10)); err != nil || d != s.Max {
			t.Errorf("--%s: its maximum in seconds: %v, %v", s.Name, d, err)
		}
		want := "want " + s.Setting().Accepts
		for _, v := range []string{(s.Min - time.Millisecond).String(), (s.Max + time.Second).String(), "soon", "Inf"} {
			if _, err := s.Parse(v); err == nil || err.Error() != want {
				t.Errorf("--%s %q: error %v, want %q", s.Name, v, err, want)
			}
		}
	}
}

// TestDefaults: the constants other packages fill their Config with are the table's.
func TestDefaults(t *testing.T) {
	for _, c := range []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"retry-backoff-seconds", RetryBackoffSeconds.Seconds(), DefaultRetryBackoff},
		{"stuck-task-timeout-seconds", StuckTaskTimeoutSeconds.Seconds(), DefaultStuckTaskTimeout},
		{"worker-lease-seconds", WorkerLeaseSeconds.Seconds(), DefaultWorkerLease},
		{"worker-heartbeat-seconds", WorkerHeartbeatSeconds.Seconds(), DefaultWorkerHeartbeat},
	} {
		if c.got != c.want {
			t.Errorf("--%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// the defaults satisfy the heartbeat rule rayworker enforces
	if DefaultWorkerHeartbeat >= DefaultWorkerLease || DefaultWorkerHeartbeat >= DefaultStuckTaskTimeout {
		t.Error("the default heartbeat is not shorter than the default lease and stuck timeout")
	}
	for name, want := range map[string]string{"entrypoint": DefaultEntrypoint, "ray-address": DefaultRayAddress,
		"result-storage-s3-prefix": DefaultResultPrefix, "result-storage-gcs-prefix": DefaultResultPrefix,
		"result-storage-backend": "digest", "result-storage-s3-bucket": "", "concurrency": "10", "max-task-attempts": "3",
		"max-result-size-bytes": "1048576", "executor-start-timeout": "2m", "ray-pending-timeout": "15m", "shutdown-timeout": "30s"} {
		if got := byName(t, name).Default; got != want {
			t.Errorf("--%s default %q, want %q", name, got, want)
		}
	}
	if ResultStorageBackend.Accepts != ResultBackends {
		t.Errorf("--result-storage-backend accepts %q", ResultStorageBackend.Accepts)
	}
}

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s", time.Second: "1s", 30 * time.Second: "30s", 2 * time.Minute: "2m",
		15 * time.Minute: "15m", time.Hour: "1h", 24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s"} {
		if got := Short(d); got != want {
			t.Errorf("Short(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseBool(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "TRUE": true, " yes ": true, "on": true, "0": false, "false": false, "No": false, "off": false, "": false} {
		if got, err := ParseBool(v); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", v, got, err)
		}
	}
	if _, err := ParseBool("maybe"); err == nil || err.Error() != "want true/false" {
		t.Errorf("ParseBool(maybe): %v", err)
	}
}

// TestConfigurationDoc: docs/configuration.md is what the table generates.
func TestConfigurationDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != Markdown() {
		t.Fatal("docs/configuration.md is out of date with internal/settings: run go generate ./internal/settings")
	}
	for _, s := range Worker {
		if !strings.Contains(string(b), "| `--"+s.Name) {
			t.Errorf("docs/configuration.md lacks --%s", s.Name)
		}
	}
}

// TestReadmeRows: a README table row that names a setting (its first cell is the flag, with
// its placeholder if it takes a value) agrees with the table: variable, default, accepts.
// The README need not list the settings; docs/configuration.md does.
func TestReadmeRows(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, s := range Worker {
			flag := "--" + s.Name
			if s.Arg != "" {
				flag += " " + s.Arg
			}
			if !strings.HasPrefix(line, "| `"+flag+"` |") {
				continue
			}
			cells := strings.Split(strings.Trim(line, "| "), " | ")
			if len(cells) < 5 {
				t.Errorf("README row for --%s has %d cells, want flag, environment, default, accepts, meaning:\n%s", s.Name, len(cells), line)
				continue
			}
			env, def, accepts := cells[1], strings.Trim(cells[2], "`"), cells[3]
			if def == "—" {
				def = ""
			}
			if env != "`"+s.Env+"`" || def != s.Default || (accepts != s.Accepts && accepts != cell(s.Accepts)) {
				t.Errorf("README row for --%s disagrees with internal/settings (want $%s, default %q, accepts %q):\n%s", s.Name, s.Env, s.Default, s.Accepts, line)
			}
		}
	}
}

func TestDefault(t *testing.T) {
	d, n, f := time.Duration(0), -1, 2.5
	Default(&d, time.Minute)
	Default(&n, 4)
	Default(&f, 50)
	if d != time.Minute || n != 4 || f != 2.5 {
		t.Errorf("Default: %v %v %v; want 1m0s 4 2.5 (a set value stays)", d, n, f)
	}
}
