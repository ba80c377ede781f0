package httpapi_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

// TestRewardResponsesMatchOpenAPI drives every reward endpoint, successes
// and errors, and checks each answer against the OpenAPI document.
func TestRewardResponsesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	do := func(method, path string, body any) []byte {
		t.Helper()
		return check(t, method, path, p.Do(t, method, path, body))
	}
	var created map[string]any
	require.NoError(t, json.Unmarshal(do("POST", "/v1/partner/users", map[string]any{"partnerUserId": "u-1", "email": "u1@example.com", "metadata": map[string]any{"a": 1}}), &created))
	do("POST", "/v1/partner/users", map[string]any{"partnerUserId": "u-1"}) // 409
	do("GET", "/v1/partner/users/u-1", nil)
	do("PATCH", "/v1/partner/users/u-1", map[string]any{"firstName": "Ann"})
	do("GET", "/v1/partner/users/u-1/balance", nil)
	do("GET", "/v1/partner/users/nobody", nil) // 404

	var res struct{ ActionID string }
	require.NoError(t, json.Unmarshal(do("POST", "/v1/partner/actions/submit", submitBody("o-1", "49.99", "u-1", "u-2")), &res))
	do("POST", "/v1/partner/actions/submit", submitBody("o-1", "49.99", "u-1", "u-2")) // 409 replay
	do("POST", "/v1/partner/actions/submit", submitBody("o-1", "1", "u-1"))            // 422
	do("POST", "/v1/partner/actions/submit", map[string]any{"amount": "x"})            // 400
	do("POST", "/v1/partner/actions/bulk", map[string]any{"actions": []any{submitBody("o-1", "49.99", "u-1", "u-2"), submitBody("o-2", "3", "u-3"), map[string]any{}}})
	do("GET", "/v1/partner/actions", nil)
	do("GET", "/v1/partner/actions/"+res.ActionID, nil)
	do("GET", "/v1/partner/actions/bulk/job_1", nil)
	do("POST", "/v1/partner/actions/"+res.ActionID+"/reverse", map[string]any{"reason": "refund"})
	do("POST", "/v1/partner/actions/"+res.ActionID+"/reverse", nil) // 409
	do("GET", "/v1/partner/actions/"+res.ActionID+"?x=1", nil)
	do("GET", "/v1/partner/users/u-1/transactions", nil)

	var pools struct{ Data []struct{ ID string } }
	require.NoError(t, json.Unmarshal(do("GET", "/v1/partner/token-pools", nil), &pools))
	do("GET", "/v1/partner/token-pools/"+pools.Data[0].ID+"/balance", nil)
	do("POST", "/v1/partner/token-pools/request", map[string]any{"amount": 10, "reason": "more"})
	do("GET", "/v1/partner/token-pools/requests", nil)

	var txns struct{ Data []struct{ ID string } }
	require.NoError(t, json.Unmarshal(do("GET", "/v1/partner/transactions", nil), &txns))
	do("GET", "/v1/partner/transactions/"+txns.Data[0].ID, nil)

	var c struct{ ID string }
	require.NoError(t, json.Unmarshal(do("POST", "/v1/partner/campaigns", map[string]any{"name": "x2", "status": "ACTIVE", "multiplier": "2",
		"budget": 1000, "tiers": []any{map[string]any{"minAmount": "100", "multiplier": "3"}},
		"splits": []any{map[string]any{"stakeholderTypeCode": "CUSTOMER", "percent": "100"}}}), &c))
	do("POST", "/v1/partner/campaigns", map[string]any{"name": "open", "startsAt": "2030-01-01T00:00:00Z"})
	do("POST", "/v1/partner/actions/submit", submitBody("o-3", "5", "u-1"))
	do("GET", "/v1/partner/campaigns", nil)
	do("GET", "/v1/partner/campaigns/active", nil)
	do("GET", "/v1/partner/campaigns/"+c.ID, nil)
	do("GET", "/v1/partner/campaigns/"+c.ID+"/analytics", nil)
	do("GET", "/v1/partner/dashboard/campaigns/"+c.ID+"/analytics", nil)
	do("PATCH", "/v1/partner/campaigns/"+c.ID, map[string]any{"status": "PAUSED"})
	do("PATCH", "/v1/partner/campaigns/"+c.ID, map[string]any{"budget": 1}) // 409 BUDGET_BELOW_USED
	do("GET", "/v1/partner/campaigns/cmp_00000000000000000000000000000000", nil)

	var sum struct {
		Activity struct{ TotalActions, Completed, Failed int64 }
		Users    struct{ Total, Rewarded int64 }
		Pools    struct{ Count int64 }
	}
	require.NoError(t, json.Unmarshal(do("GET", "/v1/partner/dashboard/summary", nil), &sum))
	require.Equal(t, int64(3), sum.Activity.TotalActions)
	require.Equal(t, int64(3), sum.Users.Total)
	require.Equal(t, int64(1), sum.Pools.Count)
	var tr struct{ Series []struct{ Actions int64 } }
	require.NoError(t, json.Unmarshal(do("GET", "/v1/partner/dashboard/trends?days=7", nil), &tr))
	require.Len(t, tr.Series, 7)
	require.Equal(t, int64(3), tr.Series[6].Actions)
	var top struct {
		Data []struct {
			Rank          int
			PartnerUserID string
			TokensEarned  int64
		}
	}
	require.NoError(t, json.Unmarshal(do("GET", "/v1/partner/dashboard/top-earners?limit=2", nil), &top))
	require.Len(t, top.Data, 2)
	require.Equal(t, 1, top.Data[0].Rank)
	var recent struct{ Data []map[string]any }
	require.NoError(t, json.Unmarshal(do("GET", "/v1/partner/dashboard/recent-activity?limit=2", nil), &recent))
	require.Len(t, recent.Data, 2)
	do("GET", "/v1/partner/dashboard/trends?days=0", nil) // 400
}
