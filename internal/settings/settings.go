// Package settings is the one definition of django-ray's settings as rayworker and rayctl
// offer them: for each, its flag, the environment variable that also sets it, its default,
// what it accepts (a number's range) and its help. The binaries build their flags and --help
// from it, check values with it and take their defaults from it; docs/configuration.md is
// generated from it (go generate ./internal/settings) and a test keeps the README's rows in
// step.
//
// It imports only the standard library, so any package may take a default or a limit from
// it (the worker's Config, lifecycle's retry policy, recovery's and the store's lease TTL).
// It reads no flag and no environment variable: cmd/rayworker and cmd/rayctl do, and hand
// the text they found to Parse.
package settings

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Setting is one row of the table, as --help and the docs show it.
type Setting struct {
	Name    string // flag name, without dashes
	Env     string // environment variable that also sets it (the flag wins)
	Arg     string // value placeholder in --help; "" for a boolean
	Default string // the default, as shown; "" for none
	Accepts string // what it accepts, as shown (and as a usage error names it)
	Usage   string // what it does
}

// DjangoName is django-ray's own name for s: its variable without DJANGO_RAY_
// (MAX_TASK_ATTEMPTS).
func (s Setting) DjangoName() string { return strings.TrimPrefix(s.Env, "DJANGO_RAY_") }

// Int is a whole-number setting; its row's Default and Accepts are written from its typed
// default and range.
type Int struct {
	Name, Env, Arg string
	Default        int64
	Min, Max       int64
	Note           string // appended to the range in Accepts: " (0: never)", ", more than ..."
	Usage          string
}

// Setting is s's row.
func (s Int) Setting() Setting {
	return Setting{s.Name, s.Env, s.Arg, strconv.FormatInt(s.Default, 10), fmt.Sprintf("%d..%d%s", s.Min, s.Max, s.Note), s.Usage}
}

// Parse reads a whole number in Min..Max; the error says what is wanted.
func (s Int) Parse(v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < s.Min || n > s.Max {
		return 0, errors.New("want an integer in " + s.Setting().Accepts)
	}
	return n, nil
}

// Seconds is the default of a *-seconds setting as a duration.
func (s Int) Seconds() time.Duration { return time.Duration(s.Default) * time.Second }

// Float is an amount (fractions allowed) in Min..Max.
type Float struct {
	Name, Env, Arg string
	Default        float64
	Min, Max       float64
	Usage          string
}

// Setting is s's row.
func (s Float) Setting() Setting {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	return Setting{s.Name, s.Env, s.Arg, f(s.Default), f(s.Min) + ".." + f(s.Max) + " (fractions allowed)", s.Usage}
}

// Parse reads an amount in Min..Max; the error says what is wanted.
func (s Float) Parse(v string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f < s.Min || f > s.Max {
		return 0, errors.New("want " + s.Setting().Accepts)
	}
	return f, nil
}

// Duration is a duration setting: a Go duration (90s, 2m) or a number of seconds, in
// Min..Max.
type Duration struct {
	Name, Env, Arg string
	Default        time.Duration
	Min, Max       time.Duration
	Usage          string
}

// Setting is s's row.
func (s Duration) Setting() Setting {
	return Setting{s.Name, s.Env, s.Arg, Short(s.Default), Short(s.Min) + ".." + Short(s.Max) + " (a duration, or seconds)", s.Usage}
}

// Parse reads a duration in Min..Max; the error says what is wanted.
func (s Duration) Parse(v string) (time.Duration, error) {
	d, ok := ParseDuration(v)
	if !ok || d < s.Min || d > s.Max {
		return 0, errors.New("want " + s.Setting().Accepts)
	}
	return d, nil
}

// ParseDuration accepts a Go duration (90s, 2m) or a number of seconds.
func ParseDuration(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil
}

// Short writes d without Go's zero units: 2m, 1h, 30s, 0s.
func Short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Bool is a true/false setting (default false); ParseBool reads its values.
func Bool(name, env, usage string) Setting {
	return Setting{Name: name, Env: env, Default: "false", Accepts: "true/false", Usage: usage}
}

// ParseBool reads 1/true/yes/on and 0/false/no/off (any case; empty is false).
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off", "":
		return false, nil
	}
	return false, errors.New("want true/false")
}

// Default sets *p to def when *p is zero or negative: how a Config field left unset takes its
// documented default (rayjobs.Options, rayrunner.Config, recovery's thresholds).
func Default[T ~int | ~int64 | ~float64](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}
