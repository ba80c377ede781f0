package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/infra/bus"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
)

// EnsureStream creates the stream, leaves a matching one untouched, and on
// drift restores our settings without dropping an operator's additions.
func TestEnsureStreamUpdatesOnlyOnDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js, err := jetstream.New(testenv.NewNATS(t).Connect(t))
	require.NoError(t, err)
	c := bus.Config{Stream: "ENSURE", SubjectPrefix: "ensure.events"}

	st, err := bus.EnsureStream(ctx, js, c)
	require.NoError(t, err)
	require.Equal(t, []string{"ensure.events.>"}, st.CachedInfo().Config.Subjects)
	require.Equal(t, 10*time.Minute, st.CachedInfo().Config.Duplicates)

	// An operator adds a limit and shortens the duplicate window.
	cfg := st.CachedInfo().Config
	cfg.MaxMsgsPerSubject = 1_000_000
	cfg.Duplicates = time.Minute
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)

	st, err = bus.EnsureStream(ctx, js, c)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 10*time.Minute, info.Config.Duplicates, "our setting is restored")
	require.Equal(t, int64(1_000_000), info.Config.MaxMsgsPerSubject, "the operator's addition survives")

	// Matching settings: no update, same stream.
	again, err := bus.EnsureStream(ctx, js, c)
	require.NoError(t, err)
	require.Equal(t, info.Created, again.CachedInfo().Created)
	require.Equal(t, info.Config, again.CachedInfo().Config)
}

// ReplicaAdvice is silent off a cluster and when the stream is replicated
// as a cluster needs; otherwise it names the stream, the replicas and the
// fix. (TestClusterFailover checks it, and the relay raising a stream's
// replicas, against a real three-node cluster.)
func TestReplicaAdvice(t *testing.T) {
	t.Parallel()
	info := func(cluster string, replicas int) *jetstream.StreamInfo {
		i := &jetstream.StreamInfo{Config: jetstream.StreamConfig{Name: "LEDGER", Replicas: replicas}}
		if cluster != "" {
			i.Cluster = &jetstream.ClusterInfo{Name: cluster}
		}
		return i
	}
	require.Empty(t, bus.ReplicaAdvice(info("", 1), 1), "a single server has nothing to replicate to")
	require.Empty(t, bus.ReplicaAdvice(info("ledger", 3), 3))
	require.Empty(t, bus.ReplicaAdvice(nil, 3))

	one := bus.ReplicaAdvice(info("ledger", 1), 1)
	require.Contains(t, one, "stream LEDGER has 1 replica(s)")
	require.Contains(t, one, "NATS_REPLICAS=3")
	require.Contains(t, one, "nats stream edit LEDGER --replicas 3")

	raising := bus.ReplicaAdvice(info("ledger", 1), 3)
	require.Contains(t, raising, "the relay raises it to 3")

	low := bus.ReplicaAdvice(info("ledger", 3), 1)
	require.Contains(t, low, "set NATS_REPLICAS=3")
	require.Contains(t, low, "never lowers")
}
