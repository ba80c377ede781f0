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
