package httpapi

import (
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// errDatabaseUnavailable answers a request that needed PostgreSQL while it
// could not be reached (down, restarting, refusing connections): every
// command and every read needs it, so this is the one failure a partner
// sees when it is down (docs/operations.md). Retrying later is safe:
// nothing was written, and a command's idempotency key still guards it.
var errDatabaseUnavailable = &eventstore.Error{Kind: eventstore.KindUnavailable, Code: "DATABASE_UNAVAILABLE",
	Message: "the ledger database is unavailable; nothing was written, retry shortly"}

// databaseDown reports whether err says PostgreSQL could not be reached or
// is going away, as opposed to refusing one statement.
func databaseDown(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 08: connection exception; 57P01-57P03: admin or crash shutdown,
		// cannot connect now (starting up, recovering); 53300: too many
		// connections.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
	}
	var ne net.Error
	return errors.As(err, &ne)
}
