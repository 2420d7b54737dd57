package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unreachable reports whether err means the database could not be reached or did not answer
// (a refused or broken connection, a timeout, a server shutting down or starting up, no free
// connection slot), as opposed to an answer: an SQL error about the statement or its data,
// ErrNotFound, ErrInvalid. A worker whose calls fail this way cannot heartbeat, and cannot
// tell whether other workers could.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrNoSchema) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch code := pgErr.Code; {
		case len(code) == 5 && code[:2] == "08": // connection exception
			return true
		case code == "57P01", code == "57P02", code == "57P03", code == "53300": // admin/crash shutdown, starting up, too many connections
			return true
		}
		return false
	}
	return true // no answer at all: a network error, a timeout, a closed pool
}
