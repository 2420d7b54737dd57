package lifecycle

import (
	"fmt"
	"strings"
	"time"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/pyjson"
)

// MaxBackoff caps the retry delay, as django-ray does.
const MaxBackoff = time.Hour

// Policy is django-ray's retry policy (runner/retry.py).
type Policy struct {
	MaxAttempts int           // MAX_TASK_ATTEMPTS (default 3): attempts allowed in all
	Backoff     time.Duration // RETRY_BACKOFF_SECONDS (default 60 s): the base delay
	Denylist    []string      // RETRY_EXCEPTION_DENYLIST: exception types never retried
}

// DefaultPolicy is django-ray 0.2.0's default.
func DefaultPolicy() Policy {
	return Policy{MaxAttempts: settings.DefaultMaxTaskAttempts, Backoff: settings.DefaultRetryBackoff}
}

// Decision is whether and when a failed attempt runs again.
type Decision struct {
	Retry  bool
	Delay  time.Duration // until run_after, when Retry
	Reason string        // why not, when !Retry
}

// Decide applies the policy to a failed attempt (the row's attempt_number, which starts at
// 1): no retry once attempt >= MaxAttempts, nor when exceptionType matches the denylist;
// otherwise a retry after min(Backoff * 2^attempt, 1 h). With the defaults, attempt 1 waits
// 120 s, attempt 2 240 s, attempt 3 is final.
func (p Policy) Decide(attempt int32, exceptionType string) Decision {
	if int(attempt) >= p.MaxAttempts {
		return Decision{Reason: fmt.Sprintf("max attempts (%d) reached", p.MaxAttempts)}
	}
	if entry, ok := p.Denied(exceptionType); ok {
		return Decision{Reason: fmt.Sprintf("exception type %q matched denylist entry %q", exceptionType, entry)}
	}
	return Decision{Retry: true, Delay: p.Delay(attempt)}
}

// Delay is the backoff after a failed attempt: min(Backoff * 2^attempt, MaxBackoff).
func (p Policy) Delay(attempt int32) time.Duration {
	if p.Backoff <= 0 {
		return 0
	}
	d := p.Backoff
	for i := int32(0); i < attempt; i++ {
		if d >= MaxBackoff {
			return MaxBackoff
		}
		d *= 2
	}
	return min(d, MaxBackoff)
}

// Denied reports whether exceptionType matches a denylist entry, and which. Matching is
// django-ray 0.2.0's: an entry and a type match when they share a variant, the variants of a
// name being itself, its last dotted component, and "builtins.<name>" for a name without a
// dot. So "ValueError" matches "builtins.ValueError" and vice versa; "RayJobFailed" and
// "TaskLost" match themselves. (Because the short name is a variant, "a.Error" matches an
// entry "b.Error" too.)
func (p Policy) Denied(exceptionType string) (string, bool) {
	types := variants(exceptionType)
	if len(types) == 0 {
		return "", false
	}
	for _, entry := range p.Denylist {
		for v := range variants(entry) {
			if _, ok := types[v]; ok {
				return entry, true
			}
		}
	}
	return "", false
}

func variants(name string) map[string]struct{} {
	name = pyjson.Strip(name)
	if name == "" {
		return nil
	}
	out := map[string]struct{}{name: {}}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		out[name[i+1:]] = struct{}{}
	} else {
		out["builtins."+name] = struct{}{}
	}
	return out
}
