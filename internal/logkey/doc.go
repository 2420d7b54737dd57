// Package logkey holds the module's rule for logging errors, and the test that enforces it:
// every error is logged under the key "error" (ErrorKey), in both binaries and every
// package, so one query (error=… in text logs, .error in JSON logs) finds them all.
//
// The test scans the module's non-test Go files; the package has no code but the key.
package logkey

// ErrorKey is the one log key for an error value. It was the key most of the module already
// used (the worker, its runners, rayworker's main); rayctl top's log used "err" and the
// worker's "runner not ready" line "reason" until issue 13.
const ErrorKey = "error"
