package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
	"github.com/rayctl/rayctl/worker/workertest"
)

// TestDjangoInterop is the interop tier: Django enqueues with django-ray 0.2.0's backend,
// rayworker runs the tasks with django-ray's real entrypoint, and Django's get_result() reads
// the outcomes (inline results, a resultfs:// reference it rehydrates, an exception). It needs
// a Python with Django 6, django-ray 0.2.0 and psycopg: set RAYWORKER_DJANGO_PYTHON to it
// (e.g. a venv's bin/python); without it the test is skipped.
func TestDjangoInterop(t *testing.T) {
	py := os.Getenv("RAYWORKER_DJANGO_PYTHON")
	if py == "" {
		t.Skip("set RAYWORKER_DJANGO_PYTHON to a python with django and django-ray 0.2.0 to run the interop tier")
	}
	t.Parallel()
	s, sc := storetest.New(t)
	dir := filepath.Join(workertest.RepoRoot(), "testdata", "django_interop")
	results := t.TempDir()
	djangoEnv := append(os.Environ(), "DATABASE_URL="+sc.DSN, "INTEROP_RESULTS="+results)
	django := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(py, append([]string{filepath.Join(dir, "interop.py")}, args...)...)
		cmd.Env = djangoEnv
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if ok := asExit(err, &ee); ok {
				t.Fatalf("interop.py %v: %v\n%s", args, err, ee.Stderr)
			}
			t.Fatalf("interop.py %v: %v", args, err)
		}
		return out
	}
	var ids map[string]string
	if err := json.Unmarshal(django("enqueue"), &ids); err != nil {
		t.Fatal(err)
	}

	runtimeEnv, _ := json.Marshal(map[string]any{"env_vars": map[string]string{
		"DJANGO_SETTINGS_MODULE": "interop_settings", "PYTHONPATH": dir, "INTEROP_RESULTS": results}})
	p := startWorkerWith(t, sc.DSN, py+" -m django_ray.runtime.entrypoint", "--queues", "default", "high-priority",
		"--max-task-attempts", "1", "--max-result-size-bytes", "1024", "--result-storage-backend", "filesystem",
		"--result-storage-filesystem-path", results, "--ray-runtime-env", string(runtimeEnv))
	workertest.Eventually(t, 120*time.Second, "every task to finish", func() bool {
		st, err := s.Stats(t.Context(), time.Minute)
		return err == nil && st.States[store.StateSucceeded]+st.States[store.StateFailed] == int64(len(ids))
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.exitCode(30 * time.Second)

	var got map[string]struct {
		Status      string          `json:"status"`
		ReturnValue json.RawMessage `json:"return_value"`
		Errors      []struct {
			ExceptionClassPath string `json:"exception_class_path"`
			Traceback          string `json:"traceback"`
		} `json:"errors"`
	}
	order := []string{"add", "echo", "big", "fail", "urgent"}
	args := []string{"results"}
	for _, name := range order {
		args = append(args, ids[name])
	}
	if err := json.Unmarshal(django(args...), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"add":    `5`,
		"echo":   `{"args": ["caf\u00e9", 1e+16, 1e-05, [1, null]], "kwargs": {"key": {"b": 2, "a": "\ud83d\ude00"}}}`,
		"big":    `"` + strings.Repeat("x", 5000) + `"`,
		"urgent": `"first"`,
	}
	for name, value := range want {
		r := got[ids[name]]
		if r.Status != "SUCCESSFUL" || string(r.ReturnValue) != value || len(r.Errors) != 0 {
			t.Errorf("%s: %s %s %v, want SUCCESSFUL %s", name, r.Status, r.ReturnValue, r.Errors, value)
		}
	}
	if f := got[ids["fail"]]; f.Status != "FAILED" || len(f.Errors) != 1 || f.Errors[0].ExceptionClassPath != "builtins.ValueError" ||
		!strings.Contains(f.Errors[0].Traceback, "ValueError: boom") {
		t.Errorf("fail: %+v", f)
	}
	row, err := s.ListTasks(t.Context(), store.TaskFilter{TaskID: ids["big"]})
	if err != nil || len(row) != 1 || row[0].ResultReference == nil || !strings.HasPrefix(*row[0].ResultReference, "resultfs://sha256/") {
		t.Errorf("big result row: %+v %v", row, err)
	}
}
