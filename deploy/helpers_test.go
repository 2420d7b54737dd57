// Package deploy holds the deployment definitions (systemd units, Kubernetes manifests,
// container image definitions) and the tests that check them offline. It is a module of its
// own so that the Kubernetes, KubeRay and kustomize libraries the tests decode with never
// enter the binaries' module (`go test ./...` at the root does not see it; scripts/test.sh
// runs it).
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// imageBinaryPath is where the images put each binary (/usr/local/bin/NAME): the OCI image
// builder (tools/ociimage), deploy/docker/Dockerfile, the app-image example and the
// app-image overlays all use it.
const imageBinaryPath = "/usr/local/bin/rayworker"

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds rayctl and rayworker from the parent module, once, with the ldflags of
// .goreleaser.yaml (so a wrong -X path there fails TestReleaseLdflags), and returns their
// directory.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "rayctl-deploy-bin")
		if buildErr != nil {
			return
		}
		ldflags := releaseLdflags(t)
		for _, name := range []string{"rayctl", "rayworker"} {
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(binDir, name), "./cmd/"+name)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{name: name, out: string(out), err: err}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

type buildError struct {
	name, out string
	err       error
}

func (e *buildError) Error() string {
	return "go build " + e.name + ": " + e.err.Error() + "\n" + e.out
}

// Test values substituted for goreleaser's templates in the ldflags.
const (
	testVersion = "9.8.7-test"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
	testDate    = "2026-01-02T03:04:05Z"
)

// releaseLdflags reads the rayworker build's ldflags from .goreleaser.yaml and fills in its
// templates with the test values.
func releaseLdflags(t *testing.T) string {
	cfg := goreleaserConfig(t)
	for _, b := range cfg.Builds {
		if b.ID == "rayworker" {
			s := strings.Join(b.Ldflags, " ")
			return strings.NewReplacer("{{ .Version }}", testVersion, "{{ .FullCommit }}", testCommit, "{{ .CommitDate }}", testDate).Replace(s)
		}
	}
	t.Fatal(".goreleaser.yaml has no rayworker build")
	return ""
}

// rayworkerDefault is a setting's default as the binary documents it in --help ("default X;").
func rayworkerDefault(t *testing.T, flag string) time.Duration {
	t.Helper()
	out, err := exec.Command(filepath.Join(binaries(t), "rayworker"), "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`--` + regexp.QuoteMeta(flag) + ` D\s+.*?default ([0-9a-z.]+);`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("rayworker --help documents no default for --%s:\n%s", flag, out)
	}
	d, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// requireTool returns the path of an external tool a test needs; without it the test skips,
// or fails under CI=true (a missing prerequisite is a failure there, never a skip).
func requireTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (%s); CI=true: failing rather than skipping", name, install)
		}
		t.Skipf("%s is not installed (%s)", name, install)
	}
	return p
}
