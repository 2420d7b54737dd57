// Package store is all the SQL of rayctl and rayworker: the django-ray 0.2.0 task and lease
// rows, and every state transition on them.
//
// Each transition is one statement conditional on what the caller saw (state, owner, Ray job
// id, claim time) and reports whether it applied, so a late writer never overwrites a row that
// someone else moved on. Time comes from the database's now(). The package uses pgx/v5 only
// and imports no UI or CLI code.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors callers can test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrNoSchema: the django-ray tables do not exist in the database (or the search_path).
	ErrNoSchema = errors.New("the django-ray tables do not exist in this database (run `rayctl migrate up`)")
	// ErrInvalid: the caller passed a value the schema cannot hold. PostgreSQL refused it for
	// what it is (a data exception, class 22; an integrity violation, class 23; a value over
	// a program limit, class 54), so the same write will be refused again: callers treat it
	// as permanent, unlike a connection error.
	ErrInvalid = errors.New("invalid value")
)

// DBTX is what the store needs from a pool or a transaction.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Store runs the task and lease queries.
type Store struct {
	db DBTX
}

// New returns a Store over a pool (or a transaction, for tests and batched work).
func New(db DBTX) *Store { return &Store{db: db} }

// DB returns the underlying pool or transaction.
func (s *Store) DB() DBTX { return s.db }

// Now returns the database clock. Every age the tools show is measured against it.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	err := s.db.QueryRow(ctx, `SELECT now()`).Scan(&now)
	return now, translate(err)
}

// Open parses a DSN (URL or key=value; empty means the libpq PG* environment variables),
// connects and pings. Errors never contain the password.
func Open(ctx context.Context, dsn string, configure ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	if scheme, _, ok := strings.Cut(dsn, "://"); ok && scheme != "postgres" && scheme != "postgresql" {
		return nil, fmt.Errorf("invalid database URL %s: scheme %q is not postgres:// or postgresql://", RedactDSN(dsn), scheme)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL %s: %s", RedactDSN(dsn), redactErr(err, dsn))
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = firstNonEmpty(cfg.ConnConfig.RuntimeParams["application_name"], "rayctl")
	for _, f := range configure {
		f(cfg)
	}
	afterConnect := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		RegisterTypes(c.TypeMap()) // poison timestamps ('-infinity', year 20000) read, never fail
		if afterConnect != nil {
			return afterConnect(ctx, c)
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, errors.New(redact(fmt.Sprintf("database %s: %s", describe(cfg), redactErr(err, dsn)), dsn))
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, errors.New(redact(fmt.Sprintf("cannot connect to database %s: %s", describe(cfg), ConnErrorReason(err, dsn)), dsn))
	}
	return pool, nil
}

func describe(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	host := c.Host
	if strings.HasPrefix(host, "/") {
		host = "socket " + host
	} else {
		host = net.JoinHostPort(host, fmt.Sprint(c.Port))
	}
	return fmt.Sprintf("%s/%s (user %s)", host, c.Database, c.User)
}

// ConnErrorReason turns a pgx connection error into one short line without pgx internals
// or secrets.
func ConnErrorReason(err error, dsn string) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return redact(pgErr.Message, dsn)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		err = ce.Unwrap()
	}
	var sysErr *os.SyscallError
	if errors.As(err, &sysErr) {
		return redact(sysErr.Err.Error(), dsn)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return redact(opErr.Err.Error(), dsn)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	msg := err.Error()
	// pgconn prefixes "failed to connect to `user=... database=...`:"; keep the reason only.
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "failed to connect") {
		msg = msg[i+2:]
	}
	return redact(msg, dsn)
}

// RedactDSN returns dsn with any password replaced by "xxxxx".
func RedactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
		return dsn
	}
	if m := urlPasswordRe.FindStringSubmatchIndex(dsn); m != nil { // a URL net/url cannot parse
		return dsn[:m[2]] + "xxxxx" + dsn[m[3]:]
	}
	// key=value form
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if k, _, ok := strings.Cut(f, "="); ok && strings.EqualFold(k, "password") {
			fields[i] = "password=xxxxx"
		}
	}
	return strings.Join(fields, " ")
}

var urlPasswordRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:([^@]*)@`)

// passwordOf extracts the password from a DSN, if any.
func passwordOf(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		p, _ := u.User.Password()
		return p
	}
	if m := urlPasswordRe.FindStringSubmatch(dsn); m != nil {
		return m[1]
	}
	for _, f := range strings.Fields(dsn) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.EqualFold(k, "password") {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

func redact(msg, dsn string) string {
	if p := passwordOf(dsn); p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
		if esc := url.QueryEscape(p); esc != p {
			msg = strings.ReplaceAll(msg, esc, "xxxxx")
		}
	}
	return msg
}

func redactErr(err error, dsn string) string {
	msg := err.Error()
	// pgconn's parse errors look like: cannot parse `<dsn>`: <reason>; keep the reason.
	if i := strings.Index(msg, "`: "); i >= 0 {
		msg = msg[i+3:]
	}
	return redact(msg, dsn)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// translate maps database errors to the package's errors once, at the boundary.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "42P01": // undefined_table
			return fmt.Errorf("%w: %s", ErrNoSchema, pgErr.Message)
		case strings.HasPrefix(pgErr.Code, "22"), strings.HasPrefix(pgErr.Code, "23"), strings.HasPrefix(pgErr.Code, "54"):
			// data exception (too long, out of range, bad text, invalid UTF-8 or NUL: 22021),
			// integrity violation (check, not null), program limit exceeded
			return fmt.Errorf("%w: %s", ErrInvalid, pgErr.Message)
		}
	}
	return err
}
