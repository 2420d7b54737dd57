// Package clidoc makes the documents a package installs beside a binary (a man page and shell
// completion scripts) from the binary's own urfave/cli definition, so they list exactly the
// flags and commands the binary has. Both binaries serve them as commands (`completion`,
// `man`); the release (scripts/gen-docs.sh, .goreleaser.yaml) runs those commands.
package clidoc

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// ManSection is the man section of both binaries (user commands, installed in /usr/bin).
const ManSection = 1

// Man renders app's man page (roff) from its name, usage, description, flags and commands.
func Man(app *cli.App) (string, error) {
	s, err := app.ToManWithSection(ManSection)
	if err != nil {
		return "", fmt.Errorf("man page: %w", err)
	}
	return s, nil
}

// Shells are the shells Completion writes scripts for.
var Shells = []string{"bash", "zsh", "fish"}

// Completion returns app's completion script for shell. The bash and zsh scripts follow
// urfave/cli's (its autocomplete/ directory), bound to app.Name: they ask the binary for its
// candidates with --generate-bash-completion, so app must set EnableBashCompletion. The fish
// script is generated from the definition.
func Completion(app *cli.App, shell string) (string, error) {
	name := app.Name
	fn := "_" + strings.NewReplacer("-", "_", ".", "_").Replace(name)
	switch strings.ToLower(shell) {
	case "bash":
		return strings.NewReplacer("NAME", name, "FUNC", fn).Replace(bashTemplate), nil
	case "zsh":
		return strings.NewReplacer("NAME", name, "FUNC", fn).Replace(zshTemplate), nil
	case "fish":
		s, err := app.ToFishCompletion()
		if err != nil {
			return "", fmt.Errorf("fish completion: %w", err)
		}
		return s, nil
	}
	return "", fmt.Errorf("unknown shell %q (want bash, zsh or fish)", shell)
}

const bashTemplate = `# NAME bash completion: source <(NAME completion bash)
FUNC_complete() {
  local cur words
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:0:$COMP_CWORD}")
  local opts
  if [[ "$cur" == "-"* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  return 0
}
complete -o bashdefault -o default -o nospace -F FUNC_complete NAME
`

const zshTemplate = `#compdef NAME
# NAME zsh completion: NAME completion zsh > "${fpath[1]}/_NAME"
FUNC() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef FUNC NAME
`

// CompletionCommand is the `completion SHELL` command of the binary called name, hidden from
// its help when hidden is set. usage builds the error for a bad argument, so each binary keeps
// its own exit codes. It prints to the app's Writer.
func CompletionCommand(name string, hidden bool, usage func(format string, a ...any) error) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Hidden:    hidden,
		Description: strings.ReplaceAll("   bash:  source <(NAME completion bash)   (the packages install it for bash-completion)\n"+
			"   zsh:   NAME completion zsh > \"${fpath[1]}/_NAME\"\n"+
			"   fish:  NAME completion fish > ~/.config/fish/completions/NAME.fish\n\n"+
			"EXIT CODES:\n   0  printed\n   2  usage error (unknown shell)", "NAME", name),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usage("completion: want one shell: bash, zsh or fish")
			}
			s, err := Completion(c.App, c.Args().First())
			if err != nil {
				return usage("completion: %v", err)
			}
			_, err = fmt.Fprint(c.App.Writer, s)
			return err
		},
	}
}

// ManCommand is the hidden `man` command of the binary called name: it prints the man page.
func ManCommand(name string, usage func(format string, a ...any) error) *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the man page (roff: " + name + " man | man -l -)",
		Hidden: true,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usage("man: unexpected argument %q", c.Args().First())
			}
			s, err := Man(c.App)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, s)
			return err
		},
	}
}
