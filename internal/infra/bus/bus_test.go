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

// A stream can take a publish when it has a leader and a quorum of its
// replicas is current: the leader and replicas/2 current, online
// followers. One node down leaves a quorum; a follower still catching up
// after a raise does not count.
func TestQuorumCurrent(t *testing.T) {
	t.Parallel()
	info := func(replicas int, leader string, followers ...*jetstream.PeerInfo) *jetstream.StreamInfo {
		return &jetstream.StreamInfo{Config: jetstream.StreamConfig{Name: "LEDGER", Replicas: replicas},
			Cluster: &jetstream.ClusterInfo{Name: "c", Leader: leader, Replicas: followers}}
	}
	current := &jetstream.PeerInfo{Name: "n2", Current: true}
	behind := &jetstream.PeerInfo{Name: "n3"}
	down := &jetstream.PeerInfo{Name: "n3", Current: true, Offline: true}

	require.False(t, bus.QuorumCurrent(nil))
	require.False(t, bus.QuorumCurrent(&jetstream.StreamInfo{Config: jetstream.StreamConfig{Replicas: 3}}), "no cluster information")
	require.False(t, bus.QuorumCurrent(info(3, "", current, current)), "no leader")
	require.True(t, bus.QuorumCurrent(info(1, "n1")))
	require.True(t, bus.QuorumCurrent(info(3, "n1", current, behind)))
	require.True(t, bus.QuorumCurrent(info(3, "n1", current, down)), "one node down keeps a quorum")
	require.False(t, bus.QuorumCurrent(info(3, "n1", behind, behind)), "new replicas still catching up")
	require.False(t, bus.QuorumCurrent(info(3, "n1", down, behind)))
	require.False(t, bus.QuorumCurrent(info(5, "n1", current, behind, behind, behind)))
	require.True(t, bus.QuorumCurrent(info(5, "n1", current, current, behind, down)))
}
