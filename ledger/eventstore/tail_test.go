package eventstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
)

func positions(evs []events.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Position
	}
	return out
}

func run(from, to int64) []events.Event {
	var evs []events.Event
	for p := from; p <= to; p++ {
		evs = append(evs, events.Event{Position: p})
	}
	return evs
}

// The tail answers only with a gap-free run that starts right after the
// position asked for; where it cannot, the relay reads PostgreSQL.
func TestTailAnswersOnlyContiguousRuns(t *testing.T) {
	t.Parallel()
	tl := &Tail{max: 10}
	require.Nil(t, tl.After(context.Background(), 0, 5), "empty")
	tl.settle(run(1, 3))
	tl.settle(run(7, 9)) // 4..6 were another process's
	require.Equal(t, []int64{1, 2, 3}, positions(tl.After(context.Background(), 0, 100)), "stops at the gap")
	require.Equal(t, []int64{2, 3}, positions(tl.After(context.Background(), 1, 100)))
	require.Nil(t, tl.After(context.Background(), 3, 100), "4 is not here")
	require.Equal(t, []int64{7, 8}, positions(tl.After(context.Background(), 6, 2)), "limit")
	require.Nil(t, tl.After(context.Background(), 9, 100), "nothing after the last")
	require.Equal(t, int64(9), tl.Last())

	tl.settle(run(10, 15)) // 12 events: the oldest two go
	require.Nil(t, tl.After(context.Background(), 0, 100), "position 1 was evicted")
	require.Equal(t, []int64{3}, positions(tl.After(context.Background(), 2, 100)))
	require.Equal(t, []int64{7, 8, 9, 10, 11, 12, 13, 14, 15}, positions(tl.After(context.Background(), 6, 100)))

	tl.settle(run(5, 6)) // the head went back (a restored database)
	require.Nil(t, tl.After(context.Background(), 6, 100))
	require.Equal(t, []int64{5, 6}, positions(tl.After(context.Background(), 4, 100)))

	var none *Tail
	none.settle(run(1, 2))
	require.Nil(t, none.After(context.Background(), 0, 10), "a relay without a tail reads PostgreSQL")
}

// A relay woken before the committer recorded its batch waits for the
// append to settle rather than reading the batch back from PostgreSQL; a
// failed append sends it to PostgreSQL.
func TestTailWaitsForAPendingAppend(t *testing.T) {
	t.Parallel()
	tl := NewTail()
	tl.settle(run(1, 3))
	tl.stage(4)
	got := make(chan []events.Event)
	go func() { got <- tl.After(context.Background(), 3, 100) }()
	select {
	case evs := <-got:
		t.Fatalf("answered %v before the append settled", positions(evs))
	case <-time.After(20 * time.Millisecond):
	}
	tl.settle(run(4, 5))
	require.Equal(t, []int64{4, 5}, positions(<-got))

	tl.stage(6)
	go func() { got <- tl.After(context.Background(), 5, 100) }()
	tl.settle(nil)
	require.Nil(t, <-got)
	require.Equal(t, []int64{5}, positions(tl.After(context.Background(), 4, 100)), "nothing pending: no wait")
}

// After a reset (the relay re-syncing, a head found behind) the tail
// answers nothing it held before: only what the database has may go out.
func TestTailResetForgetsEverything(t *testing.T) {
	t.Parallel()
	tl := NewTail()
	tl.settle(run(1, 10))
	tl.reset()
	require.Nil(t, tl.After(context.Background(), 0, 100))
	require.Nil(t, tl.After(context.Background(), 5, 100))
	tl.settle(run(11, 12))
	require.Equal(t, []int64{11, 12}, positions(tl.After(context.Background(), 10, 100)))
}
