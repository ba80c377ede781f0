package bus_test

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
	"github.com/sirgiving/ledger/internal/testkit/natscluster"
)

func TestMain(m *testing.M) {
	code := m.Run()
	natscluster.RemoveBinary()
	os.Exit(code)
}

// Raising a stream's replicas on a real three-node cluster returns only
// once a quorum of the new replicas has caught up, so the relay's next
// publish (which expects the stream's last sequence, as the relay's always
// do) is acknowledged at once. Without the wait, nats-server dropped that
// publish without an answer in every one of 40 tries on loopback. A retried
// raise (the first refused, or applied but not answered) waits the same
// way, though the stream no longer looks drifted.
func TestEnsureStreamRaisedReplicasTakeTheNextPublish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nodes := natscluster.Start(t)
	js, err := jetstream.New(nodes.Connect(t))
	require.NoError(t, err)
	for i := range 3 {
		c := bus.Config{Stream: fmt.Sprintf("RAISE%d", i), SubjectPrefix: fmt.Sprintf("raise%d", i), Replicas: 1}
		st, err := bus.EnsureStream(ctx, js, c)
		require.NoError(t, err)
		require.Equal(t, 1, st.CachedInfo().Config.Replicas)
		const before = 5
		for seq := range uint64(before) {
			_, err := js.PublishMsg(ctx, &nats.Msg{Subject: c.SubjectPrefix + ".x", Data: []byte("before")}, jetstream.WithExpectLastSequence(seq))
			require.NoError(t, err)
		}

		// A cluster that has just formed may refuse the raise until every
		// node has reported in (no peers for placement); the relay retries
		// every round, and so does this.
		c.Replicas = 3
		deadline := time.Now().Add(30 * time.Second)
		for st, err = bus.EnsureStream(ctx, js, c); err != nil && time.Now().Before(deadline); st, err = bus.EnsureStream(ctx, js, c) {
			t.Logf("raise refused, retrying: %v", err)
			time.Sleep(200 * time.Millisecond)
		}
		require.NoError(t, err)
		info, err := st.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, info.Config.Replicas)
		require.NotEmpty(t, info.Cluster.Leader)
		require.Len(t, info.Cluster.Replicas, 2)

		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := js.PublishMsg(pctx, &nats.Msg{Subject: c.SubjectPrefix + ".x", Data: []byte("after")}, jetstream.WithExpectLastSequence(before))
		cancel()
		require.NoError(t, err, "the first publish after the raise, stream %s", c.Stream)
		require.Equal(t, uint64(before+1), ack.Sequence)
	}
}
