package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// TestDSNPasswordNeverPrinted: whatever form the database password takes, no rayctl command
// prints it in its connection error.
func TestDSNPasswordNeverPrinted(t *testing.T) {
	for _, dsn := range storetest.SecretDSNs(t) {
		for _, args := range [][]string{{"stats"}, {"tasks", "ls", "-o", "json"}, {"doctor"}, {"--database-url", dsn, "migrate", "status"}} {
			r := rayctl(t, map[string]string{"DATABASE_URL": dsn}, "", args...)
			if r.code == 0 {
				t.Fatalf("rayctl %v worked on %q", args, dsn)
			}
			if out := r.stdout + r.stderr; storetest.LeaksSecret(out) {
				t.Errorf("rayctl %v printed the password for %q:\n%s", args, dsn, out)
			}
		}
	}
}

// TestShowResultDirDoesNotFollowSymlinksOut: tasks show --result-dir never reports on a file
// outside the result directory that a symbolic link inside it points at.
func TestShowResultDirDoesNotFollowSymlinksOut(t *testing.T) {
	t.Parallel()
	s, vars := migrated(t)
	digest := strings.Repeat("ab", 32)
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "id_rsa")
	if err := os.WriteFile(secret, []byte("1234567"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "ab", "ab"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "ab", "ab", digest+".json")); err != nil {
		t.Fatal(err)
	}
	task := storetest.Insert(t, s, store.Task{State: store.StateSucceeded,
		ResultReference: storetest.Ptr("resultfs://sha256/" + digest + "?rel=ab/ab/" + digest + ".json&bytes=7")})
	id := strconv.FormatInt(task.ID, 10)
	r := rayctl(t, vars, "", "tasks", "show", id, "--result-dir", dir).expect(t, exitOK)
	if strings.Contains(r.stdout, "present") || !strings.Contains(r.stdout, "not followed") {
		t.Errorf("tasks show followed the symlink out of the result directory:\n%s", r.stdout)
	}
	r = rayctl(t, vars, "", "tasks", "show", id, "--result-dir", dir, "-o", "json").expect(t, exitOK)
	if strings.Contains(r.stdout, `"file_bytes"`) || !strings.Contains(r.stdout, `"file_exists": false`) {
		t.Errorf("tasks show -o json followed the symlink:\n%s", r.stdout)
	}
}
