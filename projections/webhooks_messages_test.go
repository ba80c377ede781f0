package projections

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
)

// Webhook data is the partner-facing payload less our bookkeeping: the
// idempotency fingerprint never reaches a receiver, in the action's
// webhook or in the transaction webhooks derived from it.
func TestWebhookDataLeavesOutInternalFields(t *testing.T) {
	t.Parallel()
	payload, err := json.Marshal(events.ActionCompleted{
		ActionID: "act_1", IdempotencyKey: "order-1", ActionType: "PURCHASE", Amount: "10", Currency: "USD",
		Status: "COMPLETED", TokensDistributed: 10, TransactionIDs: []string{"txn_a", "txn_b"}, PoolID: "pool_1",
		Metadata: json.RawMessage(`{"orderId":"o-1"}`), RequestHash: "f00d",
	})
	require.NoError(t, err)
	e := events.Event{ID: uuid.New(), Type: "action.completed", SchemaVersion: 1, Payload: payload, RecordedAt: time.Now()}
	msgs, err := WebhookMessages(e)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	for i, m := range msgs {
		var env struct {
			Type string
			Data map[string]json.RawMessage
		}
		require.NoError(t, json.Unmarshal(m.Body, &env))
		require.Equal(t, []string{"action.completed", "transaction.completed", "transaction.completed"}[i], env.Type)
		require.NotContains(t, env.Data, "requestHash")
		require.NotContains(t, string(m.Body), "f00d")
		require.JSONEq(t, `"act_1"`, string(env.Data["actionId"]))
		require.JSONEq(t, `{"orderId":"o-1"}`, string(env.Data["metadata"]))
	}
}
