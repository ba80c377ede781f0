package eventstore_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// metricValue is the value of the unlabelled counter or gauge name
// registered in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatal(name + " is not registered")
	return 0
}

// freshMisses is how many batches a store re-decided after guessing a
// Fresh stream new when it was not.
func freshMisses(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	return metricValue(t, reg, "ledger_append_fresh_misses_total")
}

// A stream named Fresh is decided as empty without a read, so the store
// must catch each way the guess can be wrong for a stream another process
// wrote, and answer from what the store holds: a command that writes the
// stream (the append's stream-version key refuses the batch), and one
// that refuses without writing it (the unwritten stream is read before
// answering). Commands beside it in the batch are decided again and kept.
func TestFreshStreamThatExistsIsDecidedOnWhatTheStoreHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	other := eventstore.OpenStore(db.NewPool(t), eventstore.StoreOptions{})
	t.Cleanup(other.Close)
	errExists := eventstore.Errorf(eventstore.KindConflict, "EXISTS", "already started")
	errEmpty := eventstore.Errorf(eventstore.KindInsufficient, "EMPTY", "nothing funded")
	// start funds a new stream, and refuses one that already has events.
	start := func(stream string) eventstore.Command {
		return eventstore.Command{Tenant: scope, Fresh: []string{stream}, Decide: func(ss *eventstore.Session) error {
			st, err := ss.Load(stream)
			if err != nil {
				return err
			}
			if st.Version != 0 {
				return errExists
			}
			ss.Emit(stream, testFunded{Amount: 1})
			return nil
		}}
	}
	// spend refuses an empty stream without writing it.
	spend := func(stream string) eventstore.Command {
		return eventstore.Command{Tenant: scope, Fresh: []string{stream}, Decide: func(ss *eventstore.Session) error {
			st, err := ss.Load(stream)
			if err != nil {
				return err
			}
			if st.State.(*counter).balance == 0 {
				return errEmpty
			}
			ss.Emit(stream, testSpent{Amount: 1})
			return nil
		}}
	}
	version := func(stream string) int64 {
		var v int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1`, stream).Scan(&v))
		return v
	}

	for _, c := range []struct {
		name        string
		cmd         func(stream string) eventstore.Command
		wantErr     error // the command's outcome, decided on the funded stream
		wantVersion int64
	}{
		{name: "written", cmd: start, wantErr: errExists, wantVersion: 1},
		{name: "unwritten", cmd: spend, wantErr: nil, wantVersion: 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			stream := "testcounter-" + c.name
			_, err := other.Append(ctx, scope, events.Metadata{}, stream, 0, testFunded{Amount: 5})
			require.NoError(t, err)
			reg := prometheus.NewRegistry()
			s := eventstore.OpenStore(db.NewPool(t), eventstore.StoreOptions{Registerer: reg})
			t.Cleanup(s.Close)
			outs, err := s.ExecuteAll(ctx, []eventstore.Command{start(stream + "-beside"), c.cmd(stream)})
			require.NoError(t, err)
			require.NoError(t, outs[0].Err)
			if c.wantErr != nil {
				require.ErrorIs(t, outs[1].Err, c.wantErr)
			} else {
				require.NoError(t, outs[1].Err, "decided on the funded stream, not on the guess")
			}
			require.Equal(t, float64(1), freshMisses(t, reg), "the guess was made, and caught")
			require.Equal(t, c.wantVersion, version(stream))
			require.Equal(t, int64(1), version(stream+"-beside"))
		})
	}

	t.Run("guessing stays off after a miss", func(t *testing.T) {
		for _, stream := range []string{"testcounter-off-1", "testcounter-off-2"} {
			_, err := other.Append(ctx, scope, events.Metadata{}, stream, 0, testFunded{Amount: 5})
			require.NoError(t, err)
		}
		reg := prometheus.NewRegistry()
		s := eventstore.OpenStore(db.NewPool(t), eventstore.StoreOptions{Registerer: reg})
		t.Cleanup(s.Close)
		for _, stream := range []string{"testcounter-off-1", "testcounter-off-2"} {
			_, err := s.Execute(ctx, start(stream))
			require.ErrorIs(t, err, errExists)
		}
		require.Equal(t, float64(1), freshMisses(t, reg), "the second stream was read, not guessed")
	})

	t.Run("a retry after another process appended reads", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s := eventstore.OpenStore(db.NewPool(t), eventstore.StoreOptions{Registerer: reg})
		t.Cleanup(s.Close)
		_, err := s.Append(ctx, scope, events.Metadata{}, "testcounter-retry-warm", 0, testFunded{Amount: 1})
		require.NoError(t, err) // s now knows the head
		_, err = other.Append(ctx, scope, events.Metadata{}, "testcounter-retry", 0, testFunded{Amount: 5})
		require.NoError(t, err)
		_, err = s.Execute(ctx, start("testcounter-retry"))
		require.ErrorIs(t, err, errExists)
		require.Equal(t, float64(1), metricValue(t, reg, "ledger_append_redecisions_total"))
		require.Equal(t, float64(0), freshMisses(t, reg), "the head moved: the retry read the stream instead of guessing")
	})

	t.Run("new", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s := eventstore.OpenStore(db.NewPool(t), eventstore.StoreOptions{Registerer: reg})
		t.Cleanup(s.Close)
		_, err := s.Execute(ctx, spend("testcounter-never"))
		require.ErrorIs(t, err, errEmpty)
		_, err = s.Execute(ctx, start("testcounter-new"))
		require.NoError(t, err)
		require.Equal(t, float64(0), freshMisses(t, reg), "a right guess costs no second round")
		require.Equal(t, int64(0), version("testcounter-never"))
		require.Equal(t, int64(1), version("testcounter-new"))
	})
}
