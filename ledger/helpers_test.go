package ledger_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// openLedger returns the domain's commands over a real event store on db.
func openLedger(t *testing.T, db *testenv.DB) *ledger.Service {
	t.Helper()
	return openLedgerOn(t, db.Pool)
}

// openLedgerOn is openLedger on a pool of its own: a second pool on the
// same database stands for a second ledgerd process.
func openLedgerOn(t *testing.T, pool *pgxpool.Pool) *ledger.Service {
	t.Helper()
	s := eventstore.OpenStore(pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	return ledger.NewService(s, ledger.Options{MasterKey: make([]byte, 32)})
}
