package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"time"
)

// notifySystemd speaks systemd's notify protocol when systemd asks for it ($NOTIFY_SOCKET:
// a unit with Type=notify): READY=1 once the worker's own /readyz answers 200 (the check a
// Kubernetes readiness probe makes), STOPPING=1 when the shutdown starts, and, with
// WatchdogSec= ($WATCHDOG_USEC), WATCHDOG=1 at half the interval while /healthz answers 200, so
// systemd restarts a worker whose loop stalled. The probes are asked in-process, without
// --metrics-addr. It returns a function that stops it; without $NOTIFY_SOCKET it does nothing.
func notifySystemd(ctx context.Context, getenv func(string) string, h http.Handler, log *slog.Logger) (stop func()) {
	addr := getenv("NOTIFY_SOCKET")
	if addr == "" {
		return func() {}
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:] // an abstract socket
	}
	var watchdog time.Duration
	if us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		if pid := getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
			watchdog = time.Duration(us) * time.Microsecond / 2
		}
	}
	send := func(state string) {
		conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
		if err == nil {
			_, err = conn.Write([]byte(state))
			conn.Close()
		}
		if err != nil {
			log.Warn("could not notify systemd", "state", state, "error", err)
		}
	}
	ok := func(path string) bool {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code == http.StatusOK
	}
	nctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ready := false
		poll := 250 * time.Millisecond
		if watchdog > 0 && watchdog < poll {
			poll = watchdog
		}
		tick := time.NewTicker(poll)
		defer tick.Stop()
		lastPet := time.Time{}
		for {
			if !ready && ok("/readyz") {
				ready = true
				send("READY=1\nSTATUS=claiming tasks")
			}
			if watchdog > 0 && time.Since(lastPet) >= watchdog && ok("/healthz") {
				send("WATCHDOG=1")
				lastPet = time.Now()
			}
			select {
			case <-nctx.Done():
				if ctx.Err() != nil { // the shutdown, not stop()
					send("STOPPING=1\nSTATUS=draining running tasks")
				}
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}
