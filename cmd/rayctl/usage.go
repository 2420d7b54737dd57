package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/recovery"
)

// The two parse errors urfave/cli passes on from Go's flag package, which names every flag
// with one dash whatever was typed, and shows strconv's own words for a bad number.
var (
	undefinedFlagRe = regexp.MustCompile(`^flag provided but not defined: -(.+)$`)
	needsValueRe    = regexp.MustCompile(`^flag needs an argument: -(.+)$`)
	invalidValueRe  = regexp.MustCompile(`^invalid value "((?s).*)" for flag -([^:]+): (?s).*$`)
)

// flagError rewrites a flag parse error of command name (its flags) for people: the flag as
// it was typed (--olderthan, not -olderthan), the flags near an unknown one, and what a value
// should look like instead of strconv's error. Other errors are returned as they are.
func (e env) flagError(name string, flags []cli.Flag, err error) string {
	msg := err.Error()
	if m := undefinedFlagRe.FindStringSubmatch(msg); m != nil {
		typed := e.typedFlag(m[1])
		out := fmt.Sprintf("unknown flag %s", typed)
		if near := nearFlags(m[1], flags); len(near) > 0 {
			out += fmt.Sprintf("; did you mean %s?", strings.Join(near, " or "))
		}
		return out
	}
	if m := needsValueRe.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s needs a value: %s", e.typedFlag(m[1]), wantFor(m[1], flags))
	}
	if m := invalidValueRe.FindStringSubmatch(msg); m != nil {
		value, flag := m[1], m[2]
		return fmt.Sprintf("invalid %s %q: want %s", e.typedFlag(flag), value, wantFor(flag, flags))
	}
	return msg
}

// typedFlag is flag name as the command line spelled it (-x or --name), from the arguments.
func (e env) typedFlag(name string) string {
	for _, a := range e.args {
		a, _, _ = strings.Cut(a, "=")
		if strings.TrimLeft(a, "-") == name && strings.HasPrefix(a, "-") {
			return a
		}
	}
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// dashed is a flag name as help shows it.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// nearFlags are the command's flags near name: the same but for case, dashes or
// underscores (olderthan, older_than), or a typo away.
func nearFlags(name string, flags []cli.Flag) []string {
	var names []string
	for _, f := range flags {
		for _, n := range f.Names() {
			if len(n) > 1 {
				names = append(names, n)
			}
		}
	}
	near := recovery.Near(name, names, false)
	if len(near) == 0 && len(name) >= 2 { // an abbreviation: --que for --queue
		for _, n := range names {
			if strings.HasPrefix(n, strings.ToLower(name)) {
				near = append(near, n)
			}
		}
	}
	for i, n := range near {
		near[i] = dashed(n)
	}
	return near
}

// wantFor says what a flag's value should look like.
func wantFor(name string, flags []cli.Flag) string {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			switch f.(type) {
			case *cli.Int64SliceFlag:
				if name == "id" {
					return "a task's row id, a positive whole number (repeat --id, or separate ids with commas)"
				}
				return "whole numbers (repeat the flag, or separate them with commas)"
			case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
				return "a whole number"
			case *cli.Float64Flag:
				return "a number"
			case *cli.DurationFlag:
				return "a duration such as 90s, 10m or 1h30m"
			case *cli.BoolFlag:
				return "true or false (or leave the value out)"
			case *cli.StringFlag, *cli.StringSliceFlag:
				if u := f.(cli.DocGenerationFlag).GetUsage(); u != "" {
					return u
				}
				return "a value"
			}
		}
	}
	return "a valid value (see --help)"
}
