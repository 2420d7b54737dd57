package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rayctl/rayctl/worker/workertest"
)

// TestBinarySystemdNotify: under a Type=notify unit the binary tells systemd READY=1 only
// once it is ready (its lease exists), pets the watchdog while its loop runs, and says
// STOPPING=1 when SIGTERM starts the drain; it still exits 143.
func TestBinarySystemdNotify(t *testing.T) {
	t.Parallel()
	_, dsn := migratedDSN(t)
	dir, err := os.MkdirTemp("", "sd") // a short path: unix socket names are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()

	p := startBinary(t, dsn, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"},
		"--sync", "--log-format", "json", "--entrypoint", workertest.EntrypointCommand(t))

	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(60 * time.Second):
			t.Fatalf("no %s notification within 60s", what)
		}
		return ""
	}
	// READY=1 comes after the worker has its lease ("worker started" is logged once it does)
	var ready bool
	for !ready {
		m := next("READY=1")
		if strings.HasPrefix(m, "READY=1") {
			ready = true
			if _, ok := p.logField("worker started", "worker_id"); !ok {
				t.Fatal("READY=1 before the worker started")
			}
		}
	}
	pets := 0
	deadline := time.After(3 * time.Second)
	for pets < 3 {
		select {
		case m := <-msgs:
			if m == "WATCHDOG=1" {
				pets++
			}
		case <-deadline:
			t.Fatalf("%d WATCHDOG=1 in 3s with WatchdogSec=0.4s", pets)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		m := next("STOPPING=1")
		if strings.HasPrefix(m, "STOPPING=1") {
			break
		}
		if strings.HasPrefix(m, "READY=1") {
			t.Fatalf("a second READY=1: %q", m)
		}
	}
	if code := p.exitCode(60 * time.Second); code != exitSIGTERM {
		t.Fatalf("exit %d, want %d", code, exitSIGTERM)
	}
}
