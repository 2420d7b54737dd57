package main

import (
	"net"
	"strings"
	"testing"
)

// TestDSNPasswordNeverPrinted: whatever form the database password takes, no rayctl command
// prints it in its connection error.
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
		"host=127.0.0.1 port=" + port + " user=u dbname=envS3cr3tPW connect_timeout=2",
	} {
		for _, args := range [][]string{{"stats"}, {"tasks", "ls", "-o", "json"}, {"doctor"}, {"--database-url", dsn, "migrate", "status"}} {
			r := rayctl(t, map[string]string{"DATABASE_URL": dsn}, "", args...)
			if r.code == 0 {
				t.Fatalf("rayctl %v worked on %q", args, dsn)
			}
			if out := r.stdout + r.stderr; strings.Contains(out, "S3cr3tPW") || strings.Contains(out, "pa@ss") {
				t.Errorf("rayctl %v printed the password for %q:\n%s", args, dsn, out)
			}
		}
	}
}
