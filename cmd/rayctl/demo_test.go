package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/store"
)

// TestDemoTasksContract runs the demo's bundled entrypoint (scripts/demo_tasks.py) the way
// rayworker runs an entrypoint: `<cmd> --payload-b64 <url-safe base64 of the compact JSON
// payload>`, and checks the last stdout line is django-ray's result envelope, with an
// exception type that the failures view derives the same way from the traceback.
func TestDemoTasksContract(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required for the demo tasks")
		}
		t.Skip("python3 not installed")
	}
	type envelope struct {
		Success       bool            `json:"success"`
		Result        json.RawMessage `json:"result"`
		Error         *string         `json:"error"`
		Traceback     *string         `json:"traceback"`
		ExceptionType *string         `json:"exception_type"`
	}
	tests := []struct {
		callable, args, kwargs string
		success                bool
		result, exception      string
	}{
		{"demo.tasks.add", "[2, 3]", "{}", true, "5", ""},
		{"demo.tasks.slow", "[]", `{"seconds": 0}`, true, `{"slept": 0}`, ""},
		{"demo.tasks.charge_card", "[]", `{"customer": "c_9", "cents": 9000}`, false, "null", "demo.payments.CardDeclined"},
		{"demo.tasks.charge_card", "[]", `{"cents": 100}`, true, `{"charged": 100, "customer": "c_1"}`, ""},
		{"demo.tasks.nope", "[]", "{}", false, "null", "builtins.ImportError"},
	}
	for _, tt := range tests {
		payload, _ := json.Marshal(map[string]string{"callable_path": tt.callable, "serialized_args": tt.args, "serialized_kwargs": tt.kwargs})
		var out bytes.Buffer
		cmd := exec.Command(python, "../../scripts/demo_tasks.py", "--payload-b64", base64.URLEncoding.EncodeToString(payload))
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v", tt.callable, err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var env envelope
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &env); err != nil {
			t.Fatalf("%s: last line %q: %v", tt.callable, lines[len(lines)-1], err)
		}
		if env.Success != tt.success || string(env.Result) != tt.result {
			t.Errorf("%s: success %v result %s, want %v %s", tt.callable, env.Success, env.Result, tt.success, tt.result)
		}
		if tt.exception == "" {
			if env.ExceptionType != nil || env.Error != nil {
				t.Errorf("%s: error fields on success: %+v", tt.callable, env)
			}
			continue
		}
		if env.ExceptionType == nil || *env.ExceptionType != tt.exception || env.Traceback == nil {
			t.Fatalf("%s: %+v, want exception %s", tt.callable, env, tt.exception)
		}
		if got := store.ExceptionType(env.Traceback, env.Error); got != tt.exception {
			t.Errorf("%s: failures view would group it as %q, the envelope says %q", tt.callable, got, tt.exception)
		}
	}
	// a broken payload is an error envelope and exit 2
	cmd := exec.Command(python, "../../scripts/demo_tasks.py", "--payload-b64", "!!!")
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), `"success": false`) {
		t.Errorf("broken payload: %v %s", err, out)
	}
}
