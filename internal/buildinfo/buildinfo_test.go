package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, at, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/rayctl/rayctl", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: at}, {Key: "vcs.modified", Value: modified}}}
	}
	installed := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/rayctl/rayctl", Version: "v1.4.0"}}
	tests := []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  Info
		wantString            string
	}{
		{"release: the stamped values win", "1.4.0", "0123456789abcdef0123", "2026-01-02T03:04:05Z", vcs("ffff", "2020-01-01T00:00:00Z", "true"),
			Info{Version: "1.4.0", Commit: "0123456789abcdef0123", Date: "2026-01-02T03:04:05Z", Go: "go1.26.8"},
			"1.4.0 (commit 0123456789ab, built 2026-01-02T03:04:05Z, go1.26.8 linux/amd64)"},
		{"go install pkg@v1.4.0: the module version", "dev", "", "", installed,
			Info{Version: "v1.4.0", Go: "go1.26.8"}, "v1.4.0 (go1.26.8 linux/amd64)"},
		{"go build in a dirty checkout: the VCS stamp", "dev", "", "", vcs("abcdef0123456789", "2026-02-03T04:05:06Z", "true"),
			Info{Version: "dev", Commit: "abcdef0123456789", Date: "2026-02-03T04:05:06Z", Modified: true, Go: "go1.26.8"},
			"dev (commit abcdef012345-dirty, built 2026-02-03T04:05:06Z, go1.26.8 linux/amd64)"},
		{"make build: stamped version, VCS commit and date", "v0.3.0-4-gabc", "", "", vcs("abc", "2026-02-03T04:05:06Z", "false"),
			Info{Version: "v0.3.0-4-gabc", Commit: "abc", Date: "2026-02-03T04:05:06Z", Go: "go1.26.8"},
			"v0.3.0-4-gabc (commit abc, built 2026-02-03T04:05:06Z, go1.26.8 linux/amd64)"},
		{"no build info at all", "", "", "", nil, Info{Version: "dev"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.version, tt.commit, tt.date, tt.bi)
			want := tt.want
			if want.Go == "" {
				want.Go = got.Go // the running toolchain's
			}
			want.OS, want.Arch = got.OS, got.Arch
			if got != want {
				t.Fatalf("resolve = %+v, want %+v", got, want)
			}
			if tt.wantString != "" {
				got.OS, got.Arch = "linux", "amd64"
				if s := got.String(); s != tt.wantString {
					t.Fatalf("String = %q, want %q", s, tt.wantString)
				}
			}
		})
	}
}
