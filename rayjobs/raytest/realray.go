package raytest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rayctl/rayctl/rayjobs"
)

// RealRay is the real-Ray test tier's environment, as scripts/test.sh sets it up: a Ray head
// (RAY_ADDRESS) and the venv's Python with Ray, Django and django-ray 0.2.0 (RAYCTL_PYTHON).
type RealRay struct {
	Address string
	Python  string
	// PythonPath holds the test tasks and Django settings jobs import (RAYCTL_PYTHONPATH, else
	// the repository's python/ directory).
	PythonPath string
	Client     *rayjobs.Client
}

const tierHelp = "the real-Ray tier needs a Ray head and the venv (scripts/test.sh with no arguments, or RAYCTL_RAY=1 scripts/test.sh ..., sets them up)"

// NeedVenvPython returns RAYCTL_PYTHON. Without it the test is skipped, or fails under
// CI=true: CI must never pass by skipping a tier.
func NeedVenvPython(t testing.TB) string {
	t.Helper()
	py := os.Getenv("RAYCTL_PYTHON")
	if py == "" {
		skipOrFail(t, "RAYCTL_PYTHON is not set: "+tierHelp)
	}
	return py
}

// NeedRealRay returns the real-Ray tier's environment and a client for its head, closed when
// the test ends. Without RAY_ADDRESS or RAYCTL_PYTHON the test is skipped, or fails under
// CI=true.
func NeedRealRay(t testing.TB, userAgent string) RealRay {
	t.Helper()
	addr := os.Getenv("RAY_ADDRESS")
	if addr == "" {
		skipOrFail(t, "RAY_ADDRESS is not set: "+tierHelp)
	}
	r := RealRay{Address: addr, Python: NeedVenvPython(t), PythonPath: os.Getenv("RAYCTL_PYTHONPATH")}
	if r.PythonPath == "" {
		r.PythonPath = filepath.Join(repoRoot(t), "python")
	}
	token, err := rayjobs.TokenFromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if r.Client, err = rayjobs.New(rayjobs.Options{Address: addr, Token: token, UserAgent: userAgent}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Client.Close)
	return r
}

func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so this is a failure, not a skip")
	}
	t.Skip(msg)
}

// repoRoot is the directory holding go.mod, above the test's working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
