// Package buildinfo says which build a binary is: the version, commit and date a release
// stamps with -ldflags -X (goreleaser, make build), else what the Go toolchain recorded in the
// binary (debug.ReadBuildInfo): the module version for `go install ...@v1.2.3` and the VCS
// revision and time for a build inside a git checkout.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info identifies a build.
type Info struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Date     string `json:"date,omitempty"`
	Modified bool   `json:"modified,omitempty"` // built from a working tree with uncommitted changes
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
}

// devVersion is a binary's version when nothing stamped one and the toolchain recorded none.
const devVersion = "dev"

// Resolve combines the values stamped at link time (empty or "dev" when not stamped) with
// what the toolchain recorded; a stamped value always wins.
func Resolve(version, commit, date string) Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return resolve(version, commit, date, bi)
}

func resolve(version, commit, date string, bi *debug.BuildInfo) Info {
	info := Info{Version: version, Commit: commit, Date: date, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi != nil {
		if (info.Version == "" || info.Version == devVersion) && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		stamped := commit != ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.Date == "" {
					info.Date = s.Value
				}
			case "vcs.modified":
				if !stamped {
					info.Modified = s.Value == "true"
				}
			}
		}
		if bi.GoVersion != "" {
			info.Go = bi.GoVersion
		}
	}
	if info.Version == "" {
		info.Version = devVersion
	}
	return info
}

// String is the one-line form `NAME version` and `NAME --version` print after the name:
// "v1.2.3 (commit 0123abc, built 2026-01-02T03:04:05Z, go1.26.0 linux/amd64)".
func (i Info) String() string {
	parts := make([]string, 0, 3)
	if i.Commit != "" {
		c := i.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if i.Modified {
			c += "-dirty"
		}
		parts = append(parts, "commit "+c)
	}
	if i.Date != "" {
		parts = append(parts, "built "+i.Date)
	}
	parts = append(parts, fmt.Sprintf("%s %s/%s", i.Go, i.OS, i.Arch))
	return i.Version + " (" + strings.Join(parts, ", ") + ")"
}
