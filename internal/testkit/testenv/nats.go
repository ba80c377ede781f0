package testenv

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/infra/natsembed"
)

// NATS is a real JetStream server embedded in the test process, owned by
// one test. Stop and Start simulate a broker outage on the same port and
// storage.
type NATS struct {
	t    testing.TB
	dir  string
	port int
	srv  *natsembed.Server
}

// NewNATS starts a JetStream server for t on a free port.
func NewNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, dir: t.TempDir(), port: -1}
	n.Start()
	n.port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() {
		if n.srv != nil {
			n.srv.Stop()
		}
	})
	return n
}

// URL is the server's client URL (stable across Stop/Start).
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// Start (re)starts the server on its port with its storage.
func (n *NATS) Start() {
	n.t.Helper()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: n.dir, Port: n.port})
	require.NoError(n.t, err)
	n.srv = srv
}

// Stop shuts the server down, as a broker outage would.
func (n *NATS) Stop() {
	n.srv.Stop()
	n.srv = nil
}

// Connect returns a client that reconnects forever, closed when t ends.
func (n *NATS) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}
