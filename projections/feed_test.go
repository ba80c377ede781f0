package projections

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
)

// gatedTally is the tally projection whose first Apply waits for the gate:
// a projection stuck in a slow transaction while the feed keeps going.
type gatedTally struct {
	*tallyProjection
	gate chan struct{}
	once sync.Once
}

func (g *gatedTally) Apply(ctx context.Context, tx pgx.Tx, e events.Event) error {
	g.once.Do(func() { <-g.gate })
	return g.tallyProjection.Apply(ctx, tx, e)
}

// The feed never waits for a busy projection: what does not fit in its
// buffer is skipped (and counted), and the projection reads those events
// from PostgreSQL, so each is still applied exactly once.
func TestFeedSkipsABusyProjectionWhichCatchesUpFromPostgreSQL(t *testing.T) {
	t.Parallel()
	db, n, s := relayedStore(t)
	p := &gatedTally{tallyProjection: &tallyProjection{}, gate: make(chan struct{})}
	r, err := NewRunner(db.Pool, n.Connect(t), RunnerOptions{Idle: 50 * time.Millisecond, feedBuffer: 1}, p)
	require.NoError(t, err)
	runRunner(t, r)

	// Events keep coming while the projection is stuck in its first
	// transaction, until the feed has had to skip it.
	next := 0
	require.Eventually(t, func() bool {
		appendTallies(t, s, next, 8)
		next += 8
		return testutil.ToFloat64(r.skipped.WithLabelValues("tally")) > 0
	}, 30*time.Second, 20*time.Millisecond, "the feed never skipped the busy projection")
	close(p.gate)

	waitHead(t, db, "tally")
	require.Equal(t, expected(t, db.Pool), readTallies(t, db.Pool))
	require.Equal(t, int64(next), p.effects.Load(), "each event applied exactly once")
}

// A process leads projections independently, and they share its feed: a
// projection that stops (here: the gated one, stuck) holds up neither the
// feed nor the others.
func TestProjectionsShareTheFeedWithoutWaitingForEachOther(t *testing.T) {
	t.Parallel()
	db, n, s := relayedStore(t)
	stuck := &gatedTally{tallyProjection: &tallyProjection{}, gate: make(chan struct{})}
	other := &renamedTally{tallyProjection: &tallyProjection{}}
	r, err := NewRunner(db.Pool, n.Connect(t), RunnerOptions{Idle: 200 * time.Millisecond, feedBuffer: 2}, stuck, other)
	require.NoError(t, err)
	runRunner(t, r)

	appendTallies(t, s, 0, 8) // the stuck one takes these and blocks
	for i := 8; i < 200; i += 8 {
		appendTallies(t, s, i, 8)
	}
	waitHead(t, db, "tally_other")
	require.Equal(t, int64(200), other.effects.Load(), "the other projection applied everything once")
	close(stuck.gate)
	waitHead(t, db, "tally")
	require.Equal(t, int64(200), stuck.effects.Load())
}

// renamedTally is the tally projection under another name and schema.
type renamedTally struct{ *tallyProjection }

func (*renamedTally) Name() string { return "tally_other" }
