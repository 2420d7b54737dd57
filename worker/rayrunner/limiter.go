package rayrunner

import (
	"context"
	"sync"
	"time"
)

// limiter spaces calls to at most rate per second, letting burst go at once after a pause.
type limiter struct {
	mu    sync.Mutex
	every time.Duration
	burst time.Duration
	next  time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	every := time.Duration(float64(time.Second) / rate)
	return &limiter{every: every, burst: time.Duration(max(burst, 1)) * every}
}

// wait blocks until the caller may make its call, or ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	now := time.Now()
	if floor := now.Add(-l.burst); l.next.Before(floor) {
		l.next = floor
	}
	at := l.next
	l.next = l.next.Add(l.every)
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
