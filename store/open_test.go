package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

func TestOpenErrorsAreOneLineWithoutSecrets(t *testing.T) {
	t.Parallel()
	dead := storetest.FreeAddr(t)
	cases := []struct {
		name, dsn, want string
	}{
		{"malformed URL", "postgres://bob:s3cr3t@host:notaport/db", "invalid database URL"},
		{"bad parameter", "postgres://bob:s3cr3t@h/db?sslmode=bogus", "invalid database URL postgres://bob:xxxxx@h/db?sslmode=bogus: failed to configure TLS (sslmode is invalid)"},
		{"wrong scheme", "mysql://bob:s3cr3t@h/db", "scheme \"mysql\" is not postgres://"},
		{"not a DSN", "definitely not a dsn", "invalid database URL"},
		{"unreachable server", "postgres://bob:s3cr3t@" + dead + "/db?connect_timeout=2", "cannot connect to database " + dead + "/db (user bob): connection refused"},
		{"key=value form", "host=127.0.0.1 port=" + strings.Split(dead, ":")[1] + " user=bob password=s3cr3t dbname=db connect_timeout=2", "connection refused"},
		// an unescaped '@' in the password: pgx takes "pa" for the password and the rest for the host
		{"@ in the password", "postgres://bob:pa@s3cr3t@" + dead + "/db", "invalid database URL postgres://bob:xxxxx@" + dead + "/db: the user name or password holds an '@': write it as %40"},
		{"@ twice in the password", "postgres://bob:s3cr3t@x@s3cr3t@" + dead + "/db", "write it as %40"},
		{"quoted key=value password", "host=127.0.0.1 port=" + strings.Split(dead, ":")[1] + " user=bob password = 'x s3cr3t \\' y' dbname=db connect_timeout=2", "connection refused"},
		{"password parameter", "postgres://bob@" + dead + "/db?password=s3cr3t&connect_timeout=2", "connection refused"},
		{"unterminated quote", "host=h password='s3cr3t", "invalid database URL"},
		{"escaped @ in the password", "postgres://bob:s3cr3t%40x@" + dead + "/db?connect_timeout=2", "connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			pool, err := store.Open(ctx, tc.dsn)
			if err == nil {
				pool.Close()
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "pa@") {
				t.Fatalf("password leaked: %s", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("multi-line error: %q", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not say %q", msg, tc.want)
			}
		})
	}
}

func TestOpenWrongPassword(t *testing.T) {
	t.Parallel()
	sc := storetest.EmptySchema(t)
	ctx := t.Context()
	role := "r_" + sc.Name
	if _, err := sc.Pool.Exec(ctx, `CREATE ROLE `+role+` LOGIN PASSWORD 'right-pw'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sc.Pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) })
	// the throwaway server trusts local connections, so test the redaction on a DSN whose
	// password appears in the reason: the database name echoes it back.
	dsn := strings.Replace(storetest.DSN(t), "postgres@", role+":hunter2@", 1)
	dsn = strings.Replace(dsn, "/postgres?", "/nodb_hunter2?", 1)
	_, err := store.Open(ctx, dsn)
	if err == nil {
		t.Fatal("connected to a missing database")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("password leaked: %v", err)
	}
	if !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("reason missing: %v", err)
	}
}

// TestOpenHidesPGPASSWORD: a password from the environment never appears either, even when
// the server echoes it back (here in a database name).
func TestOpenHidesPGPASSWORD(t *testing.T) {
	t.Setenv("PGPASSWORD", "envS3cr3t")
	dsn := strings.Replace(storetest.DSN(t), "/postgres?", "/nodb_envS3cr3t?", 1)
	_, err := store.Open(t.Context(), dsn)
	if err == nil || strings.Contains(err.Error(), "envS3cr3t") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open: %v", err)
	}
}

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"postgres://u:pa@ssWORD@h/db":                 "postgres://u:xxxxx@h/db",
		"postgres://u:pa/ss@h/db?sslmode=disable":     "postgres://u:xxxxx@h/db?sslmode=disable",
		"postgres://h/db?sslmode=disable&password=pw": "postgres://h/db?sslmode=disable&password=xxxxx",
		"postgres://h:bad/db?password=p&w&x=1":        "postgres://h:bad/db?password=xxxxx",
		"postgres://u:12#frag@h/db":                   "postgres://u:xxxxx@h/db",
		"postgres://u:a\nb@h/db":                      "postgres://u:xxxxx@h/db",
		"host=h password = 'p w\\'x' user=u":          "host=h password=xxxxx user=u",
		"host=h password='unterminated":               "host=h password=xxxxx",
		"host=h password":                             "host=h password=xxxxx",
		"postgres://u:pw@h/db":                        "postgres://u:xxxxx@h/db",
		"postgres://u@h/db":                           "postgres://u@h/db",
		"postgres://u:pw@h:badport/db":                "postgres://u:xxxxx@h:badport/db",
		"host=h user=u password=pw dbname=d":          "host=h user=u password=xxxxx dbname=d",
		"host=h user=u PASSWORD='pw' dbname=d":        "host=h user=u password=xxxxx dbname=d",
		// sslpassword, the client key's passphrase, is a secret too
		"postgres://u@h/db?sslpassword=S3CRET&sslmode=verify-full": "postgres://u@h/db?sslpassword=xxxxx",
		"host=h sslpassword=S3CRET sslkey=/k user=u":               "host=h sslpassword=xxxxx sslkey=/k user=u",
	}
	for in, want := range cases {
		if got := store.RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
