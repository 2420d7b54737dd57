package main

import (
	"testing"

	"github.com/rayctl/rayctl/store/storetest"
)

// TestDSNPasswordNeverPrinted: whatever form the database password takes, rayworker's
// connection error (and anything else it prints) never shows it.
func TestDSNPasswordNeverPrinted(t *testing.T) {
	for _, dsn := range storetest.SecretDSNs(t) {
		for _, how := range []struct {
			vars map[string]string
			args []string
		}{
			{map[string]string{"DATABASE_URL": dsn}, []string{"--sync"}},
			{nil, []string{"--sync", "--database-url", dsn}},
		} {
			r := rayworker(t, how.vars, how.args...)
			if r.code == 0 {
				t.Fatalf("rayworker started on %q", dsn)
			}
			if out := r.stdout + r.stderr; storetest.LeaksSecret(out) {
				t.Errorf("rayworker printed the password for %q:\n%s", dsn, out)
			}
		}
	}
}
