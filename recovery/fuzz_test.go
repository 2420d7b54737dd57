package recovery_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/recovery"
)

// FuzzParseReference: any result_reference a row may hold parses or is refused with an error,
// never a panic; a resultfs:// path it accepts stays inside the result directory.
func FuzzParseReference(f *testing.F) {
	d := strings.Repeat("ab", 32)
	for _, s := range []string{"oversize://sha256/" + d + "?bytes=10", "resultfs://sha256/" + d + "?rel=ab/ab/" + d + ".json&bytes=3",
		"resultfs://sha256/" + d + "?rel=../x", "s3://b/k?bytes=1", "gs://b/?bytes=1", "x", "resultfs://sha256/" + d + "?rel=%2e%2e/%2e%2e/etc"} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, ref string) {
		r, err := recovery.ParseReference(ref, dir)
		if err != nil {
			return
		}
		switch r.Scheme {
		case "oversize", "resultfs", "s3", "gs":
		default:
			t.Fatalf("%q: accepted scheme %q", ref, r.Scheme)
		}
		if r.Scheme == "resultfs" {
			rel, err := filepath.Rel(dir, r.Path)
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
				t.Fatalf("%q: resolves outside the result directory: %q (%v)", ref, r.Path, err)
			}
			if r.FileExists == nil || *r.FileExists {
				t.Fatalf("%q: a file exists in an empty directory: %+v", ref, r)
			}
		}
	})
}
