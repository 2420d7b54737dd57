package storetest

import (
	"net"
	"strings"
	"testing"
)

// SecretDSNs returns a connection string in each form pgx reads a password from (in the URL's
// user info, one holding an '@'; as a URL parameter; in a key=value string; from PGPASSWORD,
// which it sets for the test), all for a local port nothing listens on, so connecting fails.
// LeaksSecret tells whether a program's output shows any of those passwords.
func SecretDSNs(t testing.TB) []string {
	t.Helper()
	dead := FreeAddr(t)
	port := strings.Split(dead, ":")[1]
	t.Setenv("PGPASSWORD", "envS3cr3tPW") // pgx reads it from the process environment
	return []string{
		"postgres://u:pa@ssS3cr3tPW@" + dead + "/db",
		"postgres://u:S3cr3tPW@" + dead + "/db?connect_timeout=2",
		"postgres://u@" + dead + "/db?password=S3cr3tPW&connect_timeout=2",
		"host=127.0.0.1 port=" + port + " user=u password='a S3cr3tPW b' dbname=db connect_timeout=2",
		"host=127.0.0.1 port=" + port + " user=u dbname=envS3cr3tPW connect_timeout=2", // PGPASSWORD, echoed in the db name
	}
}

// FreeAddr returns a local host:port that nothing listens on (for a moment): a server that
// is down, or an address to serve on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// LeaksSecret reports whether out shows a password of SecretDSNs, or a part of one.
func LeaksSecret(out string) bool {
	return strings.Contains(out, "S3cr3tPW") || strings.Contains(out, "pa@ss")
}
