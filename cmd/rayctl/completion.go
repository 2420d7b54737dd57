package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts are urfave/cli's (autocomplete/), bound to rayctl: they ask the
// binary itself for candidates with --generate-bash-completion.
const bashCompletion = `# rayctl bash completion: source <(rayctl completion bash)
_rayctl_complete() {
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
complete -o bashdefault -o default -o nospace -F _rayctl_complete rayctl
`

const zshCompletion = `#compdef rayctl
# rayctl zsh completion: rayctl completion zsh > "${fpath[1]}/_rayctl"
_rayctl() {
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
compdef _rayctl rayctl
`

func (e env) completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: "   bash:  source <(rayctl completion bash)      (or save it under /etc/bash_completion.d/)\n" +
			"   zsh:   rayctl completion zsh > \"${fpath[1]}/_rayctl\"\n" +
			"   fish:  rayctl completion fish > ~/.config/fish/completions/rayctl.fish\n\n" +
			"EXIT CODES:\n   0  printed\n   2  usage error (unknown shell)",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("completion: want one shell: bash, zsh or fish")
			}
			var script string
			switch shell := strings.ToLower(c.Args().First()); shell {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("completion: %w", err)
				}
				script = s
			default:
				return usageErrorf("completion: unknown shell %q (want bash, zsh or fish)", shell)
			}
			_, err := fmt.Fprint(e.stdout, script)
			return err
		},
	}
}
