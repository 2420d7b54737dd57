package rayjobs

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Status is a Ray job's status. Values other than the five Ray defines decode as
// StatusUnknown (the raw text stays in JobDetails.RawStatus).
type Status string

// The statuses of a Ray job. A job starts PENDING and ends in one of the terminal three.
const (
	StatusPending   Status = "PENDING"
	StatusRunning   Status = "RUNNING"
	StatusStopped   Status = "STOPPED"
	StatusSucceeded Status = "SUCCEEDED"
	StatusFailed    Status = "FAILED"
	// StatusUnknown is never sent by Ray: it stands for a status this client does not know
	// (or none at all). It is not terminal, and it is not a reason to fail a task.
	StatusUnknown Status = "UNKNOWN"
)

// ParseStatus maps Ray's text to a Status; anything unrecognised is StatusUnknown.
func ParseStatus(s string) Status {
	switch st := Status(s); st {
	case StatusPending, StatusRunning, StatusStopped, StatusSucceeded, StatusFailed:
		return st
	}
	return StatusUnknown
}

// Terminal reports whether the status can never change again (STOPPED, SUCCEEDED, FAILED).
func (s Status) Terminal() bool {
	return s == StatusStopped || s == StatusSucceeded || s == StatusFailed
}

// Job types in JobDetails.Type.
const (
	TypeSubmission = "SUBMISSION" // created through the Jobs API
	TypeDriver     = "DRIVER"     // a ray.init() driver; cannot be stopped, deleted or read
)

// JobDetails is what GET /api/jobs/{id} and the list return. Decoding is lenient: every field
// is optional, unknown fields are ignored, and a field of an unexpected type is left at its
// zero value instead of failing the whole job (fields grow and change across Ray versions).
type JobDetails struct {
	Type         string // TypeSubmission or TypeDriver
	SubmissionID string // the id the Jobs API knows the job by; empty for DRIVER jobs
	JobID        string // Ray core job id (hex) of the last driver; empty until it started
	Status       Status
	RawStatus    string // Ray's status text, as sent
	Entrypoint   string
	Message      string // Ray's message; for FAILED jobs it carries a log tail (<= 20,000 chars)
	ErrorType    string // e.g. JOB_ENTRYPOINT_COMMAND_ERROR; empty on old clusters
	StartTime    time.Time
	EndTime      time.Time
	Metadata     map[string]string
	RuntimeEnv   json.RawMessage // as Ray stores it; nil when absent
	// DriverExitCode is the entrypoint's exit code (Ray >= 2.8), nil until it exited.
	DriverExitCode         *int
	DriverAgentHTTPAddress string
	DriverNodeID           string
	DriverNodeIPAddress    string // from driver_info
	DriverPID              string // from driver_info
	AttemptNumber          int    // master-only field; 0 elsewhere
	DriverInfoID           string // from driver_info
}

// ID returns the submission id, or the core job id for DRIVER jobs.
func (j *JobDetails) ID() string {
	if j.SubmissionID != "" {
		return j.SubmissionID
	}
	return j.JobID
}

// UnmarshalJSON decodes Ray's JobDetails leniently (see the type's comment).
func (j *JobDetails) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*j = JobDetails{}
	str := func(k string) string {
		var s string
		if v, ok := raw[k]; ok {
			_ = json.Unmarshal(v, &s) // wrong type or null: leave empty
		}
		return s
	}
	j.Type = str("type")
	j.SubmissionID = str("submission_id")
	j.JobID = str("job_id")
	j.RawStatus = str("status")
	j.Status = ParseStatus(j.RawStatus)
	j.Entrypoint = str("entrypoint")
	j.Message = str("message")
	j.ErrorType = str("error_type")
	j.DriverAgentHTTPAddress = str("driver_agent_http_address")
	j.DriverNodeID = str("driver_node_id")
	j.StartTime = unixMillis(raw["start_time"])
	j.EndTime = unixMillis(raw["end_time"])
	if v, ok := raw["driver_exit_code"]; ok {
		var n *int
		if json.Unmarshal(v, &n) == nil {
			j.DriverExitCode = n
		}
	}
	if v, ok := raw["attempt_number"]; ok {
		_ = json.Unmarshal(v, &j.AttemptNumber)
	}
	if v, ok := raw["metadata"]; ok {
		j.Metadata = stringMap(v)
	}
	if v, ok := raw["runtime_env"]; ok && string(v) != "null" {
		j.RuntimeEnv = append(json.RawMessage(nil), v...)
	}
	if v, ok := raw["driver_info"]; ok {
		var di map[string]json.RawMessage
		if json.Unmarshal(v, &di) == nil {
			j.DriverInfoID = scalarString(di["id"])
			j.DriverNodeIPAddress = scalarString(di["node_ip_address"])
			j.DriverPID = scalarString(di["pid"])
		}
	}
	return nil
}

// unixMillis decodes a Unix-milliseconds number; null, 0, or a non-number give the zero time.
func unixMillis(v json.RawMessage) time.Time {
	if len(v) == 0 {
		return time.Time{}
	}
	var f float64
	if json.Unmarshal(v, &f) != nil || f <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(f))
}

// stringMap decodes an object of strings; non-string values are kept as their JSON text.
func stringMap(v json.RawMessage) map[string]string {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil || m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		out[k] = scalarString(val)
	}
	return out
}

// scalarString renders a JSON string as its value and anything else as its JSON text
// (Ray sends driver_info.pid as a string; older versions may not).
func scalarString(v json.RawMessage) string {
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(v))
}

// SubmitRequest is the body of POST /api/jobs/. Only fields that are set are sent: Ray rejects
// a key it does not know (HTTP 400), so a field a cluster is too old for must stay unset.
type SubmitRequest struct {
	// Entrypoint is the shell command the job runs (required).
	Entrypoint string
	// SubmissionID names the job (Ray >= 2.0). Empty: Ray makes one ("raysubmit_" + 16
	// characters). Keep it to [A-Za-z0-9_-]; django-ray 0.2.0 workers adopt only ids that
	// start with "raysubmit_".
	SubmissionID string
	// RuntimeEnv is sent as given (env_vars, working_dir as a remote URI, pip, ...).
	RuntimeEnv map[string]any
	// Metadata is stored with the job (django-ray: django_ray_task_id, callable_path).
	Metadata map[string]string
	// Entrypoint resources (Ray >= 2.2; EntrypointMemory >= 2.8, in bytes; the label
	// selector >= 2.54). Setting any of them lets Ray place the driver off the head node.
	EntrypointNumCPUs       float64
	EntrypointNumGPUs       float64
	EntrypointMemory        int64
	EntrypointResources     map[string]float64
	EntrypointLabelSelector map[string]string
}

// wireSubmit is the JSON body: omitempty everywhere except the entrypoint, so nothing unset
// (and no null) goes on the wire.
type wireSubmit struct {
	Entrypoint              string             `json:"entrypoint"`
	SubmissionID            string             `json:"submission_id,omitempty"`
	RuntimeEnv              map[string]any     `json:"runtime_env,omitempty"`
	Metadata                map[string]string  `json:"metadata,omitempty"`
	EntrypointNumCPUs       float64            `json:"entrypoint_num_cpus,omitempty"`
	EntrypointNumGPUs       float64            `json:"entrypoint_num_gpus,omitempty"`
	EntrypointMemory        int64              `json:"entrypoint_memory,omitempty"`
	EntrypointResources     map[string]float64 `json:"entrypoint_resources,omitempty"`
	EntrypointLabelSelector map[string]string  `json:"entrypoint_label_selector,omitempty"`
}

// VersionInfo is GET /api/version.
type VersionInfo struct {
	Version     string `json:"version"`     // Jobs API version ("4" on Ray 2.60)
	RayVersion  string `json:"ray_version"` // e.g. "2.60.0"
	RayCommit   string `json:"ray_commit"`
	SessionName string `json:"session_name"` // changes when the head restarts
}

// RayAtLeast reports whether RayVersion is at least major.minor (false if it cannot be
// parsed). Use it to gate optional submit fields the way Ray's SDK does.
func (v VersionInfo) RayAtLeast(major, minor int) bool {
	parts := strings.SplitN(v.RayVersion, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mstr := parts[1]
	if i := strings.IndexFunc(mstr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		mstr = mstr[:i] // "9rc1" -> "9"
	}
	mi, err2 := strconv.Atoi(mstr)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// Logs is the tail of a job's driver log.
type Logs struct {
	// Text is the log, or its last MaxLogBytes when Truncated. A truncated tail starts at a
	// line boundary when one exists in it, so its first line is whole.
	Text      string
	Truncated bool
	// Partial: the tail held no line break, so Text starts in the middle of a line (one line
	// longer than the limit).
	Partial bool
	// Size is the decoded size of the whole log Ray sent, in bytes.
	Size int64
}

// LastLine returns the last line of the log after trimming surrounding whitespace: where
// django-ray's entrypoint prints its JSON result (the 0.2.0 contract reads
// logs.strip().split("\n")[-1]). Empty when the log is. complete is false when that line was
// cut by the size limit (it alone was longer than the tail kept): then it is not the whole
// line and must not be parsed as a result.
func (l Logs) LastLine() (line string, complete bool) {
	t := strings.TrimSpace(l.Text)
	if i := strings.LastIndexByte(t, '\n'); i >= 0 {
		return t[i+1:], true
	}
	return t, !l.Partial
}
