package recovery

import (
	"context"
	"fmt"
	"time"

	"github.com/rayctl/rayctl/store"
)

// startAudit opens a bulk action's audit entry when the audit tables exist and returns its id
// (nil without them: nothing is recorded, and a reason, which could not be kept, is refused
// before anything is written).
func startAudit(ctx context.Context, s *store.Store, e store.AuditEntry) (*int64, error) {
	audited, err := s.AuditAvailable(ctx)
	if err != nil {
		return nil, err
	}
	if !audited {
		if e.Reason != nil {
			return nil, fmt.Errorf("a reason cannot be recorded: %w", store.ErrNoAudit)
		}
		return nil, nil
	}
	id, err := s.StartAudit(ctx, e)
	if err != nil {
		return nil, err
	}
	return &id, nil
}

// finishAudit records how a bulk action ended (also when it was interrupted or failed) and
// returns runErr, or the recording's own error when the run itself succeeded.
func finishAudit(ctx context.Context, s *store.Store, id *int64, changed, skipped int64, runErr error) error {
	if id == nil {
		return runErr
	}
	var msg *string
	if runErr != nil {
		m := runErr.Error()
		msg = &m
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.FinishAudit(fctx, *id, changed, skipped, msg); err != nil && runErr == nil {
		return fmt.Errorf("record the audit outcome: %w", err)
	}
	return runErr
}
