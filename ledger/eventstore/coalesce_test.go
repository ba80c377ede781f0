package eventstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Only emits that ask for it merge: a payload that could coalesce but was
// emitted plainly (Append, with its expected version) keeps its own event
// and version, even beside another of its kind in the same group commit.
func TestOnlyCoalescingEmitsMerge(t *testing.T) {
	t.Parallel()
	debit := func(id string, amount int64) events.PoolDebited {
		return events.PoolDebited{PoolID: "p1", ActionIDs: []string{id}, Amount: amount}
	}
	cmd := func(coalescing bool, id string, amount int64) eventstore.Command {
		return eventstore.Command{Tenant: scope, Decide: func(s *eventstore.Session) error {
			if coalescing {
				s.EmitCoalescing("pool-p1", debit(id, amount))
			} else {
				s.Emit("pool-p1", debit(id, amount))
			}
			return nil
		}}
	}
	m := eventstore.NewMemory(nil)
	out, err := m.ExecuteAll(context.Background(), []eventstore.Command{cmd(true, "a", 1), cmd(false, "b", 2), cmd(true, "c", 3), cmd(true, "d", 4)})
	require.NoError(t, err)
	evs := m.Stream("pool-p1")
	require.Len(t, evs, 3, "a alone (b was plain), b alone, c+d merged")
	var amounts []int64
	for i, e := range evs {
		require.Equal(t, int64(i+1), e.StreamVersion)
		pl, err := events.Decode(e)
		require.NoError(t, err)
		amounts = append(amounts, pl.(events.PoolDebited).Amount)
	}
	require.Equal(t, []int64{1, 2, 7}, amounts)
	require.Equal(t, out[2].Result.Position, out[3].Result.Position, "c is done once the merged event is")
	require.Equal(t, []string{"c", "d"}, mustDebit(t, out[2].Result.Events[0]).ActionIDs)
}

func mustDebit(t *testing.T, e events.Event) events.PoolDebited {
	t.Helper()
	pl, err := events.Decode(e)
	require.NoError(t, err)
	return pl.(events.PoolDebited)
}

// BenchmarkDecideHotPool decides one full group commit on a hot pool:
// 1,000 commands, each with an event of its own and a debit of the same
// pool, which all merge into one (the committer's serial path, without
// the database).
func BenchmarkDecideHotPool(b *testing.B) {
	cmds := make([]eventstore.Command, events.MaxDebitActions)
	for i := range cmds {
		id := fmt.Sprint("act_", i)
		cmds[i] = eventstore.Command{Tenant: scope, Decide: func(s *eventstore.Session) error {
			s.Emit("probe-"+id, events.EndUserCreated{UserID: id, ExternalID: id})
			s.EmitCoalescing("pool-p1", events.PoolDebited{PoolID: "p1", ActionIDs: []string{id}, Amount: 1})
			return nil
		}}
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m := eventstore.NewMemory(nil)
		b.StartTimer()
		out, err := m.ExecuteAll(context.Background(), cmds)
		if err != nil || out[0].Err != nil {
			b.Fatal(err, out[0].Err)
		}
	}
}
