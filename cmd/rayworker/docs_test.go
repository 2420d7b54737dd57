package main

import (
	"strings"
	"testing"

	"github.com/rayctl/rayctl/internal/settings"
)

// TestManPage: `rayworker man` is the man page the packages install, made from the flag
// table: every setting appears with its environment variable.
func TestManPage(t *testing.T) {
	r := rayworker(t, nil, "man")
	if r.code != exitOK {
		t.Fatalf("man: exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, ".nh\n.TH rayworker 1") {
		t.Fatalf("man page header: %.60q", r.stdout)
	}
	for _, s := range settings.Worker {
		if !strings.Contains(r.stdout, `\fB--`+s.Name+`\fP`) || !strings.Contains(r.stdout, "$"+s.Env) {
			t.Errorf("man page lacks --%s or $%s", s.Name, s.Env)
		}
	}
	for _, want := range []string{"EXIT CODES", "143"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	if r := rayworker(t, nil, "man", "extra"); r.code != exitUsage {
		t.Errorf("man extra: exit %d, want %d", r.code, exitUsage)
	}
}

// TestCompletionScripts: `rayworker completion SHELL` prints a script bound to rayworker;
// the commands stay out of the daemon's help.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "complete -o bashdefault -o default -o nospace -F _rayworker_complete rayworker",
		"zsh":  "compdef _rayworker rayworker",
		"fish": "complete -c rayworker -n '__fish_rayworker_no_subcommand' -f -l concurrency",
	} {
		r := rayworker(t, nil, "completion", shell)
		if r.code != exitOK || !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s: exit %d, lacks %q:\n%s", shell, r.code, want, r.stdout)
		}
	}
	r := rayworker(t, nil, "completion", "tcsh")
	if r.code != exitUsage || !strings.Contains(r.stderr, `unknown shell "tcsh"`) {
		t.Errorf("completion tcsh: exit %d, stderr %q", r.code, r.stderr)
	}
	help := rayworker(t, nil, "--help")
	if help.code != exitOK || strings.Contains(help.stdout, "COMMANDS") || strings.Contains(help.stdout, "completion") {
		t.Errorf("help lists the hidden commands:\n%s", help.stdout)
	}
	// an unknown word is still refused as an argument, not taken for a command
	if r := rayworker(t, nil, "--sync", "nonsense"); r.code != exitUsage || !strings.Contains(r.stderr, `unexpected argument "nonsense"`) {
		t.Errorf("unexpected argument: exit %d, stderr %q", r.code, r.stderr)
	}
}
