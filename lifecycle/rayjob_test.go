package lifecycle

import (
	"strings"
	"testing"
)

func TestRayJobEnded(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("log line\n", 20000) + "Killed by OOM\n" // 9-byte lines: a byte cut lands mid-line
	cases := []struct {
		name   string
		job    RayJob
		ok     bool
		kind   Kind
		result string // Succeeded: the result's JSON text
		exc    string // Failed: the exception type
		msg    string // Failed: the message
	}{
		{"succeeded with a result line", RayJob{Status: RaySucceeded, Log: []byte("noise\n" + `{"success": true, "result": {"a": [1, 2.5]}, "error": null, "traceback": null, "exception_type": null}` + "\n")},
			true, Succeeded, `{"a": [1, 2.5]}`, "", ""},
		{"succeeded, the task raised", RayJob{Status: RaySucceeded, Log: []byte(`{"success": false, "result": null, "error": "bad", "traceback": "tb", "exception_type": "builtins.ValueError"}`)},
			true, Failed, "", "builtins.ValueError", "bad"},
		{"succeeded, last line not JSON: the log is the result", RayJob{Status: RaySucceeded, Log: []byte("hello\n")}, true, Succeeded, `"hello\n"`, "", ""},
		{"succeeded, empty log", RayJob{Status: RaySucceeded}, true, Failed, "", ExcRunnerFailed, "entrypoint exited with status 0 but printed nothing"},
		{"succeeded, empty log, named job", RayJob{ID: "raysubmit_t1_a1_ff", Status: RaySucceeded}, true, Failed, "", ExcRunnerFailed,
			"Ray job raysubmit_t1_a1_ff SUCCEEDED, but entrypoint exited with status 0 but printed nothing"},
		{"failed", RayJob{Status: RayFailed, Message: "Job entrypoint command failed with exit code 1", Log: []byte(huge)}, true, Failed, "", ExcRunnerFailed,
			"Job entrypoint command failed with exit code 1"},
		{"failed without a message", RayJob{Status: RayFailed}, true, Failed, "", ExcRunnerFailed, "Ray job failed"},
		{"stopped", RayJob{Status: RayStopped}, true, Cancelled, "", "", ""},
		{"running", RayJob{Status: RayRunning}, false, 0, "", "", ""},
		{"pending", RayJob{Status: RayPending}, false, 0, "", "", ""},
		{"unknown status", RayJob{Status: "RESTARTING"}, false, 0, "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, ok := RayJobEnded(c.job)
			if ok != c.ok || o.Kind != c.kind {
				t.Fatalf("ok %v kind %v, want %v %v", ok, o.Kind, c.ok, c.kind)
			}
			switch o.Kind {
			case Succeeded:
				if string(o.Result.JSON) != c.result {
					t.Fatalf("result %q, want %q", o.Result.JSON, c.result)
				}
			case Failed:
				if o.Failure.ExceptionType != c.exc || !strings.HasPrefix(o.Failure.Message, c.msg) {
					t.Fatalf("failure %+v", o.Failure)
				}
				if len(o.Failure.Traceback) > RayJobTraceback+8 {
					t.Fatalf("traceback of %d bytes, bound %d", len(o.Failure.Traceback), RayJobTraceback)
				}
			}
		})
	}
	// a FAILED job's traceback is the log's tail, cut at a line start: its last line survives
	o, _ := RayJobEnded(RayJob{Status: RayFailed, Log: []byte(huge)})
	if !strings.HasSuffix(o.Failure.Traceback, "Killed by OOM\n") || !strings.HasPrefix(o.Failure.Traceback, "log line\n") || len(huge) <= RayJobTraceback {
		t.Fatalf("traceback tail %q ... %q", o.Failure.Traceback[:20], o.Failure.Traceback[len(o.Failure.Traceback)-20:])
	}
	for st, want := range map[string]bool{RaySucceeded: true, RayFailed: true, RayStopped: false, RayRunning: false} {
		if NeedsLog(st) != want {
			t.Errorf("NeedsLog(%s) = %v", st, !want)
		}
	}
}
