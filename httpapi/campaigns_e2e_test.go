package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

func TestHTTPCampaignsBudgetRaceActiveAndSchedule(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")

	var c map[string]any
	require.Equal(t, 201, p.JSON(t, http.MethodPost, "/v1/partner/campaigns", map[string]any{
		"name": "Holiday x2", "status": "ACTIVE", "multiplier": "2", "actionTypes": []string{"PURCHASE"}, "budget": 100,
		"splits": []map[string]any{{"stakeholderTypeCode": "CUSTOMER", "percent": 100}},
	}, &c))
	id := c["id"].(string)
	require.Regexp(t, `^cmp_[0-9a-f]{32}$`, id)
	require.Equal(t, "ACTIVE", c["status"])
	var e map[string]any
	require.Equal(t, 409, p.JSON(t, http.MethodPost, "/v1/partner/campaigns", map[string]any{"name": "second", "status": "ACTIVE"}, &e))
	require.Equal(t, "CAMPAIGN_ALREADY_ACTIVE", e["code"])
	require.Equal(t, 400, p.JSON(t, http.MethodPost, "/v1/partner/campaigns", map[string]any{"name": "bad",
		"splits": []map[string]any{{"stakeholderTypeCode": "CUSTOMER", "percent": 60}}}, &e))

	// Budget 100, each action needs 20 (10 × 2): exactly 5 of 16 complete.
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var out map[string]any
			code := p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", submitBody(fmt.Sprint("cb-", i), "10", "alice"), &out)
			if code == 402 {
				require.Equal(t, "CAMPAIGN_BUDGET_EXHAUSTED", out["code"])
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	require.Equal(t, map[int]int{200: 5, 402: 11}, codes)

	var active map[string]any
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/campaigns/active"), nil, &active))
	require.Equal(t, id, active["id"])
	require.Equal(t, map[string]any{"total": float64(100), "used": float64(100), "remaining": float64(0)}, active["budget"])
	var an struct {
		Actions           struct{ Total, Completed, Failed int64 }
		TokensDistributed int64
		UniqueUsers       int64
	}
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/campaigns/"+id+"/analytics"), nil, &an))
	require.Equal(t, int64(16), an.Actions.Total)
	require.Equal(t, int64(5), an.Actions.Completed)
	require.Equal(t, int64(100), an.TokensDistributed)
	require.Equal(t, int64(1), an.UniqueUsers)

	// End it; a scheduled campaign then starts on time, by the scheduler.
	require.Equal(t, 200, p.JSON(t, http.MethodPatch, "/v1/partner/campaigns/"+id, map[string]any{"status": "ENDED"}, &c))
	require.Equal(t, 404, p.JSON(t, http.MethodGet, u("/v1/partner/campaigns/active"), nil, &e))
	require.Equal(t, "NO_ACTIVE_CAMPAIGN", e["code"])
	start := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	require.Equal(t, 201, p.JSON(t, http.MethodPost, "/v1/partner/campaigns", map[string]any{"name": "Soon", "status": "SCHEDULED", "startsAt": start}, &c))
	soon := c["id"].(string)
	require.Eventually(t, func() bool {
		var got map[string]any
		return p.JSON(t, http.MethodGet, u("/v1/partner/campaigns/"+soon), nil, &got) == 200 && got["status"] == "ACTIVE"
	}, 30*time.Second, 100*time.Millisecond)

	var list struct{ Pagination struct{ Total int64 } }
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/campaigns?status=ENDED"), nil, &list))
	require.Equal(t, int64(1), list.Pagination.Total)

	other := srv.NewPartner(t, "sandbox")
	require.Equal(t, 404, other.JSON(t, http.MethodGet, u("/v1/partner/campaigns/"+id), nil, &e))
}
