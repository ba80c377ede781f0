package projections

import (
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/webhook_bodies.golden from the current code")

// webhookSamples are domain events of every type that reaches partners,
// with the awkward cases: optional members absent and present, nil and
// empty lists, HTML-significant and non-ASCII characters in metadata.
func webhookSamples(t *testing.T) []events.Event {
	t.Helper()
	at := time.Date(2026, 12, 3, 10, 11, 12, 123456000, time.UTC)
	meta := json.RawMessage(`{"note":"<b>&</b> café","n":[1,2.50]}`)
	shares := []events.ActionReward{
		{StakeholderTypeCode: "CUSTOMER", PartnerUserID: "u-1", UserID: "pusr_1", Tokens: 34, TransactionID: "txn_a"},
		{StakeholderTypeCode: "MERCHANT", PartnerUserID: "u-2", UserID: "pusr_2", Tokens: 16},
	}
	payloads := []events.Payload{
		events.ActionCompleted{ActionID: "act_1", IdempotencyKey: "order-1", ActionType: "PURCHASE", Amount: "49.99", Currency: "USD",
			Status: "COMPLETED", TokensDistributed: 50, TransactionIDs: []string{"txn_a", "txn_b"}, Stakeholders: shares,
			PoolID: "pool_1", CampaignID: "cmp_1", Metadata: meta, RequestHash: "f00d"},
		events.ActionCompleted{ActionID: "act_2", IdempotencyKey: "order-2", ActionType: "DONATION", Amount: "0.4", Currency: "EUR",
			Status: "COMPLETED", TokensDistributed: 0, PoolID: "pool_1", RequestHash: "beef"},
		events.ActionFailed{ActionID: "act_3", IdempotencyKey: "order-3", ActionType: "PURCHASE", Amount: "10", Currency: "USD",
			Status: "FAILED", TransactionIDs: []string{}, Stakeholders: []events.ActionReward{}, Code: "INSUFFICIENT_TOKENS",
			Reason: "the pool holds 3 tokens", RequestHash: "cafe"},
		events.ActionFailed{ActionID: "act_4", IdempotencyKey: "order-4", ActionType: "PURCHASE", Amount: "10", Currency: "USD",
			Status: "FAILED", Stakeholders: shares, PoolID: "pool_1", CampaignID: "cmp_1", Metadata: meta, Code: "BUDGET_EXHAUSTED",
			Reason: "spent", RequestHash: "cafe"},
		events.ActionReversed{ActionID: "act_1", IdempotencyKey: "order-1", ActionType: "PURCHASE", Amount: "49.99", Currency: "USD",
			Status: "REVERSED", TokensDistributed: 50, TokensReversed: 50, TransactionIDs: []string{"txn_c"}, Stakeholders: shares,
			PoolID: "pool_1", CampaignID: "cmp_1", Reason: "refund <full>"},
		events.ActionReversed{ActionID: "act_5", IdempotencyKey: "order-5", ActionType: "PURCHASE", Amount: "1", Currency: "USD",
			Status: "REVERSED", PoolID: "pool_1"},
		events.PoolLowBalance{PoolID: "pool_1", Available: 90, Threshold: 100},
		events.CampaignStatusChanged{CampaignID: "cmp_1", From: "SCHEDULED", To: "ACTIVE"},
		events.CampaignStatusChanged{CampaignID: "cmp_1", From: "ACTIVE", To: "ENDED", Reason: "budget exhausted"},
		events.WebhookTestRequested{WebhookID: "wh_1"},
		events.DonationCompleted{DonationID: "don_1", Provider: "stripe", ProviderRef: "pi_1", NonprofitSlug: "american-red-cross",
			Amount: 2500, TipAmount: 250, Currency: "USD", PartnerUserID: "ada@example.com", ActionID: "act_6",
			RewardStatus: "COMPLETED", TokensRewarded: 25},
		events.DonationCompleted{DonationID: "don_2", Provider: "sandbox", NonprofitSlug: "feeding-america", Amount: 100,
			Currency: "USD", PartnerUserID: "u-1", RewardStatus: "FAILED", RewardCode: "INSUFFICIENT_POOL"},
		events.DonationFailed{DonationID: "don_3", Provider: "stripe", NonprofitSlug: "american-red-cross", Amount: 2500,
			Currency: "USD", Reason: "card declined"},
		events.DonationRefunded{DonationID: "don_1", Provider: "stripe", NonprofitSlug: "american-red-cross", Amount: 2500,
			Currency: "USD", ActionID: "act_6", TokensReversed: 25, Reason: "requested_by_customer"},
	}
	out := make([]events.Event, len(payloads))
	for i, p := range payloads {
		typ, ver, body, err := events.Encode(p)
		require.NoError(t, err)
		out[i] = events.Event{ID: uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(i)}), Type: typ, SchemaVersion: ver, Payload: body, RecordedAt: at}
	}
	return out
}

// Every webhook body partners receive is pinned byte for byte: a change to
// an internal event (a field added, renamed, or a new version) must not
// change what a receiver gets. Run with -update-golden only when the
// contract itself changes.
func TestWebhookBodiesArePinned(t *testing.T) {
	t.Parallel()
	var got strings.Builder
	for _, e := range webhookSamples(t) {
		msgs, err := WebhookMessages(e)
		require.NoError(t, err)
		require.NotEmpty(t, msgs, e.Type)
		for _, m := range msgs {
			got.WriteString(m.Type + " " + string(m.Body) + "\n")
		}
	}
	const file = "testdata/webhook_bodies.golden"
	if *updateGolden {
		require.NoError(t, os.WriteFile(file, []byte(got.String()), 0o644))
	}
	want, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, string(want), got.String())
}
