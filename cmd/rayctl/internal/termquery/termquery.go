// Package termquery keeps rayctl from asking the terminal anything while it starts.
//
// bubbletea v1 asks the terminal for its background colour from a package init
// (tea_init.go: lipgloss.HasDarkBackground), and termenv then waits up to 5 s for an answer
// (termenv.OSCTimeout). rayctl links bubbletea for `rayctl top`, so without this package
// every command — `rayctl --help`, `rayctl version` — wrote "\e]11;?\e\\\e[6n" to the
// terminal and stalled 5 s where nothing answers (script(1), some SSH relays, CI ptys).
//
// termenv skips the query when TERM is "dumb". This package's init sets TERM=dumb before
// termenv, lipgloss and bubbletea initialize, and Restore (called from package main's init,
// which runs after every imported package's) puts TERM back, so every later reader — the
// colour profile, `rayctl top`'s renderer — sees the real one. The order is Go's: packages
// initialize in import-path order among those whose imports are done (the Go spec, "Package
// initialization"); this package imports only syscall, so it is ready before
// golang.org/x/sys (which termenv needs) and sorts before it, so it runs first.
// cmd/rayctl's TestNoTerminalQuery checks the result on the built binary.
package termquery

import "syscall"

var (
	term    string
	hadTerm bool
	held    bool
)

func init() {
	term, hadTerm = syscall.Getenv("TERM")
	held = syscall.Setenv("TERM", "dumb") == nil
}

// Restore puts TERM back as it was before this package's init.
func Restore() {
	if !held {
		return
	}
	held = false
	if hadTerm {
		_ = syscall.Setenv("TERM", term)
	} else {
		_ = syscall.Unsetenv("TERM")
	}
}
