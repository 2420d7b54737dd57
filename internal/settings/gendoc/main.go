// Command gendoc writes docs/configuration.md from the settings table:
//
//	go generate ./internal/settings
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/rayctl/rayctl/internal/settings"
)

func main() {
	out := flag.String("o", "", "file to write (default: stdout)")
	flag.Parse()
	doc := settings.Markdown()
	if *out == "" {
		fmt.Print(doc)
		return
	}
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
