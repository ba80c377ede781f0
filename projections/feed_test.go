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
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// gatedTally is the tally projection whose first Apply waits for the gate:
// a projection stuck in a slow transaction while the feed keeps going.
type gatedTally struct {
	*tallyProjection
	gate     chan struct{}
	once     sync.Once
	openOnce sync.Once
}

// newGatedTally returns a gated tally whose gate is opened, at the latest,
// when the test ends, so a failing test never leaves the runner blocked.
func newGatedTally(t *testing.T) *gatedTally {
	g := &gatedTally{tallyProjection: &tallyProjection{}, gate: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gatedTally) open() { g.openOnce.Do(func() { close(g.gate) }) }

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
	p := newGatedTally(t)
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
	p.open()

	waitHead(t, db, "tally")
	require.Equal(t, expected(t, db.Pool), readTallies(t, db.Pool))
	require.Equal(t, int64(next), effects(t, db, "tally"), "each event applied exactly once")
}

// A process leads projections independently, and they share its feed: a
// projection that stops (here: the gated one, stuck) holds up neither the
// feed nor the others.
func TestProjectionsShareTheFeedWithoutWaitingForEachOther(t *testing.T) {
	t.Parallel()
	db, n, s := relayedStore(t)
	stuck := newGatedTally(t)
	other := &renamedTally{tallyProjection: &tallyProjection{}}
	// An hour's idle: nothing reaches a projection but the feed (and the
	// catch-up when it takes the lead, which finds nothing here).
	r, err := NewRunner(db.Pool, n.Connect(t), RunnerOptions{Idle: time.Hour, feedBuffer: 2}, stuck, other)
	require.NoError(t, err)
	runRunner(t, r)

	// The feed's consumer starts asynchronously and sees new messages
	// only, and a projection that is busy when a message comes is skipped
	// (buffers of two here); with an hour's idle only a message the feed
	// hands over moves it. So: append rounds until one reaches the other
	// projection's checkpoint.
	next := 0
	deliveredRound := func(names ...string) bool {
		for tries := 0; tries < 50; tries++ {
			appendTallies(t, s, next, 8)
			next += 8
			head, err := eventstore.ReadHead(context.Background(), db.Pool)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = WaitFor(ctx, db.Pool, head, names...)
			cancel()
			if err == nil {
				return true
			}
		}
		return false
	}
	require.True(t, deliveredRound("tally_other"), "the feed never delivered")
	// The stuck projection is now blocked in its first transaction, its
	// buffer full after these rounds: the feed must keep going anyway.
	for i := 0; i < 24; i++ {
		appendTallies(t, s, next, 8)
		next += 8
	}
	require.True(t, deliveredRound("tally_other"), "the feed stopped for the other projection while one was stuck")
	require.Equal(t, int64(next), effects(t, db, "tally_other"), "the other projection applied everything once")
	// Once unblocked, the next message the feed hands it carries a hole
	// back to whatever was skipped meanwhile, filled from PostgreSQL.
	stuck.open()
	require.True(t, deliveredRound("tally", "tally_other"), "the unblocked projection never caught up")
	require.Equal(t, int64(next), effects(t, db, "tally"))
	require.Equal(t, int64(next), effects(t, db, "tally_other"))
}

// renamedTally is the tally projection under another name and schema.
type renamedTally struct{ *tallyProjection }

func (*renamedTally) Name() string { return "tally_other" }
