package main

import (
	"os"
	"os/exec"
	"testing"
)

// TestMain lets tests run the real main in a subprocess (the test binary re-executed with
// RAYCTL_TEST_MAIN=1): for what urfave/cli reads from os.Args (shell completion) and for
// real signals.
func TestMain(m *testing.M) {
	if os.Getenv("RAYCTL_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// subprocess returns a command running rayctl's main with args, in its own process.
func subprocess(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append([]string{"RAYCTL_TEST_MAIN=1"}, env...)
	return cmd
}
