package main_test

import (
	"os"
	"testing"

	"github.com/sirgiving/ledger/internal/testkit/natscluster"
	"github.com/sirgiving/ledger/internal/testkit/proctest"
)

// TestMain removes the binaries the tests built (ledgerd, ledgerctl,
// nats-server) once they have run.
func TestMain(m *testing.M) {
	code := m.Run()
	proctest.RemoveBinaries()
	natscluster.RemoveBinary()
	os.Exit(code)
}
