package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts are urfave/cli's documented templates
// (autocomplete/ in its repository) with the program name filled in: they
// ask the binary itself (--generate-bash-completion), so they never go
// stale when verbs or flags change.
const bashCompletion = `#!/bin/bash
# bash completion for PROG; install: PROG completion bash > /etc/bash_completion.d/PROG
_PROG_bash_autocomplete() {
  if [[ "${COMP_WORDS[0]}" != "source" ]]; then
    local cur opts words cword
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    if declare -F _init_completion >/dev/null 2>&1; then
      _init_completion -n "=:" || return
    else
      words=("${COMP_WORDS[@]}")
      cword=$COMP_CWORD
    fi
    words=("${words[@]:0:$cword}")
    if [[ "$cur" == "-"* ]]; then
      requestComp="${words[*]} ${cur} --generate-bash-completion"
    else
      requestComp="${words[*]} --generate-bash-completion"
    fi
    opts=$(eval "${requestComp}" 2>/dev/null)
    COMPREPLY=($(compgen -W "${opts}" -- ${cur}))
    return 0
  fi
}
complete -o bashdefault -o default -o nospace -F _PROG_bash_autocomplete PROG
`

const zshCompletion = `#compdef PROG
# zsh completion for PROG; install: PROG completion zsh > "${fpath[1]}/_PROG"
_PROG_zsh_autocomplete() {
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
compdef _PROG_zsh_autocomplete PROG
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: `Prints a script that completes wasmesh's verbs and flags in your shell.

Examples:
   source <(wasmesh completion bash)              # this shell only
   wasmesh completion bash > /etc/bash_completion.d/wasmesh
   wasmesh completion zsh > "${fpath[1]}/_wasmesh"
   wasmesh completion fish > ~/.config/fish/completions/wasmesh.fish`,
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "one shell: bash, zsh or fish"); err != nil {
				return err
			}
			name := c.App.Name
			switch sh := c.Args().First(); sh {
			case "bash":
				fmt.Fprint(c.App.Writer, strings.ReplaceAll(bashCompletion, "PROG", name))
			case "zsh":
				fmt.Fprint(c.App.Writer, strings.ReplaceAll(zshCompletion, "PROG", name))
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return fail(1, "fish completion: %v", err)
				}
				fmt.Fprint(c.App.Writer, s)
			default:
				return fail(2, "completion: unknown shell %q; want bash, zsh or fish", sh)
			}
			return nil
		},
	}
}

func manCommand() *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the manual page (roff), e.g. wasmesh man > wasmesh.1",
		Hidden: true,
		Action: func(c *cli.Context) error {
			s, err := c.App.ToMan()
			if err != nil {
				return fail(1, "man: %v", err)
			}
			fmt.Fprint(c.App.Writer, s)
			return nil
		},
	}
}
