package main

import (
	"context"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/store"
)

// runCtx is what a subcommand's plain function gets: context, flags, writers, database.
type runCtx struct {
	ctx    context.Context
	o      opts
	env    env
	stdout io.Writer
	stderr io.Writer
	pool   *pgxpool.Pool
	store  *store.Store
}

// withDB resolves the global flags, connects, and runs f.
func (e env) withDB(c *cli.Context, f func(*runCtx) error) error {
	o, err := e.opts(c)
	if err != nil {
		return err
	}
	pool, err := e.open(c.Context, o)
	if err != nil {
		return err
	}
	defer pool.Close()
	return f(&runCtx{ctx: c.Context, o: o, env: e, stdout: e.stdout, stderr: e.stderr, pool: pool, store: store.New(pool)})
}
