package projections

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

type noise struct{}

func (noise) EventType() string { return "test.noise" }

func init() { events.Register[noise](1) }

// skipTally is the tally projection as a Skipper: batches without a
// test.tally event change nothing. It counts the events handed to Apply,
// which only the full apply does.
type skipTally struct {
	tallyProjection
	applied atomic.Int64
}

func (p *skipTally) Apply(ctx context.Context, tx pgx.Tx, e events.Event) error {
	p.applied.Add(1)
	return p.tallyProjection.Apply(ctx, tx, e)
}

func (p *skipTally) Skips(_ int64, evs []events.Event) bool {
	return noneUsed(evs, func(t string) bool { return t == "test.tally" })
}

// appendAndRead appends payloads to one stream and returns them as the
// feed would hand them over.
func appendAndRead(t *testing.T, s *eventstore.Store, db *testenv.DB, payloads ...events.Payload) []events.Event {
	t.Helper()
	ctx := context.Background()
	res, err := s.Append(ctx, scope, events.Metadata{}, "tally-skip", eventstore.ExpectAny, payloads...)
	require.NoError(t, err)
	evs, err := eventstore.ReadFrom(ctx, db.Pool, res.Position-int64(len(payloads)), len(payloads))
	require.NoError(t, err)
	return evs
}

func checkpoint(t *testing.T, db *testenv.DB, name string) int64 {
	t.Helper()
	var cp int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT position FROM projection_checkpoints WHERE name = $1`, name).Scan(&cp))
	return cp
}

// A batch a Skipper has nothing to do for moves the checkpoint without an
// apply, once the runner has committed a checkpoint itself; a checkpoint
// moved by anyone else (a rebuild's swap) makes the skip's guard miss, and
// the batch is applied in full from where the checkpoint really is; a swap
// in progress (holding the apply lock) makes it miss too; a batch with one
// used event is never skipped.
func TestSkippedBatchesMoveOnlyTheCheckpointAndNeverOverAnotherWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	p := &skipTally{}
	r, err := NewRunner(db.Pool, nil, RunnerOptions{}, p)
	require.NoError(t, err)
	require.NoError(t, r.Setup(ctx))

	// Until the runner has committed a checkpoint itself it never skips,
	// even a batch it has nothing to do for.
	first := appendAndRead(t, s, db, noise{}, noise{})
	require.NoError(t, r.apply(ctx, p, first))
	require.Equal(t, int64(2), checkpoint(t, db, p.Name()))
	require.Equal(t, int64(2), p.applied.Load())

	used := appendAndRead(t, s, db, tally{N: 1}, tally{N: 2})
	require.NoError(t, r.apply(ctx, p, used))
	require.Equal(t, int64(4), checkpoint(t, db, p.Name()))
	require.Equal(t, int64(4), p.applied.Load())

	quiet := appendAndRead(t, s, db, noise{}, noise{}, noise{}, noise{})
	require.NoError(t, r.apply(ctx, p, quiet))
	require.Equal(t, int64(8), checkpoint(t, db, p.Name()))
	require.Equal(t, int64(4), p.applied.Load(), "a skipped batch reaches no Apply")

	// A swap that committed first left the checkpoint at 5: the guard
	// misses, and the full apply fills 6..8 from the event store.
	_, err = db.Pool.Exec(ctx, `UPDATE projection_checkpoints SET position = 5 WHERE name = $1`, p.Name())
	require.NoError(t, err)
	more := appendAndRead(t, s, db, noise{}, noise{})
	require.NoError(t, r.apply(ctx, p, more))
	require.Equal(t, int64(10), checkpoint(t, db, p.Name()))
	require.Equal(t, int64(9), p.applied.Load(), "positions 6..10 applied in full")

	// A swap in progress holds the apply lock: the skip does not move the
	// checkpoint under it, and the batch is applied in full once the swap
	// is over.
	swap, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = swap.Rollback(ctx) })
	_, err = swap.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, applyLockKey(p.Name()))
	require.NoError(t, err)
	held := appendAndRead(t, s, db, noise{})
	skipped, err := r.skip(ctx, p, held)
	require.NoError(t, err)
	require.False(t, skipped)
	require.Equal(t, int64(10), checkpoint(t, db, p.Name()))
	require.NoError(t, swap.Rollback(ctx))
	skipped, err = r.skip(ctx, p, held)
	require.NoError(t, err)
	require.False(t, skipped, "the miss made the runner forget its checkpoint")
	require.NoError(t, r.apply(ctx, p, held))
	require.Equal(t, int64(11), checkpoint(t, db, p.Name()))

	mixed := appendAndRead(t, s, db, noise{}, tally{N: 3})
	require.NoError(t, r.apply(ctx, p, mixed))
	require.Equal(t, int64(13), checkpoint(t, db, p.Name()))
	require.Equal(t, []tallyRow{{Stream: "tally-skip", Events: 3, Sum: 6, LastPosition: 13}}, readTallies(t, db.Pool))

	after := appendAndRead(t, s, db, noise{})
	applied := p.applied.Load()
	require.NoError(t, r.apply(ctx, p, after))
	require.Equal(t, int64(14), checkpoint(t, db, p.Name()))
	require.Equal(t, applied, p.applied.Load(), "skipping again after a full apply")
}

// The webhooks model skips a batch only with a view of the subscriptions
// at exactly the batch's start, when no event of it changes them and no
// active subscription of its tenant wants any of it; a skip publishes the
// same view for the batch's end, so the next quiet batch skips too.
func TestWebhooksSkipOnlyWhatNoSubscriptionWants(t *testing.T) {
	t.Parallel()
	w := NewWebhooks()
	at := func(pos int64, typ string, tenant eventstore.Tenant) events.Event {
		return events.Event{Position: pos, Type: typ, PartnerID: tenant.PartnerID, Environment: tenant.Environment}
	}
	subscribed := eventstore.Tenant{PartnerID: "p_sub", Environment: "sandbox"}
	quiet := eventstore.Tenant{PartnerID: "p_quiet", Environment: "sandbox"}
	require.False(t, w.Skips(10, []events.Event{at(11, "action.completed", quiet)}), "no view yet")

	w.publish(Schema(w.Name()), &subView{pos: 10, tenants: map[eventstore.Tenant][]fanOutSub{
		subscribed: {newFanOutSub("wh_1", []string{"action.completed"}, false)},
	}})
	require.False(t, w.Skips(9, []events.Event{at(10, "action.completed", quiet)}), "a view of another position")
	require.False(t, w.Skips(10, []events.Event{at(11, "action.completed", quiet), at(12, "action.completed", subscribed)}))
	require.False(t, w.Skips(10, []events.Event{at(11, "webhook.registered", quiet)}))
	require.True(t, w.Skips(10, []events.Event{at(11, "action.completed", quiet), at(12, "pool.debited", subscribed)}))
	require.True(t, w.Skips(12, []events.Event{at(13, "action.completed", quiet)}), "the view moved with the skip")
}

// The skips of several projections share one statement, and each row
// keeps its own guard: one whose checkpoint moved under it (a swap that
// committed) or whose apply lock is held (a swap in progress) stays where
// it is and is told so, and the others still move. The statement takes
// the apply lock of the projections it moves only.
func TestSharedSkipStatementGuardsEachProjection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	_, err := db.Pool.Exec(ctx, `INSERT INTO projection_checkpoints (name, position) VALUES ('skip_a', 5), ('skip_b', 4), ('skip_c', 5)`)
	require.NoError(t, err)
	swap, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = swap.Rollback(ctx) })
	_, err = swap.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, applyLockKey("skip_c"))
	require.NoError(t, err)

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	moved, err := execSkips(ctx, tx, []skipReq{
		{name: "skip_a", from: 5, to: 9, lockID: applyLockKey("skip_a")},
		{name: "skip_b", from: 3, to: 9, lockID: applyLockKey("skip_b")},
		{name: "skip_c", from: 5, to: 9, lockID: applyLockKey("skip_c")},
	})
	require.NoError(t, err)
	require.Equal(t, []bool{true, false, false}, moved)
	// Only the projection it moved had its apply lock taken: a swap
	// waiting on skip_b's would not wait for this statement.
	var advisory int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`).Scan(&advisory))
	require.Equal(t, 1, advisory)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, int64(9), checkpoint(t, db, "skip_a"))
	require.Equal(t, int64(4), checkpoint(t, db, "skip_b"))
	require.Equal(t, int64(5), checkpoint(t, db, "skip_c"))

	require.NoError(t, swap.Rollback(ctx))
	moved, err = execSkips(ctx, db.Pool, []skipReq{{name: "skip_c", from: 5, to: 9, lockID: applyLockKey("skip_c")}})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, moved)
	require.Equal(t, int64(9), checkpoint(t, db, "skip_c"))
}

// The skips go through RunnerOptions.Skips (the app passes its
// asynchronous-commit pool: a skip lost to a crash is skipped again).
func TestSkipsGoThroughTheSkipsPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	p := &skipTally{}
	r, err := NewRunner(db.Pool, nil, RunnerOptions{Skips: db.NewAsyncPool(t, "skips")}, p)
	require.NoError(t, err)
	require.NoError(t, r.Setup(ctx))
	require.NoError(t, r.apply(ctx, p, appendAndRead(t, s, db, noise{})))
	require.NoError(t, r.apply(ctx, p, appendAndRead(t, s, db, noise{}, noise{})))
	require.Equal(t, int64(3), checkpoint(t, db, p.Name()))
	require.Equal(t, int64(1), p.applied.Load(), "the second batch was skipped")
	require.Contains(t, db.LastQuery(t, "skips"), "UPDATE projection_checkpoints c")
}
