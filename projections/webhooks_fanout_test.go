package projections

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// dumpWebhooks renders the subscriptions and every delivery.
func dumpWebhooks(t *testing.T, db *testenv.DB) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT s::text FROM `+Table(WebhooksName, "subscriptions")+` s
		UNION ALL SELECT concat_ws(' ', id, subscription_id, partner_id, environment, event_id, event_type, source_position, encode(body, 'escape'), created_at)
		FROM webhook_deliveries ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// The in-memory subscription view skips exactly the events no subscription
// wants: whatever the batch sizes, whether one process or two alternating
// (leadership moving between ledgerd replicas) apply, and across a
// rebuild, the deliveries are those of event-by-event fan-out reading the
// table for every event.
func TestWebhookFanOutSkipsExactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	l := ledger.NewService(s, ledger.Options{})
	a := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: "sandbox"}
	b := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: "sandbox"}
	md := events.Metadata{}
	hook := func(sc eventstore.Tenant, p events.Payload) {
		_, err := s.Append(ctx, sc, md, "webhook-x", eventstore.ExpectAny, p)
		require.NoError(t, err)
	}
	for _, sc := range []eventstore.Tenant{a, b} {
		_, _, err := l.ProvisionPool(ctx, sc, md, ledger.PoolInput{Allocated: 100000, LowBalanceThreshold: 99990})
		require.NoError(t, err)
	}
	submit := func(sc eventstore.Tenant, n int) {
		for i := 0; i < n; i++ {
			_, err := l.SubmitAction(ctx, sc, md, rewardAction(eventstore.NewID("k"), "3", "alice", "bob"))
			require.NoError(t, err)
		}
	}
	submit(a, 3) // before any subscription: nothing
	hook(a, events.WebhookRegistered{WebhookID: "wh_tx", URL: "https://a.example/tx", EventTypes: []string{"transaction.completed"}, SecretSealed: []byte{1}})
	submit(a, 2)
	submit(b, 2)
	hook(a, events.WebhookRegistered{WebhookID: "wh_all", URL: "https://a.example/all", ReceiveAllEvents: true, SecretSealed: []byte{2}})
	hook(b, events.WebhookRegistered{WebhookID: "wh_fail", URL: "https://b.example/f", EventTypes: []string{"action.failed"}, SecretSealed: []byte{3}})
	submit(a, 2)
	submit(b, 2) // b's only subscription wants failures: nothing
	hook(a, events.WebhookTestRequested{WebhookID: "wh_tx"})
	hook(a, events.WebhookDeleted{WebhookID: "wh_tx"})
	submit(a, 2)
	hook(a, events.WebhookDisabled{WebhookID: "wh_all", Reason: "failing"})
	submit(a, 2) // no active subscription left: nothing
	hook(b, events.WebhookRegistered{WebhookID: "wh_b_all", URL: "https://b.example/all", ReceiveAllEvents: true, SecretSealed: []byte{4}})
	submit(b, 2)

	fresh := func() {
		_, err := db.Pool.Exec(ctx, `DELETE FROM webhook_deliveries`)
		require.NoError(t, err)
		resetProjection(t, db.Pool, NewWebhooks())
	}
	require.NoError(t, ensureSchema(ctx, db.Pool, NewWebhooks()))
	applyInBatches(t, db, eventByEvent{NewWebhooks()}, 1)
	reference := dumpWebhooks(t, db)
	var deliveries int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&deliveries))
	require.Positive(t, deliveries)

	for _, size := range []int{1, 3, 500} {
		fresh()
		applyInBatches(t, db, NewWebhooks(), size)
		require.Equal(t, reference, dumpWebhooks(t, db), "batches of %d", size)
	}

	// Two processes taking turns: each must notice the other moved the
	// checkpoint (and the subscriptions) since its own last batch.
	fresh()
	all, err := eventstore.ReadFrom(ctx, db.Pool, 0, maxGap)
	require.NoError(t, err)
	procs := []*Webhooks{NewWebhooks(), NewWebhooks()}
	for i, turn := 0, 0; i < len(all); i, turn = i+4, turn+1 {
		_, err := applyBatch(ctx, db.Pool, procs[turn%2], all[i:min(i+4, len(all))])
		require.NoError(t, err)
	}
	require.Equal(t, reference, dumpWebhooks(t, db), "two processes alternating")

	// A rebuild swaps in identical subscriptions and repeats no delivery;
	// afterwards the live process fans out from the rebuilt table.
	w := procs[0]
	_, err = Rebuild(ctx, db.Pool, w, nil)
	require.NoError(t, err)
	require.Equal(t, reference, dumpWebhooks(t, db), "the rebuild created nothing")
	submit(b, 1)
	more, err := eventstore.ReadFrom(ctx, db.Pool, all[len(all)-1].Position, 100)
	require.NoError(t, err)
	_, err = applyBatch(ctx, db.Pool, w, more)
	require.NoError(t, err)
	var after int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&after))
	require.Equal(t, deliveries+3, after, "wh_b_all gets the action and its two transactions")
}
