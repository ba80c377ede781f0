package projections

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// eventByEvent hides a projection's ApplyBatch, so the runtime applies
// through Apply one event at a time: the reference the set-based path
// must reproduce.
type eventByEvent struct{ Projection }

// rewardsWorkload drives the real store through every rewards event type,
// with the repetitions that stress folding: one hot pool, users rewarded
// many times, users created, updated and rewarded close together, actions
// that fail for an empty pool and then complete on retry, reversals right
// after completions, low-balance and auto-refill events, campaigns with a
// budget, allocation requests approved and rejected.
func rewardsWorkload(t *testing.T, store *eventstore.Store) {
	s := ledger.NewService(store, ledger.Options{})
	t.Helper()
	ctx := context.Background()
	md := events.Metadata{}
	a := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: "sandbox"}
	prod := eventstore.Tenant{PartnerID: a.PartnerID, Environment: "production"}
	_, _, err := s.ProvisionPool(ctx, a, md, ledger.PoolInput{Allocated: 120, LowBalanceThreshold: 60})
	require.NoError(t, err)
	budget := int64(1000)
	_, err = s.CreateCampaign(ctx, a, md, ledger.CampaignInput{Name: "x2", Status: "ACTIVE", Multiplier: "2", TokenBudget: &budget})
	require.NoError(t, err)
	var reverse []string
	for i := 0; i < 30; i++ {
		out, err := s.SubmitAction(ctx, a, md, rewardAction(fmt.Sprint("k", i), "7", "alice", fmt.Sprint("u", i%4), fmt.Sprint("new", i)))
		if err != nil {
			require.Equal(t, "INSUFFICIENT_POOL", eventstore.AsError(err).Code, "%v", err)
			if i%3 == 0 { // top up and retry the same key: failed, then completed
				_, err = s.RequestAllocation(ctx, a, md, ledger.AllocationInput{Amount: 100, Reason: "top-up"})
				require.NoError(t, err)
				out, err = s.SubmitAction(ctx, a, md, rewardAction(fmt.Sprint("k", i), "7", "alice", fmt.Sprint("u", i%4), fmt.Sprint("new", i)))
				require.NoError(t, err)
			}
		}
		if err == nil && i%5 == 1 {
			reverse = append(reverse, out.ActionID)
		}
		if i%7 == 3 {
			email := fmt.Sprintf("alice+%d@example.com", i)
			_, err = s.UpdateUser(ctx, a, md, "alice", ledger.UserPatch{Email: &email, Metadata: []byte(fmt.Sprintf(`{"n":%d}`, i))})
			require.NoError(t, err)
		}
		if len(reverse) > 0 && i%4 == 2 {
			_, err = s.ReverseAction(ctx, a, md, reverse[0], "refund")
			require.NoError(t, err)
			reverse = reverse[1:]
		}
	}
	// Production: no pool until an operator approves; one rejected.
	_, err = s.SubmitAction(ctx, prod, md, rewardAction("p1", "5", "alice"))
	require.Error(t, err)
	req, err := s.RequestAllocation(ctx, prod, md, ledger.AllocationInput{Amount: 500, Reason: "launch"})
	require.NoError(t, err)
	_, err = s.DecideAllocation(ctx, prod, md, req.PoolID, req.RequestID, true, "ops", "")
	require.NoError(t, err)
	req2, err := s.RequestAllocation(ctx, prod, md, ledger.AllocationInput{Amount: 5, Reason: "more"})
	require.NoError(t, err)
	_, err = s.DecideAllocation(ctx, prod, md, req2.PoolID, req2.RequestID, false, "ops", "no")
	require.NoError(t, err)
	_, err = s.SubmitAction(ctx, prod, md, rewardAction("p1", "5", "alice")) // the failed one, retried
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		_, err = s.SubmitAction(ctx, prod, md, rewardAction(fmt.Sprint("q", i), "5", "alice", "bob"))
		require.NoError(t, err)
	}
}

// applyInBatches feeds the whole store to p's live model through the
// runtime's applyBatch, size events per transaction.
func applyInBatches(t *testing.T, db *testenv.DB, p Projection, size int) {
	t.Helper()
	ctx := context.Background()
	all, err := eventstore.ReadFrom(ctx, db.Pool, 0, maxGap)
	require.NoError(t, err)
	require.Less(t, len(all), maxGap)
	for i := 0; i < len(all); i += size {
		_, err := applyBatch(ctx, db.Pool, p, all[i:min(i+size, len(all))])
		require.NoError(t, err)
	}
}

// A rebuild through the set-based path, and live batches of any size,
// give tables identical, row for row and byte for byte, to the live read
// model fed one event at a time through Apply.
func TestSetBasedRewardsEqualEventByEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	rewardsWorkload(t, s)

	require.NoError(t, ensureSchema(ctx, db.Pool, Rewards{}))
	applyInBatches(t, db, eventByEvent{Rewards{}}, 1)
	reference := dumpRewards(t, db)
	require.NotEmpty(t, reference["transactions"])
	require.NotEmpty(t, reference["allocation_requests"])

	// The schema's indexes, constraints and columns: whatever a rebuild
	// drops to load faster is all back, as it was.
	indexes := func() []string {
		rows, err := db.Pool.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE schemaname = $1
			UNION ALL SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(c.oid)
				FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = $1
			UNION ALL SELECT format('%s.%s %s %s null %s', table_name, column_name, data_type, is_nullable, column_default)
				FROM information_schema.columns WHERE table_schema = $1
			ORDER BY 1`, Schema(RewardsName))
		require.NoError(t, err)
		defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return defs
	}
	liveIndexes := indexes()
	head, err := eventstore.ReadHead(ctx, db.Pool)
	require.NoError(t, err)
	pos, err := Rebuild(ctx, db.Pool, Rewards{}, nil)
	require.NoError(t, err)
	require.Equal(t, head, pos)
	require.Equal(t, reference, dumpRewards(t, db), "rebuild (set-based, large pages) equals event by event")
	require.Equal(t, liveIndexes, indexes(), "the indexes a rebuild deferred are all back")

	for _, size := range []int{1, 2, 3, 7, 500} {
		resetProjection(t, db.Pool, Rewards{})
		applyInBatches(t, db, Rewards{}, size)
		require.Equal(t, reference, dumpRewards(t, db), "set-based batches of %d equal event by event", size)
	}
}

// A batch whose checkpoint write fails leaves the read model exactly as it
// was; redelivering everything afterwards applies each event once.
func TestFailedCheckpointWriteChangesNothingAndRedeliveryAppliesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	rewardsWorkload(t, s)
	all, err := eventstore.ReadFrom(ctx, db.Pool, 0, maxGap)
	require.NoError(t, err)
	half := all[:len(all)/2]

	require.NoError(t, ensureSchema(ctx, db.Pool, Rewards{}))
	_, err = applyBatch(ctx, db.Pool, Rewards{}, half)
	require.NoError(t, err)
	before := dumpRewards(t, db)

	// One shot: a sequence is not rolled back with the failed transaction,
	// so only the first checkpoint move after this raises.
	_, err = db.Pool.Exec(ctx, `CREATE SEQUENCE checkpoint_failures;
		CREATE FUNCTION fail_checkpoint_once() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.name = 'rewards' AND nextval('checkpoint_failures') = 1 THEN
				RAISE EXCEPTION 'checkpoint write refused';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER fail_checkpoint_once BEFORE UPDATE ON projection_checkpoints
			FOR EACH ROW EXECUTE FUNCTION fail_checkpoint_once();`)
	require.NoError(t, err)
	_, err = applyBatch(ctx, db.Pool, Rewards{}, all[len(half):])
	require.ErrorContains(t, err, "checkpoint write refused")
	require.Equal(t, before, dumpRewards(t, db), "the failed batch left no row behind")
	require.Equal(t, half[len(half)-1].Position, checkpoint(t, db, RewardsName))

	// Everything again, as a redelivery would bring it.
	cp, err := applyBatch(ctx, db.Pool, Rewards{}, all)
	require.NoError(t, err)
	require.Equal(t, all[len(all)-1].Position, cp)
	got := dumpRewards(t, db)

	// Each event once: the same as event by event from scratch.
	resetProjection(t, db.Pool, Rewards{})
	applyInBatches(t, db, eventByEvent{Rewards{}}, 1)
	require.Equal(t, dumpRewards(t, db), got)
}

// heldRewards is the rewards model with its bulk load writing summed
// balances out at every page end past held rows.
type heldRewards struct {
	Rewards
	held int
}

func (r heldRewards) NewBulkLoad() BulkLoad { return newRewardsLoad(r.held) }

// A rebuild's bulk load (binary COPY, sums held across pages, retried
// actions upserted) equals event-by-event application whatever the page
// size: retries, reversals, allocations and user updates then fall on
// every side of a page boundary and of a held-sums flush.
func TestRewardsBulkLoadEqualsEventByEventAcrossPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	rewardsWorkload(t, s)
	head, err := eventstore.ReadHead(ctx, db.Pool)
	require.NoError(t, err)

	require.NoError(t, ensureSchema(ctx, db.Pool, Rewards{}))
	applyInBatches(t, db, eventByEvent{Rewards{}}, 1)
	reference := dumpRewards(t, db)

	for _, c := range []struct {
		page int
		p    Projection
	}{{1, Rewards{}}, {2, Rewards{}}, {5, heldRewards{held: 0}}, {13, heldRewards{held: 3}}, {64, Rewards{}}} {
		pos, err := rebuildPaged(ctx, db.Pool, c.p, nil, c.page)
		require.NoError(t, err)
		require.Equal(t, head, pos)
		require.Equal(t, reference, dumpRewards(t, db), "pages of %d, %T", c.page, c.p)
		require.Equal(t, head, checkpoint(t, db, RewardsName), "the live runner continues from the rebuilt position")
	}
}
