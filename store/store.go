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
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/store/internal/rawdb"
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

// Raw returns the pool or transaction under s. Only store/storetest can call it (nothing
// else can name a rawdb.Key): tests stage rows with it that no transition writes. Everything
// else reads and writes through the store's methods, and runs several in one transaction with
// InTx.
func (s *Store) Raw(rawdb.Key) DBTX { return s.db }

// InTx runs fn in one transaction: the Store fn gets makes its reads and writes in it, and
// they commit together when fn returns nil; an error from fn (returned as it is), a panic or
// the end of ctx rolls them back. On a Store that is already in a transaction, InTx is a
// savepoint.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	var fnErr error
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		fnErr = fn(New(tx))
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	return translate(err)
}

// Now returns the database clock. Every age the tools show is measured against it.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	err := s.db.QueryRow(ctx, `SELECT now()`).Scan(&now)
	return now, translate(err)
}

// ServerInfo is what the doctor reports about the database server.
type ServerInfo struct {
	Version string    // server_version
	Clock   time.Time // clock_timestamp(): the server's clock now, not the transaction's start
	// Tables: both django-ray tables exist in the search path (created by rayctl or Django).
	Tables bool
}

// Server reads the server's version, its clock and whether the django-ray tables exist.
func (s *Store) Server(ctx context.Context) (ServerInfo, error) {
	var i ServerInfo
	err := s.db.QueryRow(ctx, `SELECT current_setting('server_version'), clock_timestamp(),
		to_regclass('django_ray_raytaskexecution') IS NOT NULL AND to_regclass('django_ray_taskworkerlease') IS NOT NULL`).
		Scan(&i.Version, &i.Clock, &i.Tables)
	return i, translate(err)
}

// Pool is the connection pool Open returns. Packages above store name it store.Pool, so
// store (with migrations) is the only package that imports pgx.
type Pool = pgxpool.Pool

// Open parses a DSN (URL or key=value; empty means the libpq PG* environment variables),
// connects and pings. Errors never contain the password, in any form the DSN or PGPASSWORD
// gives it (see RedactDSN). A URL whose user name or password holds an unescaped '@' is
// refused: pgx would take the rest of the password for the host name.
func Open(ctx context.Context, dsn string, configure ...func(*pgxpool.Config)) (*Pool, error) {
	sec := dsnSecrets(dsn)
	if scheme, _, ok := strings.Cut(dsn, "://"); ok && isURL(dsn) && scheme != "postgres" && scheme != "postgresql" {
		return nil, fmt.Errorf("invalid database URL %s: scheme %q is not postgres:// or postgresql://", RedactDSN(dsn), sec.redact(scheme))
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL %s: %s", RedactDSN(dsn), sec.redact(parseReason(err)))
	}
	sec = sec.add(cfg.ConnConfig.Password) // from the DSN, PGPASSWORD or a passfile
	hosts := []string{cfg.ConnConfig.Host}
	for _, fb := range cfg.ConnConfig.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, h := range hosts {
		if strings.Contains(h, "@") {
			return nil, fmt.Errorf("invalid database URL %s: the user name or password holds an '@': write it as %%40", RedactDSN(dsn))
		}
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
		return nil, errors.New(sec.redact(fmt.Sprintf("database %s: %s", describe(cfg), parseReason(err))))
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, errors.New(sec.redact(fmt.Sprintf("cannot connect to database %s: %s", describe(cfg), connErrorReason(err))))
	}
	return pool, nil
}

// parseReason is a pgx error without pgconn's copy of the DSN: pgconn's parse errors read
// "cannot parse `<dsn, partly redacted>`: <reason>".
func parseReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "`: "); i >= 0 {
		msg = msg[i+3:]
	}
	return msg
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
// or secrets: any password dsn holds is redacted.
func ConnErrorReason(err error, dsn string) string {
	return dsnSecrets(dsn).redact(connErrorReason(err))
}

func connErrorReason(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		err = ce.Unwrap()
	}
	var sysErr *os.SyscallError
	if errors.As(err, &sysErr) {
		return sysErr.Err.Error()
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	msg := err.Error()
	// pgconn prefixes "failed to connect to `user=... database=...`:"; keep the reason only.
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "failed to connect") {
		msg = msg[i+2:]
	}
	return parseReason(errors.New(msg))
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
