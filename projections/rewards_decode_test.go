package projections

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
)

// hotSamples are hot payloads as the domain writes them, and the edge
// values of their fields.
func hotSamples() []events.Payload {
	return []events.Payload{
		events.ActionCompleted{ActionID: "act_1", IdempotencyKey: "order-1", ActionType: "PURCHASE", Amount: "10.50", Currency: "USD",
			Status: "COMPLETED", TokensDistributed: 14, TransactionIDs: []string{"txn_a", "txn_b"}, PoolID: "pool_1", CampaignID: "cmp_1",
			Stakeholders: []events.ActionReward{{StakeholderTypeCode: "CUSTOMER", PartnerUserID: "u1", UserID: "pusr_1", Tokens: 9, TransactionID: "txn_a"},
				{StakeholderTypeCode: "REFERRER", PartnerUserID: "u2", UserID: "pusr_2", Tokens: 5, TransactionID: "txn_b"},
				{StakeholderTypeCode: "OTHER", PartnerUserID: "u3", UserID: "pusr_3"}},
			Metadata: json.RawMessage(`{"orderId":"order-1","n":-3,"ok":true,"tags":["a",{"b":[]}],"x":{}}`), RequestHash: "f00d"},
		events.ActionCompleted{ActionID: "act_2", Amount: "1", Stakeholders: []events.ActionReward{}, TransactionIDs: []string{}},
		events.PoolDebited{PoolID: "pool_1", ActionIDs: []string{"act_1", "act_2"}, Amount: 1 << 62},
		events.PoolDebited{ActionIDs: []string{}, Amount: -7},
		events.CampaignBudgetDebited{CampaignID: "cmp_1", ActionIDs: []string{"act_1"}, Amount: 42},
	}
}

// The payloads the domain writes take the hand decoder's path: were they
// to stop (a new field), a rebuild would silently slow down.
func TestDecodeHotTakesDomainPayloads(t *testing.T) {
	t.Parallel()
	for _, p := range hotSamples() {
		typ, v, body, err := events.Encode(p)
		require.NoError(t, err)
		got, plain := decodeHot(events.Event{Type: typ, SchemaVersion: v, Payload: body})
		require.True(t, plain, "%s", body)
		require.Equal(t, p, got)
	}
}

// Wherever the hand decoder accepts a payload it returns what
// events.Decode does, and its JSON for the stakeholders and transaction
// ids is json.Marshal's; elsewhere it declines.
func FuzzDecodeHotEqualsDecode(f *testing.F) {
	types := []string{"action.completed", "pool.debited", "campaign.budget_debited"}
	for _, p := range hotSamples() {
		typ, _, body, err := events.Encode(p)
		require.NoError(f, err)
		for i, t := range types {
			if t == typ {
				f.Add(uint8(i), body)
			}
		}
	}
	for _, s := range []string{`{"poolId":"p","poolId":"q","amount":1}`, `{"PoolId":"p"}`, `{"amount":1.0}`, `{"amount":01}`,
		`{"amount":1e3}`, `{"amount":99999999999999999999}`, `{"poolId":"a\"b"}`, `{"poolId":"é"}`, ` {"amount": -0 } `,
		`{"amount":1}x`, `{"actionId":"act_\u003c"}`, `{"transactionIds":null}`, `{"metadata":null}`, `{"metadata":{"a":1,"a":2}}`, `{"stakeholders":[{"tokens":1,"tokens":2}]}`,
		`{"stakeholders":[{}],"transactionIds":["",""]}`, `{"metadata":[1]}`, `{"actionIds":null}`, `{"actionIds":["a",1]}`, `{"amount":-}`, `{}`, `{`, ``} {
		f.Add(uint8(0), []byte(s))
		f.Add(uint8(1), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		typ := types[int(which)%len(types)]
		e := events.Event{Type: typ, SchemaVersion: hotVersions[typ], Payload: body}
		got, plain := decodeHot(e)
		if !plain {
			return
		}
		want, err := events.Decode(e)
		require.NoError(t, err, "%s", body)
		require.Equal(t, want, got, "%s", body)
		if a, ok := want.(events.ActionCompleted); ok {
			sameJSON := func(mine []byte, theirs any) {
				std, err := json.Marshal(theirs)
				require.NoError(t, err)
				var x, y any
				require.NoError(t, json.Unmarshal(mine, &x), "%s", mine)
				require.NoError(t, json.Unmarshal(std, &y))
				require.Equal(t, y, x)
			}
			sameJSON(appendRewardsJSON(nil, a.Stakeholders), a.Stakeholders)
			sameJSON(appendStringsJSON(nil, a.TransactionIDs), a.TransactionIDs)
		}
	})
}
