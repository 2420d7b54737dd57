// Package benchdb gives a benchmark program a fresh, migrated schema of its database, dropped
// when the run ends: what bench/executors, bench/syncbench and bench/rayrunner each need.
package benchdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/migrations"
	"github.com/rayctl/rayctl/store"
)

// Schema is a fresh schema bench_XXXXXXXX with django-ray's tables.
type Schema struct {
	// DSN is the database URL with search_path set to the schema: for a worker the benchmark
	// starts.
	DSN string
	// Pool is connected to the schema; Store is the store over it.
	Pool  *store.Pool
	Store *store.Store

	admin *store.Pool
	name  string
}

// Open creates a schema in the database at dsn (a postgres:// URL), migrates it and connects
// Pool to it (configure as store.Open's). Close drops it.
func Open(ctx context.Context, dsn string, configure ...func(*pgxpool.Config)) (*Schema, error) {
	admin, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &Schema{admin: admin, name: "bench_" + hex.EncodeToString(b[:])}
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+s.name); err != nil {
		admin.Close()
		return nil, err
	}
	if s.DSN, err = withSearchPath(dsn, s.name); err == nil {
		s.Pool, err = store.Open(ctx, s.DSN, configure...)
	}
	if err == nil {
		_, err = migrations.Up(ctx, s.Pool, migrations.Options{})
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Store = store.New(s.Pool)
	return s, nil
}

// Close disconnects and drops the schema.
func (s *Schema) Close() {
	if s.Pool != nil {
		s.Pool.Close()
	}
	_, _ = s.admin.Exec(context.Background(), "DROP SCHEMA "+s.name+" CASCADE")
	s.admin.Close()
}

// withSearchPath points a postgres:// URL at one schema (pgx passes the parameter on).
func withSearchPath(dsn, schema string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("DATABASE_URL must be a postgres:// URL for the benchmark")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
