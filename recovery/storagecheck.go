package recovery

import (
	"context"
	"fmt"
)

// StorageProbe is what a StorageProber did: where, with which credentials, and how far it got.
type StorageProbe struct {
	Location    string // s3://bucket/prefix/ or gs://bucket/prefix/
	Key         string // the probe object
	Credentials string // where they came from
	Wrote       bool
	ReadBack    bool
	Removed     bool
}

// StorageProber checks a result store is reachable and writable by writing, reading back and
// removing a probe object under its prefix (rayctl wires resultstore's bucket). Its error says
// what failed, without secrets.
type StorageProber interface {
	ProbeStorage(ctx context.Context) (StorageProbe, error)
}

// StorageCheck is the doctor's result storage check (RESULT_STORAGE_BACKEND).
type StorageCheck struct {
	Backend  string        // digest, filesystem, s3, gcs
	Location string        // where results go, for the summary
	Prober   StorageProber // nil: nothing to probe (digest)
}

// Name implements Check.
func (StorageCheck) Name() string { return "results" }

// Run implements Check: ok when the probe object was written, read back and removed; warn
// when it was written but could not be read back or removed; fail when it could not be
// written (workers then store digest references only).
func (c StorageCheck) Run(ctx context.Context) CheckResult {
	r := CheckResult{Name: "results"}
	if c.Prober == nil {
		r.Status = StatusOK
		r.Summary = "RESULT_STORAGE_BACKEND digest: results over MAX_RESULT_SIZE_BYTES keep only their digest, nothing to probe (give --result-storage-backend as the workers have it)"
		return r
	}
	p, err := c.Prober.ProbeStorage(ctx)
	creds := ""
	if p.Credentials != "" {
		creds = " (credentials: " + p.Credentials + ")"
	}
	switch {
	case !p.Wrote:
		r.Status, r.Summary = StatusFail, fmt.Sprintf("%s backend cannot write to %s: %v", c.Backend, c.Location, err)
		r.Hint = fmt.Sprintf("check the bucket or directory, its region/endpoint and the credentials the workers use; they need to write %s (until then oversized results get digest references only)", c.Location)
	case !p.Removed:
		r.Status, r.Summary = StatusWarn, fmt.Sprintf("%s is writable%s, but the probe object %s could not be removed: %v", c.Location, creds, p.Key, err)
		r.Hint = fmt.Sprintf("remove the probe object %s by hand (rayctl needs delete permission to clean up after itself)", p.Key)
	case !p.ReadBack:
		r.Status, r.Summary = StatusWarn, fmt.Sprintf("%s is writable%s, but the probe object did not read back: %v", c.Location, creds, err)
		r.Hint = "Django's get_result() reads results back: give its credentials read access to the bucket"
	default:
		r.Status, r.Summary = StatusOK, fmt.Sprintf("%s is reachable and writable: a probe object was written, read back and removed%s", c.Location, creds)
	}
	if p.Key != "" {
		r.Details = append(r.Details, "probe object "+p.Key)
	}
	return r
}
