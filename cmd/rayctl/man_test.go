package main

import (
	"strings"
	"testing"
)

// TestManPage: `rayctl man` is the man page the packages install, made from the command
// definitions: a section per visible command, the global flags and the exit codes.
func TestManPage(t *testing.T) {
	t.Parallel()
	r := rayctl(t, nil, "", "man").expect(t, exitOK)
	if !strings.HasPrefix(r.stdout, ".nh\n.TH rayctl 1") {
		t.Fatalf("man page header: %.60q", r.stdout)
	}
	app := env{}.newApp()
	for _, c := range app.VisibleCommands() {
		if !strings.Contains(r.stdout, "\n.SH "+c.Name+"\n") {
			t.Errorf("man page lacks a section for %s", c.Name)
		}
	}
	for _, want := range []string{`\fB--database-url\fP`, "EXIT CODES"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, "\n.SH man\n") {
		t.Error("the hidden man command has a section")
	}
}
