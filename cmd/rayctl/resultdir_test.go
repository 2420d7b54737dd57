package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestShowResultDirSettings: tasks show finds a resultfs:// file through the directory the
// workers are given ($DJANGO_RAY_RESULT_STORAGE_FILESYSTEM_PATH), django-ray's own name
// ($RESULT_STORAGE_FILESYSTEM_PATH), --result-dir or its alias --result-storage-filesystem-path,
// in that order of precedence: flag, then the workers' name, then django-ray's.
func TestShowResultDirSettings(t *testing.T) {
	t.Parallel()
	s, vars := migrated(t)
	dir, other := t.TempDir(), t.TempDir()
	digest := strings.Repeat("cd", 32)
	rel := "cd/cd/" + digest + ".json"
	if err := os.MkdirAll(filepath.Join(dir, "cd", "cd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, rel), []byte(`[7, 8]`), 0o644); err != nil {
		t.Fatal(err)
	}
	task := storetest.Insert(t, s, store.Task{State: store.StateSucceeded, ResultReference: storetest.Ptr("resultfs://sha256/" + digest + "?rel=" + rel + "&bytes=6")})
	present := "on this machine: " + filepath.Join(dir, rel) + " (present, 6 bytes)"
	with := func(kv ...string) map[string]string {
		m := map[string]string{"DATABASE_URL": vars["DATABASE_URL"]}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"workers' variable", with("DJANGO_RAY_RESULT_STORAGE_FILESYSTEM_PATH", dir), nil, present},
		{"django-ray's variable", with("RESULT_STORAGE_FILESYSTEM_PATH", dir), nil, present},
		{"workers' variable first", with("DJANGO_RAY_RESULT_STORAGE_FILESYSTEM_PATH", dir, "RESULT_STORAGE_FILESYSTEM_PATH", other), nil, present},
		{"--result-dir first", with("DJANGO_RAY_RESULT_STORAGE_FILESYSTEM_PATH", other), []string{"--result-dir", dir}, present},
		{"the workers' flag name", with(), []string{"--result-storage-filesystem-path", dir}, present},
		{"none set: explained, not looked for", with(), nil, ""},
	}
	for _, tt := range tests {
		args := append([]string{"tasks", "show", itoa(task.ID)}, tt.args...)
		r := rayctl(t, tt.vars, "", args...).expect(t, exitOK)
		if tt.want == "" {
			if strings.Contains(r.stdout, "on this machine") {
				t.Errorf("%s: a path was resolved:\n%s", tt.name, r.stdout)
			}
			continue
		}
		if !strings.Contains(r.stdout, tt.want) {
			t.Errorf("%s: output lacks %q:\n%s", tt.name, tt.want, r.stdout)
		}
	}
}
