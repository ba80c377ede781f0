package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

// sealedCreates are the HMAC rows that only create in the caller's own
// tenant and name nothing of anyone else's: there is nothing of another
// partner's for them to reach. Every other HMAC row of endpoints.tsv must
// be listed in sealedBodies or take no body.
var sealedCreates = map[string]bool{
	"POST /v1/partner/actions/submit":      true,
	"POST /v1/partner/actions/bulk":        true,
	"POST /v1/partner/token-pools/request": true,
	"POST /v1/partner/campaigns":           true,
	"POST /v1/partner/webhooks":            true,
	// Checked last: it creates, in B's tenant, a user with A's external id.
	"POST /v1/partner/users": true,
}

// sealedBodies are what a stranger sends to the writes that name another
// tenant's resource: each would change it if the tenant were not sealed.
var sealedBodies = map[string]any{
	"PATCH /v1/partner/users/:externalId":                        map[string]any{"metadata": map[string]any{"hijacked": true}},
	"POST /v1/partner/actions/:actionId/reverse":                 map[string]any{"reason": "hijack"},
	"PATCH /v1/partner/campaigns/:id":                            map[string]any{"name": "hijacked", "status": "ENDED"},
	"DELETE /v1/partner/webhooks/:id":                            nil,
	"POST /v1/partner/webhooks/:id/deliveries/:deliveryId/retry": nil,
	"POST /v1/partner/webhooks/:id/test":                         nil,
	"GET /v1/partner/actions/bulk/:jobId":                        nil,
	"GET /v1/partner/dashboard/campaigns/:id/analytics":          nil,
	"GET /v1/partner/campaigns/:id/analytics":                    nil,
	"GET /v1/partner/webhooks/:id/deliveries":                    nil,
	"GET /v1/partner/users/:externalId/transactions":             nil,
	"GET /v1/partner/users/:externalId/balance":                  nil,
	"GET /v1/partner/token-pools/:id/balance":                    nil,
	"GET /v1/partner/transactions/:id":                           nil,
	"GET /v1/partner/campaigns/:id":                              nil,
	"GET /v1/partner/actions/:id":                                nil,
	"GET /v1/partner/users/:externalId":                          nil,
}

// TestEveryHMACEndpointIsSealedToItsTenant drives every HMAC row of
// endpoints.tsv as two strangers to partner A's sandbox data: partner B,
// and A's own production key. Each names A's real identifiers; none may
// see them (a resource named by id is 404, lists and dashboards never
// carry them), no write may touch them, and A's data is unchanged after.
func TestEveryHMACEndpointIsSealedToItsTenant(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	a := srv.NewPartner(t, "sandbox")
	b := srv.NewPartner(t, "sandbox")
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(receiver.Close)

	// A's data, one resource in every family.
	const user = "canary-user-7d1"
	var act struct {
		ActionID       string   `json:"actionId"`
		TransactionIDs []string `json:"transactionIds"`
	}
	require.Equal(t, 200, a.JSON(t, http.MethodPost, "/v1/partner/actions/submit", submitBody("seal-1", "37", user), &act))
	var cmp struct{ ID string }
	require.Equal(t, 201, a.JSON(t, http.MethodPost, "/v1/partner/campaigns", map[string]any{
		"name": "Sealed", "status": "ACTIVE", "multiplier": "1", "actionTypes": []string{"PURCHASE"}, "budget": 1000,
		"splits": []map[string]any{{"stakeholderTypeCode": "CUSTOMER", "percent": 100}},
	}, &cmp))
	var wh struct{ ID string }
	require.Equal(t, 201, a.JSON(t, http.MethodPost, "/v1/partner/webhooks", map[string]any{"url": receiver.URL + "/hook", "receiveAllEvents": true}, &wh))
	var test struct {
		DeliveryID string `json:"deliveryId"`
	}
	require.Equal(t, 202, a.JSON(t, http.MethodPost, "/v1/partner/webhooks/"+wh.ID+"/test", nil, &test))
	require.NotEmpty(t, test.DeliveryID)
	var pools struct{ Data []struct{ ID string } }
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/token-pools"), nil, &pools))
	require.Len(t, pools.Data, 1)
	var preq struct{ ID string }
	require.Equal(t, 201, a.JSON(t, http.MethodPost, "/v1/partner/token-pools/request", map[string]any{"amount": 4321, "reason": "canary"}, &preq))

	params := map[string]string{
		":externalId": user, ":actionId": act.ActionID, ":deliveryId": test.DeliveryID, ":jobId": act.ActionID,
	}
	idFor := map[string]string{ // what ":id" names, by the segment before it
		"actions": act.ActionID, "token-pools": pools.Data[0].ID, "campaigns": cmp.ID,
		"transactions": act.TransactionIDs[0], "webhooks": wh.ID,
	}
	canaries := []string{user, act.ActionID, act.TransactionIDs[0], cmp.ID, wh.ID, test.DeliveryID, pools.Data[0].ID, preq.ID, "seal-1"}
	fill := func(path string) string {
		parts := strings.Split(path, "/")
		for i, p := range parts {
			switch {
			case p == ":id":
				parts[i] = idFor[parts[i-1]]
			case strings.HasPrefix(p, ":"):
				parts[i] = params[p]
			default:
				continue
			}
			require.NotEmpty(t, parts[i], "no identifier of A's for %s in %s", p, path)
		}
		return strings.Join(parts, "/")
	}

	// A's production key: same partner, the other environment.
	prod := a.InEnvironment(t, "production")

	covered := 0
	for _, row := range readSpec(t) {
		if !strings.HasPrefix(row.auth, "HMAC") {
			continue
		}
		name := row.method + " " + row.path
		if sealedCreates[name] {
			continue
		}
		body, listed := sealedBodies[name]
		hasParam := strings.Contains(row.path, ":")
		require.True(t, listed || (row.method == http.MethodGet && !hasParam),
			"%s: a new HMAC endpoint; say in sealedCreates or sealedBodies how a stranger tries to reach A's data with it", name)
		covered++
		path := fill(row.path)
		for _, who := range []struct {
			label string
			p     *apptest.Partner
		}{{"partner B", b}, {"A's production key", prod}} {
			leaks := canaries
			if who.p == b {
				leaks = append(leaks[:len(leaks):len(leaks)], a.PartnerID)
			}
			resp := who.p.Do(t, row.method, u(path), body)
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			switch {
			case name == "GET /v1/partner/campaigns/active":
				// A's campaign is active; a stranger has none.
				require.Equal(t, 404, resp.StatusCode, "%s as %s: %s", name, who.label, raw)
			case hasParam:
				require.Equal(t, 404, resp.StatusCode, "%s as %s reached A's resource: %s", name, who.label, raw)
			default:
				require.Equal(t, 200, resp.StatusCode, "%s as %s: %s", name, who.label, raw)
			}
			for _, c := range leaks {
				if strings.Contains(path, c) {
					continue // a 404 may echo what the caller named
				}
				require.NotContains(t, string(raw), c, "%s as %s shows A's %q", name, who.label, c)
			}
		}
	}
	require.GreaterOrEqual(t, covered, 30, "the spec's HMAC endpoints were not all driven")

	// A's external id is free in every other tenant: a conflict would
	// reveal that A has such a user.
	for _, p := range []*apptest.Partner{b, prod} {
		var created map[string]any
		require.Equal(t, 201, p.JSON(t, http.MethodPost, "/v1/partner/users", map[string]any{"partnerUserId": user}, &created))
		require.NotEqual(t, a.PartnerID, created["partnerId"])
	}

	// Nothing of A's changed.
	var got map[string]any
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/actions/"+act.ActionID), nil, &got))
	require.Equal(t, "COMPLETED", got["status"])
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/users/"+user), nil, &got))
	require.Empty(t, got["metadata"])
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/campaigns/"+cmp.ID), nil, &got))
	require.Equal(t, "Sealed", got["name"])
	require.Equal(t, "ACTIVE", got["status"])
	var hooks struct{ Data []struct{ ID string } }
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/webhooks"), nil, &hooks))
	require.Len(t, hooks.Data, 1)
	require.Equal(t, wh.ID, hooks.Data[0].ID)
	var bal struct{ Balance int64 }
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/users/"+user+"/balance"), nil, &bal))
	require.Equal(t, int64(37), bal.Balance)
}
