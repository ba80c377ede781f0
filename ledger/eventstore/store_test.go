package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// testNote is a payload used only by these tests.
type testNote struct {
	N    int    `json:"n"`
	Text string `json:"text,omitempty"`
}

func (testNote) EventType() string { return "test.note" }

// testSpent moves units out of a test counter stream.
type testSpent struct {
	Amount int64 `json:"amount"`
}

func (testSpent) EventType() string { return "test.spent" }

// testFunded adds units to a test counter stream.
type testFunded struct {
	Amount int64 `json:"amount"`
}

func (testFunded) EventType() string { return "test.funded" }

// counter is an aggregate whose balance must never go below zero.
type counter struct{ balance int64 }

func (c *counter) Apply(e events.Event) error {
	p, err := events.Decode(e)
	if err != nil {
		return err
	}
	switch p := p.(type) {
	case testFunded:
		c.balance += p.Amount
	case testSpent:
		c.balance -= p.Amount
	}
	return nil
}

func init() {
	events.Register[testNote](1)
	events.Register[testSpent](1)
	events.Register[testFunded](1)
	eventstore.RegisterAggregate("testcounter-", func() eventstore.Aggregate { return &counter{} })
}

var scope = eventstore.Tenant{PartnerID: "p1", Environment: "sandbox"}

func openStore(t *testing.T, db *testenv.DB) *eventstore.Store {
	t.Helper()
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	return s
}

func TestAppendAssignsGapFreePositionsAndVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openStore(t, db)

	res, err := s.Append(ctx, scope, events.Metadata{RequestID: "req_1"}, "note-a", 0, testNote{N: 1}, testNote{N: 2})
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	require.Equal(t, int64(2), res.Position)
	require.Equal(t, []int64{1, 2}, []int64{res.Events[0].StreamVersion, res.Events[1].StreamVersion})

	res, err = s.Append(ctx, scope, events.Metadata{}, "note-b", 0, testNote{N: 3})
	require.NoError(t, err)
	require.Equal(t, int64(3), res.Position)

	got, err := eventstore.ReadStream(ctx, db.Pool, "note-a")
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "p1", got[0].PartnerID)
	require.JSONEq(t, `{"requestId":"req_1"}`, string(got[0].Metadata))
	p, err := events.Decode(got[1])
	require.NoError(t, err)
	require.Equal(t, testNote{N: 2}, p)

	rep, err := eventstore.Verify(ctx, db.Pool, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Reason)
	require.Equal(t, int64(3), rep.Checked)
}

// Event ids grow with position, so the event_id index takes appends at
// its right edge instead of a random leaf per insert.
func TestAppendEventIDsGrowWithPosition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openStore(t, db)

	for i := 0; i < 5; i++ {
		_, err := s.Append(ctx, scope, events.Metadata{}, fmt.Sprintf("note-id-%d", i), 0, testNote{N: i}, testNote{N: i})
		require.NoError(t, err)
	}
	got, err := eventstore.ReadFrom(ctx, db.Pool, 0, 100)
	require.NoError(t, err)
	require.Len(t, got, 10)
	for i, e := range got {
		require.Equal(t, uuid.Version(7), e.ID.Version())
		if i > 0 {
			require.Less(t, got[i-1].ID.String(), e.ID.String(), "position %d", e.Position)
		}
	}
}

func TestAppendExpectedVersionConflictIsTypedAndIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openStore(t, db)

	_, err := s.Append(ctx, scope, events.Metadata{}, "note-x", 0, testNote{N: 1})
	require.NoError(t, err)
	_, err = s.Append(ctx, scope, events.Metadata{}, "note-x", 0, testNote{N: 2})
	require.ErrorIs(t, err, eventstore.ErrConcurrency)
	require.Equal(t, eventstore.KindConflict, eventstore.AsError(err).Kind)

	// Many callers race with the same expected version: exactly one wins,
	// the others fail alone while unrelated appends in the same group
	// commits succeed.
	var wins, conflicts atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			_, err := s.Append(ctx, scope, events.Metadata{}, "note-x", 1, testNote{N: i})
			if err == nil {
				wins.Add(1)
			} else {
				require.ErrorIs(t, err, eventstore.ErrConcurrency)
				conflicts.Add(1)
			}
		}(i)
		go func(i int) {
			defer wg.Done()
			_, err := s.Append(ctx, scope, events.Metadata{}, fmt.Sprintf("note-other-%d", i), 0, testNote{N: i})
			require.NoError(t, err)
		}(i)
	}
	wg.Wait()
	require.Equal(t, int64(1), wins.Load())
	require.Equal(t, int64(31), conflicts.Load())
	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1+1+32), head)
}

func TestDatabaseRefusesToChangeEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openStore(t, db)
	_, err := s.Append(ctx, scope, events.Metadata{}, "note-a", 0, testNote{N: 1})
	require.NoError(t, err)

	for _, stmt := range []string{
		`UPDATE events SET payload = '{"n":999}' WHERE position = 1`,
		`DELETE FROM events WHERE position = 1`,
		`TRUNCATE events`,
	} {
		_, err := db.Pool.Exec(ctx, stmt)
		require.Error(t, err, stmt)
		require.Contains(t, err.Error(), "events are immutable", stmt)
	}
	got, err := eventstore.ReadStream(ctx, db.Pool, "note-a")
	require.NoError(t, err)
	require.JSONEq(t, `{"n":1}`, string(got[0].Payload))
}

// The database refuses an append that would leave a gap in positions or a
// broken link in the hash chain, whoever calls it.
func TestDatabaseRefusesAnAppendThatBreaksTheChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openStore(t, db)
	_, err := s.Append(ctx, scope, events.Metadata{}, "note-a", 0, testNote{N: 1})
	require.NoError(t, err)
	var head int64
	var hash []byte
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT position, hash FROM event_head`).Scan(&head, &hash))
	other := make([]byte, len(hash))
	appendOne := func(positions []int64, prev [][]byte) error {
		n := len(positions)
		col := func(v any) []any {
			out := make([]any, n)
			for i := range out {
				out[i] = v
			}
			return out
		}
		ids := make([]any, n)
		hashes := make([][]byte, n)
		for i := range ids {
			ids[i] = uuid.New()
			hashes[i] = []byte{byte(i + 1)}
		}
		_, err := db.Pool.Exec(ctx, `SELECT append_events($1, $2, $3::text[], $4::bigint[], $5::uuid[], $6::text[], $7::int[], $8::text[], $9::text[],
			$10::text[], $11::text[], $12::timestamptz[], $13, $14)`,
			head, positions, col("note-b"), col(int64(1)), ids, col("test.note"), col(1), col("p1"), col("sandbox"),
			col(`{"n":2}`), col(`{}`), col(time.Now()), prev, hashes)
		return err
	}
	for name, err := range map[string]error{
		"gap":             appendOne([]int64{head + 2}, [][]byte{hash}),
		"wrong prev_hash": appendOne([]int64{head + 1}, [][]byte{other}),
		"broken link":     appendOne([]int64{head + 1, head + 2}, [][]byte{hash, other}),
	} {
		require.ErrorContains(t, err, "does not extend the hash chain", name)
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
	require.Equal(t, 1, n, "nothing was written")
}

func TestVerifyNamesTheFirstTamperedEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openStore(t, db)
	for i := 0; i < 10; i++ {
		_, err := s.Append(ctx, scope, events.Metadata{}, fmt.Sprintf("note-%d", i%3), eventstore.ExpectAny, testNote{N: i})
		require.NoError(t, err)
	}
	rep, err := eventstore.Verify(ctx, db.Pool, nil)
	require.NoError(t, err)
	require.True(t, rep.OK())

	// A superuser can switch the guard off; the hash chain still tells.
	tamper := func(sql string) {
		_, err := db.Pool.Exec(ctx, `ALTER TABLE events DISABLE TRIGGER USER`)
		require.NoError(t, err)
		_, err = db.Pool.Exec(ctx, sql)
		require.NoError(t, err)
		_, err = db.Pool.Exec(ctx, `ALTER TABLE events ENABLE TRIGGER USER`)
		require.NoError(t, err)
	}
	tamper(`UPDATE events SET payload = '{"n":1000}' WHERE position = 7`)
	rep, err = eventstore.Verify(ctx, db.Pool, nil)
	require.NoError(t, err)
	require.Equal(t, int64(7), rep.FirstBad, rep.Reason)

	tamper(`UPDATE events SET payload = '{"n":6}' WHERE position = 7`)
	rep, err = eventstore.Verify(ctx, db.Pool, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "restored content verifies again: %s", rep.Reason)

	tamper(`DELETE FROM events WHERE position = 4`)
	rep, err = eventstore.Verify(ctx, db.Pool, nil)
	require.NoError(t, err)
	require.Equal(t, int64(4), rep.FirstBad, rep.Reason)
}

// Two stores on one database behave as two ledgerd processes: the balance
// of one hot stream never goes below zero, and exactly the affordable
// number of spends succeed.
func TestHotStreamInvariantHoldsAcrossProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s1 := openStore(t, db)
	s2 := eventstore.OpenStore(db.NewPool(t), eventstore.StoreOptions{})
	t.Cleanup(s2.Close)

	const stream = "testcounter-pool"
	_, err := s1.Append(ctx, scope, events.Metadata{}, stream, 0, testFunded{Amount: 100})
	require.NoError(t, err)

	errEmpty := eventstore.Errorf(eventstore.KindInsufficient, "EMPTY", "not enough")
	spend := func(s *eventstore.Store) error {
		_, err := s.Execute(ctx, eventstore.Command{Tenant: scope, Decide: func(ss *eventstore.Session) error {
			st, err := ss.Load(stream)
			if err != nil {
				return err
			}
			if st.State.(*counter).balance < 3 {
				return errEmpty
			}
			ss.Emit(stream, testSpent{Amount: 3})
			return nil
		}})
		return err
	}
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := s1
			if i%2 == 1 {
				s = s2
			}
			if err := spend(s); err == nil {
				ok.Add(1)
			} else {
				require.ErrorIs(t, err, errEmpty)
				refused.Add(1)
			}
		}(i)
	}
	wg.Wait()
	require.Equal(t, int64(33), ok.Load()) // 33*3 = 99 <= 100
	require.Equal(t, int64(31), refused.Load())

	evs, err := eventstore.ReadStream(ctx, db.Pool, stream)
	require.NoError(t, err)
	c := &counter{}
	for i, e := range evs {
		require.Equal(t, int64(i+1), e.StreamVersion)
		require.NoError(t, c.Apply(e))
		require.GreaterOrEqual(t, c.balance, int64(0))
	}
	require.Equal(t, int64(1), c.balance)
	rep, err := eventstore.Verify(ctx, db.Pool, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Reason)
}

func TestMetadataIsStoredExactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openStore(t, db)
	meta := events.Metadata{CorrelationID: "c", CausationID: "d", Actor: "key_1", RequestID: "req_9"}
	res, err := s.Append(ctx, scope, meta, "note-m", 0, testNote{Text: "héllo ✓"})
	require.NoError(t, err)
	got, err := eventstore.ReadStream(ctx, db.Pool, "note-m")
	require.NoError(t, err)
	require.Equal(t, res.Events[0].Hash, got[0].Hash)
	require.Equal(t, res.Events[0].Payload, got[0].Payload)
	var m events.Metadata
	require.NoError(t, json.Unmarshal(got[0].Metadata, &m))
	require.Equal(t, meta, m)
}

// A command refused on one process's cached state must not stay refused
// after another process changed that state: a batch that appends nothing
// still checks that the head did not move.
func TestRefusalIsNotDecidedOnStaleStateFromAnotherProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	a := openStore(t, db)
	b := eventstore.OpenStore(db.NewPool(t), eventstore.StoreOptions{})
	t.Cleanup(b.Close)

	const stream = "testcounter-replicated"
	errEmpty := eventstore.Errorf(eventstore.KindInsufficient, "EMPTY", "nothing funded")
	requireFunded := eventstore.Command{Tenant: scope, Decide: func(ss *eventstore.Session) error {
		st, err := ss.Load(stream)
		if err != nil {
			return err
		}
		if st.State.(*counter).balance == 0 {
			return errEmpty
		}
		return nil
	}}
	_, err := a.Execute(ctx, requireFunded)
	require.ErrorIs(t, err, errEmpty) // a now caches the stream as empty

	_, err = b.Append(ctx, scope, events.Metadata{}, stream, 0, testFunded{Amount: 5})
	require.NoError(t, err)

	res, err := a.Execute(ctx, requireFunded)
	require.NoError(t, err, "the other process's append must be seen")
	require.Equal(t, int64(1), res.Position)
}

// An event rewritten together with its own hash passes its content check;
// only the next event's link to it (prev_hash) can tell. Verify must
// follow the links, and name the first event whose link breaks.
func TestVerifyFollowsTheLinksNotOnlyTheContent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openStore(t, db)
	for i := 0; i < 10; i++ {
		_, err := s.Append(ctx, scope, events.Metadata{}, "note-link", eventstore.ExpectAny, testNote{N: i})
		require.NoError(t, err)
	}
	evs, err := eventstore.ReadFrom(ctx, db.Pool, 6, 1)
	require.NoError(t, err)
	e := evs[0]
	require.Equal(t, int64(7), e.Position)
	e.Payload = []byte(`{"n":1000}`)
	e.Hash = events.ComputeHash(&e)
	_, err = db.Pool.Exec(ctx, `ALTER TABLE events DISABLE TRIGGER USER`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE events SET payload = $2, hash = $3 WHERE position = $1`, e.Position, string(e.Payload), e.Hash)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `ALTER TABLE events ENABLE TRIGGER USER`)
	require.NoError(t, err)

	rep, err := eventstore.Verify(ctx, db.Pool, nil)
	require.NoError(t, err)
	require.Equal(t, int64(8), rep.FirstBad, rep.Reason)
	require.Contains(t, rep.Reason, "prev_hash")
}
