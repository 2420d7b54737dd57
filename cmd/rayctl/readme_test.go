package main

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestReadmeOperatorCommands runs the README's "three commands operators use most" as written
// (all but `rayctl top`, which needs a terminal: interop's TestReadmeOwnDatabase runs it in
// tmux) on a database with a failed task: each must run, and the dry run must change nothing.
func TestReadmeOperatorCommands(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	in, fence := false, false
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## The three commands operators use most"
		case in && strings.HasPrefix(line, "```"):
			fence = !fence
		case in && fence:
			if cmd, _, _ := strings.Cut(line, "#"); strings.TrimSpace(cmd) != "" {
				lines = append(lines, strings.TrimSpace(cmd))
			}
		}
	}
	if len(lines) != 3 {
		t.Fatalf("the README's operator commands are %q; want three (update this test with the README)", lines)
	}

	s, vars := migrated(t)
	failed := storetest.Insert(t, s, store.Task{QueueName: "default", State: store.StateFailed})
	for _, line := range lines {
		args := strings.Fields(line)
		if args[0] != "rayctl" || strings.ContainsAny(line, `"'$|;&`) {
			t.Fatalf("%q is not a plain rayctl command line; update this test with the README", line)
		}
		if len(args) > 1 && args[1] == "top" {
			continue
		}
		r := rayctl(t, vars, "", args[1:]...)
		t.Logf("$ %s (exit %d)\n%s%s", line, r.code, r.stdout, r.stderr)
		want := map[string][]int{"doctor": {exitOK, exitUnhealthy}, "requeue": {exitOK}}[args[1]]
		if want == nil {
			t.Fatalf("%q: no expectation for rayctl %s; add one", line, args[1])
		}
		ok := false
		for _, code := range want {
			ok = ok || r.code == code
		}
		if !ok {
			t.Errorf("%s: exit %d, want one of %v\nstdout: %s\nstderr: %s", line, r.code, want, r.stdout, r.stderr)
		}
		if args[1] == "requeue" && (!strings.Contains(r.stdout, "1 task matches") || !strings.Contains(r.stdout, "dry run: nothing changed")) {
			t.Errorf("%s does not show the failed task as a dry run:\n%s", line, r.stdout)
		}
	}
	if got, err := s.GetTask(t.Context(), failed.ID); err != nil || got.State != store.StateFailed {
		t.Errorf("after the README's commands the failed task is %v (%v); the dry run wrote", got.State, err)
	}
}
