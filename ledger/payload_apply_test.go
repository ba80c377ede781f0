package ledger_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// The store folds the events a command has just emitted with ApplyPayload
// (the typed value) and everything it reads with Apply (the stored JSON).
// A process that decided a command and one that loaded the stream later
// must hold the same state, or a replayed submit could answer differently
// depending on which process serves it. The payloads carry what JSON
// changes on the way: HTML characters in metadata, a time, empty and nil
// slices.
func TestApplyPayloadFoldsAsApplyDoes(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Microsecond)
	later := now.Add(48 * time.Hour)
	type step struct {
		stream string
		p      events.Payload
	}
	actionSteps := []step{
		{"action-act_1", events.ActionCompleted{ActionID: "act_1", IdempotencyKey: "k<1>", ActionType: "PURCHASE", Amount: "12.50",
			Currency: "USD", Status: "COMPLETED", TokensDistributed: 25, TransactionIDs: []string{"txn_1", "txn_2"},
			Stakeholders: []events.ActionReward{{StakeholderTypeCode: "CUSTOMER", PartnerUserID: "u&1", UserID: "pusr_1", Tokens: 25, TransactionID: "txn_1"}},
			PoolID:       "pool_1", CampaignID: "cmp_1", Metadata: json.RawMessage(`{"note":"<b>&amp;</b>","n":[1,2]}`), RequestHash: "h1"}},
		{"action-act_1", events.ActionReversed{ActionID: "act_1", IdempotencyKey: "k<1>", ActionType: "PURCHASE", Amount: "12.50",
			Currency: "USD", Status: "REVERSED", TokensDistributed: 25, TokensReversed: 25}},
	}
	failedSteps := []step{
		{"action-act_2", events.ActionFailed{ActionID: "act_2", IdempotencyKey: "k2", ActionType: "DONATION", Amount: "1",
			Currency: "USD", Status: "FAILED", TransactionIDs: []string{}, RequestHash: "h2"}},
	}
	poolSteps := []step{
		{"pool-pool_1", events.PoolProvisioned{PoolID: "pool_1", Name: "Main <pool>", Environment: "sandbox", Allocated: 1000,
			LowBalanceThreshold: 100, ExpiresAt: &later, VestingDays: 3, AutoRefill: true, AutoRefillThreshold: 50, AutoRefillAmount: 500}},
		{"pool-pool_1", events.PoolDebited{PoolID: "pool_1", ActionIDs: []string{"act_1"}, Amount: 950}},
		{"pool-pool_1", events.PoolLowBalance{PoolID: "pool_1", Available: 50, Threshold: 100}},
		{"pool-pool_1", events.PoolAllocationRequested{RequestID: "req_1", PoolID: "pool_1", Amount: 500, Reason: "auto", Auto: true}},
		{"pool-pool_1", events.PoolAllocationApproved{RequestID: "req_1", PoolID: "pool_1", Amount: 500, ApprovedBy: "ops"}},
		{"pool-pool_1", events.PoolAllocationRequested{RequestID: "req_2", PoolID: "pool_1", Amount: 10, Reason: "more"}},
		{"pool-pool_1", events.PoolAllocationRejected{RequestID: "req_2", PoolID: "pool_1", Reason: "no", RejectedBy: "ops"}},
		{"pool-pool_1", events.PoolCredited{PoolID: "pool_1", ActionID: "act_1", Amount: 950, Reason: "reversal"}},
	}
	for name, c := range map[string]struct {
		steps     []step
		fromBytes eventstore.PayloadApplier
		fromValue eventstore.PayloadApplier
	}{
		"action":        {actionSteps, &ledger.Action{}, &ledger.Action{}},
		"failed action": {failedSteps, &ledger.Action{}, &ledger.Action{}},
		"pool":          {poolSteps, &ledger.Pool{}, &ledger.Pool{}},
	} {
		for i, s := range c.steps {
			typ, ver, body, err := events.Encode(s.p)
			require.NoError(t, err)
			e := events.Event{Position: int64(i + 1), StreamID: s.stream, StreamVersion: int64(i + 1), Type: typ, SchemaVersion: ver,
				PartnerID: "ptn_1", Environment: "sandbox", Payload: body, RecordedAt: now}
			require.NoError(t, c.fromBytes.Apply(e), "%s step %d", name, i)
			require.NoError(t, c.fromValue.ApplyPayload(e, s.p), "%s step %d", name, i)
			a, err := json.Marshal(c.fromBytes)
			require.NoError(t, err)
			b, err := json.Marshal(c.fromValue)
			require.NoError(t, err)
			require.JSONEq(t, string(a), string(b), "%s after step %d (%s)", name, i, typ)
		}
	}
}
