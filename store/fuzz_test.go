package store_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rayctl/rayctl/store"
)

// FuzzStorableText: whatever a task prints, the text stored is valid UTF-8 without NUL (what
// PostgreSQL's text accepts), storing it twice changes nothing, and text that was already
// storable is kept byte for byte.
func FuzzStorableText(f *testing.F) {
	for _, s := range []string{"", "plain", "NUL\x00", "\xed\xb2\x80", "\xed\xa0\x80\xed\xb0\x80", "\xff\xfe", "é世界🙂", `"\u0000"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := store.StorableText(s)
		if !utf8.ValidString(out) || strings.ContainsRune(out, 0) {
			t.Fatalf("%q -> %q: not storable", s, out)
		}
		if again := store.StorableText(out); again != out {
			t.Fatalf("%q -> %q -> %q: not idempotent", s, out, again)
		}
		if utf8.ValidString(s) && !strings.ContainsRune(s, 0) && out != s {
			t.Fatalf("%q was storable but became %q", s, out)
		}
	})
}

// FuzzRedactDSN: a password, whatever characters it holds, never survives RedactDSN in any
// DSN form (URL userinfo, URL parameter, key=value quoted as libpq wants it).
func FuzzRedactDSN(f *testing.F) {
	for _, s := range []string{"s3cr3t", "pa@ss", "a/b?c#d", "x y'z\\", "p&q=r", "new\nline", "%40%"} {
		f.Add(s, "db.example", uint8(0))
	}
	f.Fuzz(func(t *testing.T, pw, host string, form uint8) {
		pw = "PW" + pw + "PW" // a marker no other part of the DSN holds
		if strings.Contains(host, "PW") {
			return
		}
		var dsn string
		switch form % 3 {
		case 0:
			dsn = "postgres://user:" + pw + "@" + host + "/db?sslmode=disable"
		case 1:
			dsn = "postgres://user@" + host + "/db?sslmode=disable&password=" + pw
		default:
			q := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)
			dsn = "host='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(host) + "' user=u password='" + q + "' dbname=db"
		}
		if got := store.RedactDSN(dsn); strings.Contains(got, pw) {
			t.Fatalf("RedactDSN(%q) = %q keeps the password", dsn, got)
		}
	})
}
