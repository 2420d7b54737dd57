package main

import (
	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/internal/clidoc"
)

// completionCommand prints the bash, zsh or fish script (`rayctl completion bash`); the
// packages install the same scripts, made by this command (scripts/gen-docs.sh).
func (e env) completionCommand() *cli.Command {
	return clidoc.CompletionCommand("rayctl", false, usageErrorf)
}

// manCommand prints rayctl's man page (hidden; the packages install its output as rayctl.1).
func (e env) manCommand() *cli.Command {
	return clidoc.ManCommand("rayctl", usageErrorf)
}
