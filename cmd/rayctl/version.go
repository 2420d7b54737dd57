package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"
)

func (e env) versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			o, err := e.opts(c)
			if err != nil {
				return err
			}
			info := struct {
				Version string `json:"version"`
				Go      string `json:"go"`
				OS      string `json:"os"`
				Arch    string `json:"arch"`
			}{version, runtime.Version(), runtime.GOOS, runtime.GOARCH}
			if o.json() {
				return writeJSON(e.stdout, o, info)
			}
			_, err = fmt.Fprintf(e.stdout, "rayctl %s (%s %s/%s)\n", info.Version, info.Go, info.OS, info.Arch)
			return err
		},
	}
}
