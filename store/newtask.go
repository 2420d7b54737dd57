package store

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

// NewTask is a task to enqueue. Zero values get django-ray's defaults.
type NewTask struct {
	CallablePath   string     // required, dotted path, at most 500 characters
	Queue          string     // default "default"
	ArgsJSON       string     // a JSON array; default "[]"
	KwargsJSON     string     // a JSON object; default "{}"
	RunAfter       *time.Time // deferred until then
	TimeoutSeconds *int32     // terminal FAILED after this long RUNNING
	RayAddress     string     // stored as ray_address; default "auto", as the Django backend writes
	TaskID         string     // Django Tasks result id; default a new uuid4
}

// Normalize fills in defaults and checks every field, without touching the database.
func (n *NewTask) Normalize() error {
	if n.CallablePath == "" {
		return fmt.Errorf("%w: callable path is empty", ErrInvalid)
	}
	if len(n.CallablePath) > 500 {
		return fmt.Errorf("%w: callable path is longer than 500 characters", ErrInvalid)
	}
	if n.Queue == "" {
		n.Queue = "default"
	}
	if len(n.Queue) > 100 {
		return fmt.Errorf("%w: queue name is longer than 100 characters", ErrInvalid)
	}
	if n.ArgsJSON == "" {
		n.ArgsJSON = "[]"
	}
	if n.KwargsJSON == "" {
		n.KwargsJSON = "{}"
	}
	if err := checkJSON(n.ArgsJSON, '[', "args"); err != nil {
		return err
	}
	if err := checkJSON(n.KwargsJSON, '{', "kwargs"); err != nil {
		return err
	}
	if n.TimeoutSeconds != nil && *n.TimeoutSeconds < 0 {
		return fmt.Errorf("%w: timeout must be >= 0 seconds", ErrInvalid)
	}
	if n.RayAddress == "" {
		n.RayAddress = "auto"
	}
	if n.TaskID == "" {
		n.TaskID = NewUUID()
	}
	return nil
}

// checkJSON verifies s is valid JSON whose top level starts with open ('[' or '{').
func checkJSON(s string, open byte, what string) error {
	kind := map[byte]string{'[': "array", '{': "object"}[open]
	if !json.Valid([]byte(s)) {
		var v any
		err := json.Unmarshal([]byte(s), &v)
		return fmt.Errorf("%w: %s is not valid JSON: %v", ErrInvalid, what, err)
	}
	if b := bytes.TrimSpace([]byte(s)); len(b) == 0 || b[0] != open {
		return fmt.Errorf("%w: %s must be a JSON %s", ErrInvalid, what, kind)
	}
	return nil
}

// NewUUID returns a random (version 4) UUID string, as Python's str(uuid.uuid4()).
func NewUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
