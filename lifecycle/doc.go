// Package lifecycle turns what became of one task attempt into the guarded store transition
// django-ray 0.2.0 makes for it, so the worker loop, every Runner and the operator's
// reconciliation (rayctl reconcile-jobs) end a task in exactly the same way.
//
// The pieces, in the order an attempt meets them:
//
//   - Payload builds the `--payload-b64` argument of the Ray Job entrypoint from the row.
//   - Interpret reads an entrypoint run (its output's last line is the JSON result envelope)
//     into an Outcome: Succeeded with a result, or Failed with a message, traceback and the
//     exception type the retry policy matches. JobFailed and the other constructors build
//     Outcomes for runners that learn the result another way.
//   - Policy is the retry policy: MAX_TASK_ATTEMPTS, backoff min(base*2^attempt, 3600 s), and
//     the denylist of exception types.
//   - Results stores a successful result inline up to MAX_RESULT_SIZE_BYTES, else as an
//     oversize:// digest or a resultfs:// file reference (or s3:// / gs://, through the
//     Backends package resultstore adds); a storage error falls back to the digest reference
//     and the task still succeeds.
//   - Applier.Apply takes the row as the caller read it plus an Outcome and performs the one
//     guarded store transition (Succeed, Retry, Fail, MarkLost, MarkTimedOut, MarkCancelled,
//     FinalizeCancel). It reports what it did as a Transition. A row that moved on meanwhile
//     is never overwritten; a row cancelled meanwhile is finalized CANCELLED (cancel wins).
//
// Exception types follow django-ray: an application error carries the envelope's
// "<module>.<Class>" (builtins.ValueError); a runner failure without a usable envelope (the
// process could not start, exited non-zero, printed nothing, or a Ray job FAILED) is
// RayJobFailed in every mode, so one denylist entry covers both; a stuck task is TaskLost.
// Timeouts are terminal FAILED and never retried. A task row that can never run (args_json
// that is not a JSON array, ...) fails at once without retries.
package lifecycle
