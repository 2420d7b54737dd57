package lifecycle

import (
	"encoding/base64"
	"fmt"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/pyjson"
	"github.com/rayctl/rayctl/store"
)

// DefaultEntrypoint is django-ray 0.2.0's Ray Job entrypoint command; PayloadFlag precedes the
// payload argument.
const (
	DefaultEntrypoint = settings.DefaultEntrypoint
	PayloadFlag       = "--payload-b64"
)

// MaxPayloadArg is the longest single argument Linux passes to a new process
// (MAX_ARG_STRLEN, 32 pages); a longer --payload-b64 cannot be started.
const MaxPayloadArg = 131072 - 1

// Payload returns the --payload-b64 argument for task exactly as django-ray 0.2.0 builds it:
// URL-safe base64, with padding, of the compact JSON
// {"callable_path": ..., "serialized_args": ..., "serialized_kwargs": ...}, where the two
// serialized fields are Python json.dumps text (default separators) of the decoded args_json
// and kwargs_json.
//
// A row whose args_json is not a JSON array or whose kwargs_json is not a JSON object can
// never run; the error is a *FailureError with a permanent Failure saying why.
func Payload(task store.Task) (string, error) {
	args, err := decodeField(task.ArgsJSON, "args_json", "array")
	if err != nil {
		return "", err
	}
	kwargs, err := decodeField(task.KwargsJSON, "kwargs_json", "object")
	if err != nil {
		return "", err
	}
	sargs, err := pyjson.Dumps(args)
	if err != nil {
		return "", InvalidRow("args_json cannot be encoded: %v", err)
	}
	skwargs, err := pyjson.Dumps(kwargs)
	if err != nil {
		return "", InvalidRow("kwargs_json cannot be encoded: %v", err)
	}
	obj := &pyjson.Object{}
	obj.Set("callable_path", task.CallablePath)
	obj.Set("serialized_args", string(sargs))
	obj.Set("serialized_kwargs", string(skwargs))
	text, err := pyjson.Compact(obj)
	if err != nil {
		return "", InvalidRow("payload cannot be encoded: %v", err)
	}
	return base64.URLEncoding.EncodeToString(text), nil
}

func decodeField(text, column, want string) (any, error) {
	v, err := pyjson.Decode(text)
	if err != nil {
		return nil, InvalidRow("%s is not valid JSON (%v): %s", column, err, clip(text, 200))
	}
	ok := false
	switch v.(type) {
	case []any:
		ok = want == "array"
	case *pyjson.Object:
		ok = want == "object"
	}
	if !ok {
		return nil, InvalidRow("%s is not a JSON %s: %s", column, want, clip(text, 200))
	}
	return v, nil
}

// InvalidRow is the permanent failure of a row that can never run as written: the message
// starts "invalid task row: " (how the failure summaries recognise it, store.ExcInvalidTask)
// and the exception type is ExcInvalidTask.
func InvalidRow(format string, a ...any) error {
	return &FailureError{Failure: Failure{
		Message:       "invalid task row: " + fmt.Sprintf(format, a...),
		ExceptionType: ExcInvalidTask,
		Permanent:     true,
	}}
}

// clip shortens s to at most n bytes (on a rune boundary) for messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}
