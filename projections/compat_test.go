package projections

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/infra/bus"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// The relay and projector use only JetStream features an older server
// has (the machines' Debian nats-server is 2.9). With TEST_NATS_URL set
// (make test sets it when a server listens on 4222) this runs against that
// server, on a stream of its own; otherwise against an embedded one.
func TestRelayAndProjectorOnTheConfiguredNATSServer(t *testing.T) {
	t.Parallel()
	url := os.Getenv("TEST_NATS_URL")
	if url == "" {
		url = testenv.NewNATS(t).URL()
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	require.NoError(t, err, "TEST_NATS_URL=%s is not reachable", url)
	t.Cleanup(nc.Close)

	suffix := testenvSuffix()
	cfg := bus.Config{Stream: "LEDGER_TEST_" + suffix, SubjectPrefix: "ledgertest." + suffix, DuplicateWindow: time.Minute}
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), cfg.Stream) })

	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	relay, err := eventstore.NewRelay(db.Pool, nc, eventstore.RelayOptions{Bus: cfg, Poll: 20 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	p := &tallyProjection{}
	// A long idle interval: the projector must get its events through
	// JetStream, not by falling back to PostgreSQL.
	r, err := NewRunner(db.Pool, nc, RunnerOptions{Bus: cfg, Idle: time.Hour}, p)
	require.NoError(t, err)
	runRunner(t, r)

	appendTallies(t, s, 0, 300)
	waitHead(t, db, "tally")
	require.Equal(t, expected(t, db.Pool), readTallies(t, db.Pool))

	st, err := js.Stream(context.Background(), cfg.Stream)
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	last, err := st.GetMsg(context.Background(), info.State.LastSeq)
	require.NoError(t, err)
	require.Equal(t, "300", last.Header.Get(bus.HeaderPosition), "the stream ends with the last event")
}

func testenvSuffix() string {
	return fmt.Sprintf("%d", time.Now().UnixNano())
}
