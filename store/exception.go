package store

import (
	"regexp"
	"strings"
)

// Derived exception types for the failures the workers themselves record: the retry policy
// sees these names (django-ray 0.2.0's and rayworker's), but the row only keeps the message.
// Application errors carry their own "<module>.<Class>" (builtins.ValueError).
const (
	ExcTaskLost           = "TaskLost"           // stopped heartbeating, or Ray forgot its job
	ExcTaskTimedOut       = "TaskTimedOut"       // ran past timeout_seconds: never retried (not a policy type)
	ExcInvalidTask        = "InvalidTask"        // the row cannot run as written (rayworker)
	ExcUnstorableOutcome  = "UnstorableOutcome"  // PostgreSQL refused the outcome (rayworker)
	ExcRayConnectionError = "RayConnectionError" // the Ray Core driver lost the cluster
	ExcRayJobFailed       = "RayJobFailed"       // the runner failed: no result envelope, a Ray job FAILED
)

// exceptionSpace is what Python's str.strip() removes in get_result, restricted to ASCII.
const exceptionSpace = " \t\n\r\v\f"

var timedOutRe = regexp.MustCompile(`^Task timed out after [0-9]+ seconds$`)

// rayJobFailedPrefixes start the messages recorded for a runner failure (RayJobFailed):
// django-ray 0.2.0's default, Ray's own messages for a FAILED job, and rayworker's.
var rayJobFailedPrefixes = []string{
	"Ray job ",                                                                   // "Ray job failed" (0.2.0), "Ray job X SUCCEEDED, but ...", "Ray job X stayed PENDING ..."
	"Job entrypoint command failed", "Job supervisor actor", "Job failed due to", // Ray's
	"entrypoint exited with status", "entrypoint was killed by signal", "could not run the entrypoint: ",
	"could not start the task: ", "the entrypoint's ",
}

// ExceptionType is a failure's exception type as the retry policy saw it, derived from what
// the row keeps (django-ray 0.2.0 stores no exception type column). It returns "" when the
// row has no error_message (django-ray's get_result reports no error then either).
//
// Failures the workers record themselves are recognised by the exact messages they write:
// TaskLost ("Task marked as LOST due to missing heartbeats", and rayworker's "Ray has no job
// ... (HTTP 404) ..."), TaskTimedOut ("Task timed out after N seconds"; timeouts are never
// retried, so this name is rayctl's), InvalidTask, UnstorableOutcome, RayConnectionError
// ("Ray connection lost...", "Ray cluster not available") and RayJobFailed (the messages in
// rayJobFailedPrefixes, and "Failed to submit to Ray: ..." without a traceback). Every other
// failure is derived the way django-ray 0.2.0's get_result does: the text before the first
// ":" on the last line of error_traceback, "builtins." prefixed when it has no dot, and
// "builtins.Exception" when there is no traceback or its last line has no ":". So an
// application error is "<module>.<Class>" as the result envelope said, and a Ray job that
// failed with a message rayctl does not know shows what its log's last line names.
// exceptionTypeSQL is the same in SQL; a test keeps them equal.
func ExceptionType(traceback, message *string) string {
	msg, tb := "", ""
	if message != nil {
		msg = *message
	}
	if traceback != nil {
		tb = *traceback
	}
	switch {
	case msg == "":
		return ""
	case msg == LostMessage || (strings.HasPrefix(msg, "Ray has no job ") && strings.Contains(msg, " (HTTP 404)")):
		return ExcTaskLost
	case timedOutRe.MatchString(msg):
		return ExcTaskTimedOut
	case strings.HasPrefix(msg, "invalid task row: "):
		return ExcInvalidTask
	case strings.HasPrefix(msg, "The attempt ended (") && strings.Contains(msg, "), but its outcome could not be stored"):
		return ExcUnstorableOutcome
	case msg == "Ray connection lost" || msg == "Ray cluster not available" ||
		strings.HasPrefix(msg, "Ray connection lost: ") || strings.HasPrefix(msg, "Ray connection lost - "):
		return ExcRayConnectionError
	case strings.HasPrefix(msg, "Failed to submit to Ray: ") && tb == "":
		return ExcRayJobFailed
	}
	for _, p := range rayJobFailedPrefixes {
		if strings.HasPrefix(msg, p) {
			return ExcRayJobFailed
		}
	}
	// django-ray 0.2.0's get_result (backends.py)
	last := strings.Trim(tb, exceptionSpace)
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	typ, _, found := strings.Cut(last, ":")
	if !found {
		return "builtins.Exception"
	}
	typ = strings.Trim(typ, exceptionSpace)
	if strings.Contains(typ, ".") {
		return typ
	}
	return "builtins." + typ
}

// exceptionTypeSQL is ExceptionType in SQL, over the row's columns (only constant text).
var exceptionTypeSQL = func() string {
	lit := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	var prefixes []string
	for _, p := range rayJobFailedPrefixes {
		prefixes = append(prefixes, "starts_with(error_message, "+lit(p)+")")
	}
	const space = `E' \t\n\r\x0b\f'`
	return `(CASE
		WHEN COALESCE(error_message, '') = '' THEN ''
		WHEN error_message = ` + lit(LostMessage) + ` OR (starts_with(error_message, 'Ray has no job ') AND strpos(error_message, ' (HTTP 404)') > 0) THEN '` + ExcTaskLost + `'
		WHEN error_message ~ '^Task timed out after [0-9]+ seconds$' THEN '` + ExcTaskTimedOut + `'
		WHEN starts_with(error_message, 'invalid task row: ') THEN '` + ExcInvalidTask + `'
		WHEN starts_with(error_message, 'The attempt ended (') AND strpos(error_message, '), but its outcome could not be stored') > 0 THEN '` + ExcUnstorableOutcome + `'
		WHEN error_message IN ('Ray connection lost', 'Ray cluster not available') OR starts_with(error_message, 'Ray connection lost: ')
			OR starts_with(error_message, 'Ray connection lost - ') THEN '` + ExcRayConnectionError + `'
		WHEN (starts_with(error_message, 'Failed to submit to Ray: ') AND COALESCE(error_traceback, '') = '')
			OR ` + strings.Join(prefixes, " OR ") + ` THEN '` + ExcRayJobFailed + `'
		ELSE (SELECT CASE WHEN strpos(x.l, ':') = 0 THEN 'builtins.Exception' WHEN strpos(x.p, '.') > 0 THEN x.p ELSE 'builtins.' || x.p END
			FROM (SELECT y.l, btrim(split_part(y.l, ':', 1), ` + space + `) AS p
				FROM (SELECT split_part(btrim(COALESCE(error_traceback, ''), ` + space + `), E'\n', -1) AS l) y) x)
	END)`
}()

// exceptionMatchSQL is the condition "the row's exception type is pattern" for a filter
// argument $N: exact, or builtins.<pattern> for a name without a dot (ValueError matches
// builtins.ValueError, as the retry denylist matches it), or a glob with * and ?.
func exceptionMatch(pattern string) (cond string, arg any) {
	switch {
	case strings.ContainsAny(pattern, "*?"):
		return exceptionTypeSQL + " LIKE $?", GlobToLike(pattern)
	case !strings.Contains(pattern, "."):
		return exceptionTypeSQL + " = ANY($?)", []string{pattern, "builtins." + pattern}
	}
	return exceptionTypeSQL + " = $?", pattern
}
