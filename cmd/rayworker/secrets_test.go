package main

import (
	"net"
	"strings"
	"testing"
)

// TestDSNPasswordNeverPrinted: whatever form the database password takes, rayworker's
// connection error (and anything else it prints) never shows it.
func TestDSNPasswordNeverPrinted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	port := strings.Split(dead, ":")[1]
	t.Setenv("PGPASSWORD", "envS3cr3tPW") // pgx reads it from the process environment
	for _, dsn := range []string{
		"postgres://u:pa@ssS3cr3tPW@" + dead + "/db",
		"postgres://u:S3cr3tPW@" + dead + "/db?connect_timeout=2",
		"postgres://u@" + dead + "/db?password=S3cr3tPW&connect_timeout=2",
		"host=127.0.0.1 port=" + port + " user=u password='a S3cr3tPW b' dbname=db connect_timeout=2",
		"host=127.0.0.1 port=" + port + " user=u dbname=envS3cr3tPW connect_timeout=2", // PGPASSWORD, echoed in the db name
	} {
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
			if out := r.stdout + r.stderr; strings.Contains(out, "S3cr3tPW") || strings.Contains(out, "pa@ss") {
				t.Errorf("rayworker printed the password for %q:\n%s", dsn, out)
			}
		}
	}
}
