package rayjobs

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestDecodeLogsTail(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		limit int
		want  Logs
	}{
		{"plain", `{"logs": "a\nb\n"}`, 100, Logs{Text: "a\nb\n", Size: 4}},
		{"empty", `{"logs": ""}`, 100, Logs{Text: ""}},
		{"null logs", `{"logs": null}`, 100, Logs{}},
		{"no logs key", `{}`, 100, Logs{}},
		{"other keys around", ` { "x": [1, {"y": "z\"}"}, true, null, -1.5e3], "logs" : "ok" , "truncated": false } `, 100, Logs{Text: "ok", Size: 2}},
		{"escapes", `{"logs": "q\" b\\ s\/ \b\f\r\t\u0001 \u00e9 \ud83d\ude00 end"}`, 100, Logs{Text: "q\" b\\ s/ \b\f\r\t\x01 é 😀 end", Size: int64(len("q\" b\\ s/ \b\f\r\t\x01 é 😀 end"))}},
		{"lone surrogates", `{"logs": "a\ud800b\udc00c\ud800"}`, 100, Logs{Text: "a\uFFFDb\uFFFDc\uFFFD", Size: int64(len("a\uFFFDb\uFFFDc\uFFFD"))}},
		{"raw utf8", `{"logs": "été"}`, 100, Logs{Text: "été", Size: 5}},
		{"tail cut at a line start", `{"logs": "line one\nline two\nlast"}`, 12, Logs{Text: "last", Truncated: true, Size: 22}},
		{"tail keeps the whole last line", `{"logs": "0123456789\n{\"success\": true}\n"}`, 20, Logs{Text: "{\"success\": true}\n", Truncated: true, Size: 29}},
		{"one long line", `{"logs": "abcdefghij"}`, 4, Logs{Text: "ghij", Truncated: true, Partial: true, Size: 10}},
		{"long last line after newline only at the end", `{"logs": "abcdefghij\n"}`, 6, Logs{Text: "fghij\n", Truncated: true, Partial: true, Size: 11}},
		{"cut inside a rune", `{"logs": "ab\u00e9\u00e9"}`, 3, Logs{Text: "é", Truncated: true, Partial: true, Size: 6}},
		{"ray's own truncation", `{"logs": "[LOG TRUNCATED — showing last 16 MiB of 20 MiB total]\nx"}`, 1000, Logs{Text: "[LOG TRUNCATED — showing last 16 MiB of 20 MiB total]\nx", Truncated: true, Size: int64(len("[LOG TRUNCATED — showing last 16 MiB of 20 MiB total]\nx"))}},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			name := tt.name
			var r io.Reader = strings.NewReader(tt.body)
			if oneByte { // every escape split across reads
				name += "/one byte reads"
				r = iotest.OneByteReader(r)
			}
			t.Run(name, func(t *testing.T) {
				got, err := decodeLogsTail(r, tt.limit)
				if err != nil {
					t.Fatalf("decodeLogsTail: %v", err)
				}
				if got != tt.want {
					t.Errorf("got %+v\nwant %+v", got, tt.want)
				}
			})
		}
	}
}

func TestDecodeLogsTailRejectsBrokenBodies(t *testing.T) {
	for _, body := range []string{
		``, `[]`, `{"logs": "unterminated`, `{"logs": "bad \x escape"}`, `{"logs": "\u12"}`,
		`{"logs": "a" "b"}`, `{"logs" "a"}`, `{"x": }`, `<html>login</html>`, `{"logs": "a"`,
	} {
		t.Run(body, func(t *testing.T) {
			_, err := decodeLogsTail(strings.NewReader(body), 100)
			if err == nil {
				t.Fatalf("no error for %q", body)
			}
			if !errors.Is(err, errLogsSyntax) {
				t.Errorf("error %v is not a syntax error", err)
			}
		})
	}
}

func TestDecodeLogsTailPassesReadErrors(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader(`{"logs": "abc`), iotest.ErrReader(boom))
	_, err := decodeLogsTail(r, 100)
	if !errors.Is(err, boom) || errors.Is(err, errLogsSyntax) {
		t.Fatalf("got %v, want the read error and not a syntax error", err)
	}
}

func TestTrimMessage(t *testing.T) {
	dup := "Traceback (most recent call last):\n  File \"job_head.py\", line 419, in submit_job\n    resp = await x()\n" +
		"RuntimeError: Request failed with status code 400: Traceback (most recent call last):\n" +
		"  File \"job_manager.py\", line 553, in submit_job\n    raise ValueError(\n" +
		"ValueError: Job with submission_id raysubmit_a already exists. Please use a different submission_id.\n.\n"
	chained := "Traceback (most recent call last):\n  File \"a.py\"\nKeyError: 'x'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"b.py\"\nRuntimeError: agent gone\n"
	tests := []struct {
		name, body string
		limit      int
		want       string
	}{
		{"duplicate", dup, 512, "ValueError: Job with submission_id raysubmit_a already exists. Please use a different submission_id."},
		{"chained", chained, 512, "RuntimeError: agent gone"},
		{"short text", "Job x does not exist", 512, "Job x does not exist"},
		{"several lines", "one\ntwo\n\nthree\n", 512, "one | two | three"},
		{"aiohttp", "404: Not Found", 512, "404: Not Found"},
		{"empty", "  \n", 512, ""},
		{"cut", "RuntimeError: " + strings.Repeat("é", 100), 20, "RuntimeError: é…"},
		{"invalid utf8", "bad \xff byte", 512, "bad \uFFFD byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := trimMessage([]byte(tt.body), tt.limit)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if len(got) > tt.limit {
				t.Errorf("len %d over limit %d", len(got), tt.limit)
			}
		})
	}
}

func TestJobDetailsLenientDecode(t *testing.T) {
	exit := 3
	tests := []struct {
		name string
		body string
		want JobDetails
	}{
		{
			name: "ray 2.60 pending",
			body: `{"type": "SUBMISSION", "job_id": null, "submission_id": "raysubmit_a", "driver_info": null, "status": "PENDING", "entrypoint": "python x.py", "message": "Job has not started yet.", "error_type": null, "start_time": 1795446905376, "end_time": null, "metadata": {"django_ray_task_id": "1"}, "runtime_env": {"env_vars": {"A": "b"}}, "driver_agent_http_address": null, "driver_node_id": null, "driver_exit_code": null}`,
			want: JobDetails{Type: "SUBMISSION", SubmissionID: "raysubmit_a", Status: StatusPending, RawStatus: "PENDING", Entrypoint: "python x.py", Message: "Job has not started yet.", StartTime: time.UnixMilli(1795446905376), Metadata: map[string]string{"django_ray_task_id": "1"}, RuntimeEnv: json.RawMessage(`{"env_vars": {"A": "b"}}`)},
		},
		{
			name: "failed with driver info and unknown fields",
			body: `{"type": "SUBMISSION", "job_id": "02000000", "submission_id": "s", "driver_info": {"id": "02000000", "node_ip_address": "10.0.0.5", "pid": 4242}, "status": "FAILED", "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR", "start_time": 1000, "end_time": 2000, "driver_exit_code": 3, "attempt_number": 1, "retry_policy": {"max_retries": 2}, "failure_info": {"stage": "x"}}`,
			want: JobDetails{Type: "SUBMISSION", SubmissionID: "s", JobID: "02000000", Status: StatusFailed, RawStatus: "FAILED", ErrorType: "JOB_ENTRYPOINT_COMMAND_ERROR", StartTime: time.UnixMilli(1000), EndTime: time.UnixMilli(2000), DriverExitCode: &exit, AttemptNumber: 1, DriverInfoID: "02000000", DriverNodeIPAddress: "10.0.0.5", DriverPID: "4242"},
		},
		{
			name: "unknown status, wrong types left at zero",
			body: `{"status": "RETRYING", "submission_id": 12, "start_time": "soon", "end_time": 0, "metadata": {"n": 1, "s": "x"}, "driver_exit_code": "x", "message": ["a"]}`,
			want: JobDetails{Status: StatusUnknown, RawStatus: "RETRYING", Metadata: map[string]string{"n": "1", "s": "x"}},
		},
		{
			name: "no status at all",
			body: `{}`,
			want: JobDetails{Status: StatusUnknown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got JobDetails
			if err := json.Unmarshal([]byte(tt.body), &got); err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tt.want)
			if string(gj) != string(wj) {
				t.Errorf("got  %s\nwant %s", gj, wj)
			}
		})
	}
	var j JobDetails
	if err := json.Unmarshal([]byte(`[1]`), &j); err == nil {
		t.Error("an array decoded as JobDetails without error")
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		in       string
		want     Status
		terminal bool
	}{
		{"PENDING", StatusPending, false},
		{"RUNNING", StatusRunning, false},
		{"STOPPED", StatusStopped, true},
		{"SUCCEEDED", StatusSucceeded, true},
		{"FAILED", StatusFailed, true},
		{"running", StatusUnknown, false},
		{"", StatusUnknown, false},
		{"ZOMBIE", StatusUnknown, false},
	}
	for _, tt := range tests {
		got := ParseStatus(tt.in)
		if got != tt.want || got.Terminal() != tt.terminal {
			t.Errorf("ParseStatus(%q) = %q terminal=%v, want %q terminal=%v", tt.in, got, got.Terminal(), tt.want, tt.terminal)
		}
	}
}

func TestLastLine(t *testing.T) {
	tests := []struct {
		logs     Logs
		want     string
		complete bool
	}{
		{Logs{Text: "a\nb\n{\"x\": 1}\n\n"}, `{"x": 1}`, true},
		{Logs{Text: "only"}, "only", true},
		{Logs{Text: ""}, "", true},
		{Logs{Text: "  \n "}, "", true},
		{Logs{Text: "tail of a long line", Truncated: true, Partial: true}, "tail of a long line", false},
		{Logs{Text: "whole\nlast", Truncated: true}, "last", true},
	}
	for _, tt := range tests {
		got, complete := tt.logs.LastLine()
		if got != tt.want || complete != tt.complete {
			t.Errorf("%+v.LastLine() = %q, %v; want %q, %v", tt.logs, got, complete, tt.want, tt.complete)
		}
	}
}

func TestRayAtLeast(t *testing.T) {
	tests := []struct {
		v            string
		major, minor int
		want         bool
	}{
		{"2.60.0", 2, 8, true},
		{"2.60.0", 2, 60, true},
		{"2.60.0", 2, 61, false},
		{"3.0.0.dev0", 2, 99, true},
		{"2.9rc1", 2, 9, true},
		{"1.13.0", 2, 0, false},
		{"", 2, 0, false},
		{"nightly", 2, 0, false},
	}
	for _, tt := range tests {
		if got := (VersionInfo{RayVersion: tt.v}).RayAtLeast(tt.major, tt.minor); got != tt.want {
			t.Errorf("%q.RayAtLeast(%d, %d) = %v, want %v", tt.v, tt.major, tt.minor, got, tt.want)
		}
	}
}
