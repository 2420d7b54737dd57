package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func (e env) versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit and build date",
		Action: func(c *cli.Context) error {
			o, err := e.opts(c)
			if err != nil {
				return err
			}
			if o.json() {
				return writeJSON(e.stdout, o, build)
			}
			_, err = fmt.Fprintf(e.stdout, "rayctl %s\n", build)
			return err
		},
	}
}
