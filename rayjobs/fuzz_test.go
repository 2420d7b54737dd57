package rayjobs

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeLogsTail: whatever Ray (or something in front of it) answers to /logs, the
// streaming decoder never panics, keeps at most its limit, returns valid UTF-8, and agrees
// with encoding/json on the "logs" string of any body encoding/json accepts as an object.
func FuzzDecodeLogsTail(f *testing.F) {
	for _, s := range []string{`{"logs": "a\nb\n"}`, `{"logs": null}`, `{}`, `{"x": [1, {"y": "}"}], "logs": "ok"}`,
		`{"logs": "\ud83d\ude00 \ud800"}`, `<html>login</html>`, `{"logs": "unterminated`, `{"logs": 5}`} {
		f.Add(s, 8)
	}
	f.Fuzz(func(t *testing.T, body string, limit int) {
		limit = 1 + abs(limit)%64
		logs, err := decodeLogsTail(strings.NewReader(body), limit)
		if err != nil {
			return
		}
		if !utf8.ValidString(logs.Text) {
			t.Fatalf("%q: text %q is not UTF-8", body, logs.Text)
		}
		if len(logs.Text) > limit+3*utf8.UTFMax { // a replacement character may widen the cut
			t.Fatalf("%q: kept %d bytes for a limit of %d", body, len(logs.Text), limit)
		}
		var obj struct {
			Logs *string `json:"logs"`
		}
		if utf8.ValidString(body) && json.Unmarshal([]byte(body), &obj) == nil && obj.Logs != nil && !logs.Truncated &&
			!strings.Contains(body, `\u`) && !strings.HasPrefix(*obj.Logs, "[LOG TRUNCATED") && strings.Count(body, `"logs"`) == 1 {
			if logs.Text != *obj.Logs {
				t.Fatalf("%q: decoded %q, encoding/json says %q", body, logs.Text, *obj.Logs)
			}
		}
	})
}

// FuzzJobDetails: Ray's job answers decode leniently: any JSON object
// (or null) gives a JobDetails, anything else an error, never a panic.
func FuzzJobDetails(f *testing.F) {
	for _, s := range []string{`{"submission_id": "raysubmit_1", "status": "RUNNING", "start_time": 1700000000000}`,
		`{"status": 5, "metadata": {"a": 1}, "driver_info": {"pid": 7}}`, `{"driver_exit_code": null, "end_time": "x"}`, `[]`, `null`, `<html>`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var j JobDetails
		err := json.Unmarshal([]byte(body), &j)
		var obj map[string]json.RawMessage
		if (json.Unmarshal([]byte(body), &obj) == nil) != (err == nil) {
			t.Fatalf("%q: decoded with error %v, but encoding/json reads it as an object (or null): %v", body, err, obj)
		}
		_ = j.ID()
		_ = j.Status.Terminal()
	})
}

// FuzzTrimMessage: an error body of any shape becomes one bounded, valid line.
func FuzzTrimMessage(f *testing.F) {
	for _, s := range []string{"Traceback (most recent call last):\n  File \"x\", line 1\nValueError: bad\n", "a\nb\nc", "", "\xff\xfe", "  .\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		msg := trimMessage([]byte(body), 120)
		if len(msg) > 120 || !utf8.ValidString(msg) {
			t.Fatalf("%q -> %q", body, msg)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n { // math.MinInt
			return 0
		}
		return -n
	}
	return n
}
