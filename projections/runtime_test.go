package projections

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

type tally struct {
	N int `json:"n"`
}

func (tally) EventType() string { return "test.tally" }

func init() { events.Register[tally](1) }

// tallyProjection counts events per stream and sums their n: any event
// applied twice or skipped changes the result. Outside a replay each event
// also has a side effect: a row in public.tally_effects, outside the
// projection's schema (so a rebuild keeps it), written in the applying
// transaction like a webhook delivery, so a transaction rolled back by a
// kill leaves none.
type tallyProjection struct {
	replays atomic.Int64
}

func (*tallyProjection) Name() string { return "tally" }
func (*tallyProjection) Setup() string {
	return `CREATE TABLE tallies (stream_id text PRIMARY KEY, events bigint NOT NULL, sum bigint NOT NULL, last_position bigint NOT NULL);
CREATE TABLE IF NOT EXISTS public.tally_effects (schema_name text NOT NULL, position bigint NOT NULL)`
}

// effects counts the side effects the named tally projection committed.
func effects(t *testing.T, db *testenv.DB, name string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM public.tally_effects WHERE schema_name = $1`, Schema(name)).Scan(&n))
	return n
}
func (p *tallyProjection) HasSideEffects() bool { return true }
func (p *tallyProjection) Apply(ctx context.Context, tx pgx.Tx, e events.Event) error {
	if e.Type != "test.tally" {
		return nil
	}
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	if Replaying(ctx) {
		p.replays.Add(1)
	} else if _, err := tx.Exec(ctx, `INSERT INTO public.tally_effects (schema_name, position) VALUES (current_schema(), $1)`, e.Position); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO tallies (stream_id, events, sum, last_position) VALUES ($1, 1, $2, $3)
		ON CONFLICT (stream_id) DO UPDATE SET events = tallies.events + 1, sum = tallies.sum + $2, last_position = $3`,
		e.StreamID, pl.(tally).N, e.Position)
	return err
}

type tallyRow struct {
	Stream       string
	Events, Sum  int64
	LastPosition int64
}

func readTallies(t *testing.T, q eventstore.Querier) []tallyRow {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT stream_id, events, sum, last_position FROM `+Table("tally", "tallies")+` ORDER BY stream_id`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[tallyRow])
	require.NoError(t, err)
	return out
}

var scope = eventstore.Tenant{PartnerID: "p1", Environment: "sandbox"}

// appendTallies appends n events over four streams, several per command
// and several commands at once, so large logs build quickly.
func appendTallies(t *testing.T, s *eventstore.Store, from, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var chunk []events.Payload
			flush := func() {
				if len(chunk) == 0 {
					return
				}
				_, err := s.Append(context.Background(), scope, events.Metadata{}, fmt.Sprintf("tally-%d", w), eventstore.ExpectAny, chunk...)
				require.NoError(t, err)
				chunk = nil
			}
			for i := from; i < from+n; i++ {
				if i%4 != w {
					continue
				}
				chunk = append(chunk, tally{N: i})
				if len(chunk) == 25 {
					flush()
				}
			}
			flush()
		}(w)
	}
	wg.Wait()
}

// expected computes the tallies straight from the event store.
func expected(t *testing.T, q eventstore.Querier) []tallyRow {
	t.Helper()
	m := map[string]*tallyRow{}
	_, err := eventstore.Export(context.Background(), q, eventstore.Filter{}, func(e events.Event) error {
		pl, err := events.Decode(e)
		if err != nil {
			return err
		}
		r := m[e.StreamID]
		if r == nil {
			r = &tallyRow{Stream: e.StreamID}
			m[e.StreamID] = r
		}
		r.Events++
		r.Sum += int64(pl.(tally).N)
		r.LastPosition = e.Position
		return nil
	})
	require.NoError(t, err)
	var out []tallyRow
	for i := 0; i < 4; i++ {
		if r := m[fmt.Sprintf("tally-%d", i)]; r != nil {
			out = append(out, *r)
		}
	}
	return out
}

func runRunner(t *testing.T, r *Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitHead(t *testing.T, db *testenv.DB, names ...string) {
	t.Helper()
	head, err := eventstore.ReadHead(context.Background(), db.Pool)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, WaitFor(ctx, db.Pool, head, names...))
}

// relayedStore is what a projector test runs against: its own database,
// an embedded JetStream, a store on the one and a relay publishing to the
// other.
func relayedStore(t *testing.T) (*testenv.DB, *testenv.NATS, *eventstore.Store) {
	t.Helper()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	startRelay(t, db, n)
	return db, n, s
}

func startRelay(t *testing.T, db *testenv.DB, n *testenv.NATS) {
	t.Helper()
	r, err := eventstore.NewRelay(db.Pool, n.Connect(t), eventstore.RelayOptions{Poll: 20 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestProjectorAppliesEachEventOnceThroughJetStream(t *testing.T) {
	t.Parallel()
	db, n, s := relayedStore(t)
	p := &tallyProjection{}
	r, err := NewRunner(db.Pool, n.Connect(t), RunnerOptions{Idle: 50 * time.Millisecond}, p)
	require.NoError(t, err)
	runRunner(t, r)

	appendTallies(t, s, 0, 200)
	waitHead(t, db, "tally")
	require.Equal(t, expected(t, db.Pool), readTallies(t, db.Pool))
	require.Equal(t, int64(0), p.replays.Load())
	require.Equal(t, int64(200), effects(t, db, "tally"), "each event applied exactly once")
}

// Redelivered, duplicated, re-ordered and holed batches change nothing
// beyond the first application: the checkpoint moves with the writes.
func TestRedeliveryChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	p := &tallyProjection{}
	require.NoError(t, ensureSchema(ctx, db.Pool, p))
	appendTallies(t, s, 0, 30)
	all, err := eventstore.ReadFrom(ctx, db.Pool, 0, 100)
	require.NoError(t, err)

	_, err = applyBatch(ctx, db.Pool, p, all[:10])
	require.NoError(t, err)
	// The same messages again, then an overlapping batch with a hole
	// (positions 11..14 missing: filled from PostgreSQL), then everything.
	_, err = applyBatch(ctx, db.Pool, p, all[:10])
	require.NoError(t, err)
	cp, err := applyBatch(ctx, db.Pool, p, append(append([]events.Event{}, all[5:10]...), all[14:20]...))
	require.NoError(t, err)
	require.Equal(t, int64(20), cp)
	cp, err = applyBatch(ctx, db.Pool, p, all)
	require.NoError(t, err)
	require.Equal(t, int64(30), cp)

	require.Equal(t, expected(t, db.Pool), readTallies(t, db.Pool))
	require.Equal(t, int64(30), effects(t, db, "tally"))
}

// A projector killed mid-stream resumes from its checkpoint in a new
// process; with NATS down it catches up from PostgreSQL alone.
func TestProjectorKilledAndRestartedResumesExactly(t *testing.T) {
	t.Parallel()
	db, n, s := relayedStore(t)

	p1 := &tallyProjection{}
	r1, err := NewRunner(db.Pool, n.Connect(t), RunnerOptions{Idle: 50 * time.Millisecond, FetchBatch: 7}, p1)
	require.NoError(t, err)
	stop1 := runRunner(t, r1)
	appendTallies(t, s, 0, 100)
	stop1() // killed at whatever point it had reached
	appendTallies(t, s, 100, 100)

	n.Stop() // the broker is down too: the new projector must still catch up
	p2 := &tallyProjection{}
	r2, err := NewRunner(db.Pool, n.Connect(t), RunnerOptions{Idle: 50 * time.Millisecond}, p2)
	require.NoError(t, err)
	runRunner(t, r2)
	waitHead(t, db, "tally")
	require.Equal(t, expected(t, db.Pool), readTallies(t, db.Pool))
	require.Equal(t, int64(200), effects(t, db, "tally"), "no event applied twice across the restart")
	n.Start()
}

// A rebuild from the event store, run while writes continue and the live
// projector serves, swaps in tables identical to a from-scratch replay and
// repeats no side effect.
func TestRebuildEqualsLiveAndRepeatsNoSideEffects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, n, s := relayedStore(t)
	p := &tallyProjection{}
	r, err := NewRunner(db.Pool, n.Connect(t), RunnerOptions{Idle: 50 * time.Millisecond}, p)
	require.NoError(t, err)
	runRunner(t, r)

	appendTallies(t, s, 0, 12000) // more than one rebuild page
	waitHead(t, db, "tally")
	live := readTallies(t, db.Pool)
	require.Equal(t, expected(t, db.Pool), live)

	// Keep writing during the rebuild.
	writing := make(chan struct{})
	go func() { defer close(writing); appendTallies(t, s, 12000, 300) }()
	var reports int
	pos, err := Rebuild(ctx, db.Pool, p, func(RebuildProgress) { reports++ })
	require.NoError(t, err)
	require.Positive(t, pos)
	require.Positive(t, reports)
	<-writing
	waitHead(t, db, "tally")

	require.Equal(t, expected(t, db.Pool), readTallies(t, db.Pool), "rebuilt and caught-up model equals a replay of the store")
	require.Equal(t, int64(12300), effects(t, db, "tally"), "the rebuild repeated no side effect")
	require.GreaterOrEqual(t, p.replays.Load(), int64(12000))

	var schemas int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'proj_tally%'`).Scan(&schemas))
	require.Equal(t, 1, schemas, "old and scratch schemas are gone")
	sts, err := Statuses(ctx, db.Pool)
	require.NoError(t, err)
	require.Len(t, sts, 1)
	require.Equal(t, int64(0), sts[0].Lag)
}

// A huge hole (a new projection whose first message is far ahead) is
// filled a bounded page per transaction, never all at once.
func TestHugeHoleIsFilledInBoundedSteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	p := &tallyProjection{}
	require.NoError(t, ensureSchema(ctx, db.Pool, p))
	appendTallies(t, s, 0, 2*maxGap+100)
	head, err := eventstore.ReadHead(ctx, db.Pool)
	require.NoError(t, err)
	last, err := eventstore.ReadFrom(ctx, db.Pool, head-1, 1)
	require.NoError(t, err)

	var steps []int64
	for i := 0; i < 5; i++ {
		cp, err := applyBatch(ctx, db.Pool, p, last)
		require.NoError(t, err)
		steps = append(steps, cp)
		if cp == head {
			break
		}
	}
	require.Equal(t, []int64{maxGap, 2 * maxGap, head}, steps)
	require.Equal(t, expected(t, db.Pool), readTallies(t, db.Pool))
}

// poisonProjection is tally that refuses the event with N == 5 while
// broken, as a projection with a bug would.
type poisonProjection struct {
	tallyProjection
	broken atomic.Bool
}

func (p *poisonProjection) Apply(ctx context.Context, tx pgx.Tx, e events.Event) error {
	if pl, err := events.Decode(e); err == nil && pl.(tally).N == 5 && p.broken.Load() {
		return fmt.Errorf("cannot apply n=5")
	}
	return p.tallyProjection.Apply(ctx, tx, e)
}

// A projection that cannot apply an event stops there (never skips it),
// and the status operators read says so, with the cause and since when;
// once the cause is fixed it catches up and the failure is cleared.
func TestStalledProjectionShowsItsCauseUntilItRecovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	p := &poisonProjection{}
	p.broken.Store(true)
	for i := 0; i < 10; i++ {
		_, err := s.Append(ctx, scope, events.Metadata{}, "tally-0", eventstore.ExpectAny, tally{N: i})
		require.NoError(t, err)
	}
	n := testenv.NewNATS(t)
	r, err := NewRunner(db.Pool, n.Connect(t), RunnerOptions{Idle: 20 * time.Millisecond, FetchBatch: 3}, p)
	require.NoError(t, err)
	runRunner(t, r)

	status := func() Status { // zero until the runner has set tally up
		sts, err := Statuses(ctx, db.Pool)
		require.NoError(t, err)
		for _, st := range sts {
			if st.Name == "tally" {
				return st
			}
		}
		return Status{}
	}
	require.Eventually(t, func() bool { return status().FailingSince != nil }, 30*time.Second, 20*time.Millisecond)
	st := status()
	require.Contains(t, st.LastError, "position 6")
	require.Contains(t, st.LastError, "cannot apply n=5")
	require.Equal(t, int64(10), st.Head)
	require.Less(t, st.Position, int64(6), "the poison event is never skipped")

	p.broken.Store(false)
	waitHead(t, db, "tally")
	require.Equal(t, expected(t, db.Pool), readTallies(t, db.Pool))
	st = status()
	require.Nil(t, st.FailingSince)
	require.Empty(t, st.LastError)
	require.Equal(t, int64(0), st.Lag)
}

// The commit-to-projected delay histogram counts each event once, when it
// is first applied: redelivered events (already at or below the
// checkpoint) would otherwise report the broker's age as the read model's
// delay and inflate the p99 the throughput target is stated in.
func TestDelayHistogramCountsFirstApplicationsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	p := &tallyProjection{}
	reg := prometheus.NewRegistry()
	r, err := NewRunner(db.Pool, nil, RunnerOptions{Registerer: reg}, p)
	require.NoError(t, err)
	require.NoError(t, r.Setup(ctx))
	appendTallies(t, s, 0, 30)
	all, err := eventstore.ReadFrom(ctx, db.Pool, 0, 100)
	require.NoError(t, err)

	require.NoError(t, r.apply(ctx, p, append([]events.Event{}, all[:10]...)))
	require.NoError(t, r.apply(ctx, p, append([]events.Event{}, all[:10]...))) // redelivered
	require.NoError(t, r.apply(ctx, p, append([]events.Event{}, all[5:30]...)))

	h := &dto.Metric{}
	require.NoError(t, r.delay.WithLabelValues(p.Name()).(prometheus.Histogram).Write(h))
	require.Equal(t, uint64(30), h.GetHistogram().GetSampleCount())
	require.Positive(t, h.GetHistogram().GetSampleSum())
}

// A schema created before a table of its projection existed gets the
// table at the next start (Upgrader), and starting again changes nothing:
// the accounts model of a database from before the widget serves the
// widget configuration without a rebuild.
func TestEnsureSchemaUpgradesAnOlderSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	require.NoError(t, ensureSchema(ctx, db.Pool, Accounts{}))
	_, err := db.Pool.Exec(ctx, `DROP TABLE proj_accounts.partner_configs`)
	require.NoError(t, err)
	for range 2 {
		require.NoError(t, ensureSchema(ctx, db.Pool, Accounts{}))
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM proj_accounts.partner_configs`).Scan(&n))
		require.Zero(t, n)
	}
}

// A rewards schema from before actions_stakeholder_users gets it at the
// next start and loses the whole-array index it replaced; starting again
// changes nothing, and the user filter of ListActions is the indexed
// expression (with sequential scans off, a lookup by it uses the index).
func TestEnsureSchemaMovesRewardsToTheStakeholderUsersIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	require.NoError(t, ensureSchema(ctx, db.Pool, Rewards{}))
	_, err := db.Pool.Exec(ctx, `DROP INDEX proj_rewards.actions_stakeholder_users;
		CREATE INDEX actions_stakeholders ON proj_rewards.actions USING gin (stakeholders jsonb_path_ops)`)
	require.NoError(t, err)
	for range 2 {
		require.NoError(t, ensureSchema(ctx, db.Pool, Rewards{}))
		require.Equal(t, []string{"actions_by_tenant", "actions_campaign", "actions_pkey", "actions_stakeholder_users"}, rewardsIndexes(t, db, "actions"))
	}
	require.Contains(t, explain(t, db, `SELECT action_id FROM `+Table(RewardsName, "actions")+` WHERE `+stakeholderUsers+` @> $1::jsonb`, `["dave"]`),
		"actions_stakeholder_users")
}

// rewardsIndexes lists the indexes of the rewards model's tables, by name.
func rewardsIndexes(t *testing.T, db *testenv.DB, tables ...string) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT indexname FROM pg_indexes WHERE schemaname = 'proj_rewards' AND tablename = ANY($1) ORDER BY 1`, tables)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// explain is the plan of sql with sequential scans off: the
// plan says which index, if any, can serve the query.
func explain(t *testing.T, db *testenv.DB, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	_, err = tx.Exec(ctx, `SET LOCAL enable_seqscan = off`)
	require.NoError(t, err)
	rows, err := tx.Query(ctx, `EXPLAIN `+sql, args...)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}

// A rewards schema with the descending list indexes gets the ascending
// ones at the next start and loses the old; starting again changes
// nothing. Each list reads its index backwards, in the order it returns
// rows, with no sort of the tenant's rows: the newest actions, the newest
// transactions, and one user's transactions by the partner's id.
func TestEnsureSchemaMovesRewardsListsToAscendingIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	require.NoError(t, ensureSchema(ctx, db.Pool, Rewards{}))
	_, err := db.Pool.Exec(ctx, `SET search_path TO proj_rewards;
		DROP INDEX actions_by_tenant, transactions_by_tenant, transactions_by_user;
		CREATE INDEX actions_tenant ON actions (partner_id, environment, created_at DESC, action_id);
		CREATE INDEX transactions_tenant ON transactions (partner_id, environment, position DESC);
		CREATE INDEX transactions_user ON transactions (partner_id, environment, user_id, position DESC);
		RESET search_path`)
	require.NoError(t, err)
	for range 2 {
		require.NoError(t, ensureSchema(ctx, db.Pool, Rewards{}))
		require.Equal(t, []string{"actions_by_tenant", "actions_campaign", "actions_pkey", "actions_stakeholder_users",
			"transactions_by_tenant", "transactions_by_user", "transactions_pkey"}, rewardsIndexes(t, db, "actions", "transactions"))
	}

	actions, txns := Table(RewardsName, "actions"), Table(RewardsName, "transactions")
	p := explain(t, db, `SELECT * FROM `+actions+` WHERE partner_id = $1 AND environment = $2 ORDER BY created_at DESC, action_id LIMIT 20`, "p", "sandbox")
	require.Contains(t, p, "Scan Backward using actions_by_tenant")
	require.NotContains(t, p, "Sort")
	p = explain(t, db, `SELECT * FROM `+txns+` WHERE partner_id = $1 AND environment = $2 ORDER BY position DESC, transaction_id LIMIT 20`, "p", "sandbox")
	require.Contains(t, p, "Scan Backward using transactions_by_tenant")
	p = explain(t, db, `SELECT * FROM `+txns+` WHERE partner_id = $1 AND environment = $2 AND external_id = $3 ORDER BY position DESC, transaction_id LIMIT 20`, "p", "sandbox", "u1")
	require.Contains(t, p, "Scan Backward using transactions_by_user")
	p = explain(t, db, `SELECT count(*) FROM `+txns+` WHERE partner_id = $1 AND environment = $2 AND external_id = $3`, "p", "sandbox", "u1")
	require.Contains(t, p, "transactions_by_user")
}
