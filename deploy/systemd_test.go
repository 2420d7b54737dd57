package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unit is a parsed systemd unit file: section -> key -> values (in order).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: bad line %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// envFile reads KEY=value lines.
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		env[k] = v
	}
	return env
}

var units = []string{"systemd/rayworker.service", "systemd/rayworker@.service"}

// checkUnit lists what a rayworker unit gets wrong against what docs/deploy.md promises.
func checkUnit(u unit, shutdown time.Duration, template bool) []string {
	var p []string
	svc := u["Service"]
	want := map[string]string{
		"Type": "notify", "KillSignal": "SIGTERM", "KillMode": "mixed", "Restart": "on-failure",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "User": "rayworker",
		"RestartPreventExitStatus": "2",
	}
	for k, v := range want {
		if u.get("Service", k) != v {
			p = append(p, k+"="+u.get("Service", k)+", want "+v)
		}
	}
	if !strings.Contains(" "+u.get("Service", "SuccessExitStatus")+" ", " 143 ") {
		p = append(p, "SuccessExitStatus lacks 143: a graceful stop would count as a failure")
	}
	stop, err := time.ParseDuration(strings.ReplaceAll(u.get("Service", "TimeoutStopSec"), "min", "m"))
	if err != nil || stop < shutdown+10*time.Second {
		p = append(p, "TimeoutStopSec="+u.get("Service", "TimeoutStopSec")+" is not 10s above the shutdown timeout "+shutdown.String())
	}
	if u.get("Service", "WatchdogSec") == "" {
		p = append(p, "no WatchdogSec: a stalled loop is never restarted")
	}
	exec := u.get("Service", "ExecStart")
	if !strings.HasPrefix(exec, "/usr/bin/rayworker") {
		p = append(p, "ExecStart="+exec)
	}
	if template && !strings.Contains(exec, "--queue %i") {
		p = append(p, "the template unit does not take its queue from the instance name")
	}
	if len(svc["EnvironmentFile"]) == 0 || svc["EnvironmentFile"][0] != "/etc/rayworker/rayworker.env" {
		p = append(p, "EnvironmentFile is not /etc/rayworker/rayworker.env first")
	}
	if u.get("Install", "WantedBy") != "multi-user.target" {
		p = append(p, "not WantedBy=multi-user.target")
	}
	return p
}

// TestSystemdUnits: the units promise what docs/deploy.md says (readiness, shutdown budget
// above the drain, restart policy, hardening, the template's queue), against the shutdown
// timeout the environment file example sets (else rayworker's documented default).
func TestSystemdUnits(t *testing.T) {
	env := envFile(t, "systemd/rayworker.env")
	shutdown := rayworkerDefault(t, "shutdown-timeout")
	if v, ok := env["DJANGO_RAY_SHUTDOWN_TIMEOUT"]; ok {
		var err error
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range units {
		if p := checkUnit(parseUnit(t, path), shutdown, strings.Contains(path, "@")); len(p) > 0 {
			t.Errorf("%s:\n  %s", path, strings.Join(p, "\n  "))
		}
	}
	// the check can fail: a longer drain than the unit allows is caught
	if p := checkUnit(parseUnit(t, units[0]), 2*time.Minute, false); len(p) == 0 {
		t.Error("a 2m drain under TimeoutStopSec=45s passed the check")
	}
	// every variable in the example is one rayworker reads
	help, err := exec.Command(filepath.Join(binaries(t), "rayworker"), "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	for k := range env {
		if !strings.Contains(string(help), "$"+k) {
			t.Errorf("rayworker.env sets %s, which rayworker --help does not list", k)
		}
	}
}

// verifyUnits runs `systemd-analyze verify` on units in a scratch copy, with ExecStart
// pointed at the built binary (verify checks the command exists), and returns its output:
// empty when systemd has nothing to say. Unknown keys and bad values are only warnings to
// systemd (exit 0), so any output counts as a failure.
func verifyUnits(t *testing.T, sources map[string]string) (string, error) {
	t.Helper()
	analyze := requireTool(t, "systemd-analyze", "apt-get install systemd")
	dir := t.TempDir()
	var names []string
	for name, text := range sources {
		text = strings.ReplaceAll(text, "/usr/bin/rayworker", filepath.Join(binaries(t), "rayworker"))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Join(dir, name))
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, names...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestSystemdAnalyzeVerify: systemd itself accepts both units without a warning; a misspelt
// key is caught the same way.
func TestSystemdAnalyzeVerify(t *testing.T) {
	src := map[string]string{}
	for _, path := range units {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		src[filepath.Base(path)] = string(b)
	}
	if out, err := verifyUnits(t, src); err != nil || out != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	bad := strings.Replace(src["rayworker.service"], "ProtectSystem=strict", "ProtectSytem=strict", 1)
	if out, err := verifyUnits(t, map[string]string{"rayworker.service": bad}); err == nil && out == "" {
		t.Fatal("a misspelt key passed systemd-analyze verify")
	}
}
