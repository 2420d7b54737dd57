package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNoTerminalQuery (issue 11, finding 9): no rayctl command asks the terminal anything
// at startup. bubbletea v1's init asks for the background colour (OSC 11, then a cursor
// position report) and waits 5 s for an answer that a pty like script(1)'s never sends; with
// cmd/rayctl/internal/termquery the query is never written. The commands run in a real pty
// (script) with a TERM that termenv would otherwise query.
func TestNoTerminalQuery(t *testing.T) {
	t.Parallel()
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("script(1) is required (util-linux)")
		}
		t.Skip("script(1) not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"version"}, {"--help"}, {"stats", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, scriptBin, "-qec", exe+" "+strings.Join(args, " "), "/dev/null")
			cmd.Env = append(os.Environ(), "RAYCTL_TEST_MAIN=1", "TERM=xterm-256color", "NO_COLOR=1")
			cmd.Stdin = nil
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v\n%q", args, err, out)
			}
			for _, q := range []string{"\x1b]11;?", "\x1b[6n"} {
				if strings.Contains(string(out), q) {
					t.Fatalf("rayctl %v queried the terminal (%q):\n%q", args, q, out)
				}
			}
			if !strings.Contains(string(out), "rayctl") {
				t.Fatalf("rayctl %v printed:\n%q", args, out)
			}
		})
	}
}
