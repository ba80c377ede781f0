package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/apiusage"
	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/apitest"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// addKey creates another key of p's partner in env over the portal API
// (approving the partner for production) and returns a Partner signing
// with it.
func addKey(t *testing.T, p *apptest.Partner, env string) *apptest.Partner {
	t.Helper()
	var key struct {
		ID         string `json:"id"`
		PublicKey  string `json:"publicKey"`
		SecretKey  string `json:"secretKey"`
		HMACSecret string `json:"hmacSecret"`
	}
	require.Equal(t, http.StatusCreated, p.Srv.PortalJSON(t, p.Token, http.MethodPost, "/v1/partner/keys",
		map[string]string{"name": "second " + env, "environment": env}, &key))
	if env == ledger.EnvProduction {
		res, err := p.Srv.Ledger.ApprovePartner(context.Background(), events.Metadata{Actor: "test"}, p.PartnerID)
		require.NoError(t, err)
		p.Srv.WaitAccounts(t, res.Position)
	}
	return &apptest.Partner{Srv: p.Srv, PartnerID: p.PartnerID, Env: env, KeyID: key.ID, PublicKey: key.PublicKey,
		SecretKey: key.SecretKey, HMACSecret: key.HMACSecret, UserID: p.UserID, Email: p.Email, Password: p.Password, Token: p.Token}
}

// getChecked sends a signed GET, checks the answer against the OpenAPI
// document and decodes it into out.
func getChecked(t *testing.T, p *apptest.Partner, path string, out any) int {
	t.Helper()
	resp := p.Do(t, http.MethodGet, path, nil)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	apitest.CheckResponse(t, http.MethodGet, path, resp.StatusCode, resp.Header, body)
	if out != nil {
		require.NoError(t, json.Unmarshal(body, out), "body: %s", body)
	}
	return resp.StatusCode
}

// waitFor flushes the server's usage counters and fetches the report until
// done accepts it (requests are counted just after their answer is sent,
// so a report may briefly miss the last one). It fails after 30 s.
func waitFor[T any](t *testing.T, p *apptest.Partner, path string, done func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		require.NoError(t, p.Srv.Usage.Flush(context.Background()))
		var v T
		require.Equal(t, http.StatusOK, getChecked(t, p, path, &v))
		if done(v) {
			return v
		}
		require.True(t, time.Now().Before(deadline), "condition not reached on %s; last: %+v", path, v)
		time.Sleep(20 * time.Millisecond)
	}
}

func usageOf(r apiusage.Report, name string) *apiusage.EndpointUsage {
	for i := range r.ByEndpoint {
		if r.ByEndpoint[i].Endpoint == name {
			return &r.ByEndpoint[i]
		}
	}
	return nil
}

func requests(r apiusage.Report, name string) int64 {
	if e := usageOf(r, name); e != nil {
		return e.Requests
	}
	return 0
}

func codeCount(cs []apiusage.CodeCount, code string) int64 {
	for _, c := range cs {
		if c.Code == code {
			return c.Count
		}
	}
	return 0
}

func TestHTTPAPIUsageCountsRequestsPerTenant(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	a := srv.NewPartner(t, "sandbox")
	aProd := addKey(t, a, "production")
	b := srv.NewPartner(t, "sandbox")

	for i := 0; i < 3; i++ {
		require.Equal(t, 200, a.JSON(t, http.MethodGet, "/v1/partner/users", nil, nil))
	}
	for i := 0; i < 2; i++ {
		require.Equal(t, 404, a.JSON(t, http.MethodGet, "/v1/partner/users/nobody", nil, nil))
	}
	require.Equal(t, 400, a.JSON(t, http.MethodPost, "/v1/partner/users", map[string]any{"partnerUserId": 7}, nil))
	// A signature failure happens before there is a principal: it still
	// counts for the tenant whose key the request named.
	resp, err := http.DefaultClient.Do(srv.SignedRequest(t, a.SecretKey, "not-the-secret", http.MethodGet, "/v1/partner/actions", nil, srv.Now().Unix()))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)
	for i := 0; i < 5; i++ {
		require.Equal(t, 200, b.JSON(t, http.MethodGet, "/v1/partner/token-pools", nil, nil))
	}
	for i := 0; i < 4; i++ {
		require.Equal(t, 200, aProd.JSON(t, http.MethodGet, "/v1/partner/transactions", nil, nil))
	}

	rep := waitFor(t, a, "/v1/partner/dashboard/api-usage", func(r apiusage.Report) bool {
		return requests(r, "GET /v1/partner/users") == 3 && requests(r, "GET /v1/partner/users/:externalId") == 2 &&
			requests(r, "POST /v1/partner/users") == 1 && requests(r, "GET /v1/partner/actions") == 1
	})
	require.Equal(t, "sandbox", rep.Environment)
	require.Equal(t, 7, rep.Days)
	require.Len(t, rep.Daily, 7)
	require.Equal(t, srv.Now().UTC().Format("2006-01-02"), rep.To)
	require.Equal(t, rep.To, rep.Daily[6].Date)
	var daily int64
	for _, d := range rep.Daily {
		daily += d.Requests
	}
	require.Equal(t, rep.Totals.Requests, daily)
	users := usageOf(rep, "GET /v1/partner/users")
	require.Equal(t, "GET", users.Method)
	require.Equal(t, "/v1/partner/users", users.Path)
	require.Equal(t, int64(3), users.ByStatusClass["2xx"])
	require.Equal(t, int64(0), users.Errors)
	require.NotNil(t, users.LatencyMs.P50)
	require.NotNil(t, users.LatencyMs.P99)
	require.LessOrEqual(t, *users.LatencyMs.P50, *users.LatencyMs.P99)
	one := usageOf(rep, "GET /v1/partner/users/:externalId")
	require.Equal(t, int64(2), one.Errors)
	require.Equal(t, int64(2), one.ByStatusClass["4xx"])
	require.Equal(t, 1.0, *one.ErrorRate)
	require.Equal(t, int64(2), codeCount(rep.ByErrorCode, "USER_NOT_FOUND"))
	require.Equal(t, int64(1), codeCount(rep.ByErrorCode, "VALIDATION_ERROR"))
	require.Equal(t, int64(1), codeCount(rep.ByErrorCode, "INVALID_SIGNATURE"))
	require.Equal(t, int64(4), rep.Totals.Errors)
	require.GreaterOrEqual(t, rep.ByStatusClass["2xx"], int64(3))
	require.Equal(t, int64(4), rep.ByStatusClass["4xx"])
	// Sealed: neither B's requests nor A's production requests show.
	require.Nil(t, usageOf(rep, "GET /v1/partner/token-pools"))
	require.Nil(t, usageOf(rep, "GET /v1/partner/transactions"))

	repB := waitFor(t, b, "/v1/partner/dashboard/api-usage?days=30", func(r apiusage.Report) bool {
		return requests(r, "GET /v1/partner/token-pools") == 5
	})
	require.Len(t, repB.Daily, 30)
	require.Nil(t, usageOf(repB, "GET /v1/partner/users"))
	require.Equal(t, int64(0), repB.Totals.Errors)

	repProd := waitFor(t, aProd, "/v1/partner/dashboard/api-usage?days=90", func(r apiusage.Report) bool {
		return requests(r, "GET /v1/partner/transactions") == 4
	})
	require.Equal(t, "production", repProd.Environment)
	require.Nil(t, usageOf(repProd, "GET /v1/partner/users"))
	require.Nil(t, usageOf(repProd, "GET /v1/partner/actions"))
	require.Empty(t, repProd.ByErrorCode)

	for _, q := range []string{"days=0", "days=91", "days=abc", "days=-1"} {
		var e struct {
			Code    string                  `json:"code"`
			Details []eventstore.FieldIssue `json:"details"`
		}
		require.Equal(t, 400, getChecked(t, a, "/v1/partner/dashboard/api-usage?"+q, &e), q)
		require.Equal(t, "VALIDATION_ERROR", e.Code)
		require.Equal(t, "days", e.Details[0].Field)
	}
}

type healthBody = apiusage.IntegrationHealth

func reasonCodes(h healthBody) []string {
	var out []string
	for _, r := range h.Reasons {
		out = append(out, r.Code)
	}
	return out
}

func TestHTTPIntegrationHealth(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	other := srv.NewPartner(t, "sandbox")

	// A fresh sandbox integration is healthy: a provisioned pool, one key
	// (the caller's, so not "never used"), no traffic to judge.
	var h healthBody
	require.Equal(t, 200, getChecked(t, p, "/v1/partner/dashboard/integration-health", &h))
	require.Equal(t, apiusage.StatusHealthy, h.Status, "%+v", h.Reasons)
	require.Empty(t, h.Reasons)
	require.Equal(t, "sandbox", h.Environment)
	require.Equal(t, int64(1), h.Keys.Active)
	require.Empty(t, h.Keys.NeverUsed)
	require.Equal(t, int64(1), h.Pools.Usable)

	// A second key expiring in a week, never used.
	second := addKey(t, p, "sandbox")
	exp := srv.Now().Add(7 * 24 * time.Hour).UTC().Truncate(time.Second)
	require.Equal(t, 200, srv.PortalJSON(t, p.Token, http.MethodPatch, "/v1/partner/keys/"+second.KeyID, map[string]any{"expiresAt": exp}, nil))
	// A pool expiring within 14 days, under its threshold.
	sc := eventstore.Tenant{PartnerID: p.PartnerID, Environment: "sandbox"}
	poolID, res, err := srv.Ledger.ProvisionPool(context.Background(), sc, events.Metadata{Actor: "test"},
		ledger.PoolInput{PoolID: eventstore.NewID("pool"), Name: "Spring", Allocated: 100, LowBalanceThreshold: 500, ExpiresAt: &exp})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, projections.WaitFor(ctx, srv.Pool, res.Position, projections.RewardsName))

	// Signing failures, each attributed to p's tenant by its key.
	now := srv.Now().Unix()
	send := func(req *http.Request) int {
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, 401, send(srv.SignedRequest(t, p.SecretKey, "wrong", http.MethodGet, "/v1/partner/users", nil, now)))
	require.Equal(t, 401, send(srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users", nil, now-1000)))
	require.Equal(t, 200, send(srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users?limit=7", nil, now)))
	require.Equal(t, 401, send(srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users?limit=7", nil, now)))
	// Mostly failing requests in the last hour.
	for i := 0; i < 40; i++ {
		require.Equal(t, 404, p.JSON(t, http.MethodGet, fmt.Sprintf("/v1/partner/users/ghost-%d", i), nil, nil))
	}

	h = waitFor(t, p, "/v1/partner/dashboard/integration-health", func(h healthBody) bool {
		return h.API.SignatureFailures.Total == 3 && h.API.LastHour.Errors == 43
	})
	require.Equal(t, map[string]int64{"INVALID_SIGNATURE": 1, "TIMESTAMP_OUT_OF_RANGE": 1, "REPLAYED_REQUEST": 1}, h.API.SignatureFailures.ByCode)
	require.Equal(t, apiusage.StatusFailing, h.Status)
	require.Subset(t, reasonCodes(h), []string{"API_ERROR_RATE_HIGH", "SIGNATURE_FAILURES", "KEYS_EXPIRING", "POOL_LOW_BALANCE", "POOL_EXPIRING"})
	require.NotContains(t, reasonCodes(h), "NO_USABLE_TOKEN_POOL")
	require.Equal(t, "USER_NOT_FOUND", h.API.TopErrorCodes[0].Code)
	require.Equal(t, int64(40), h.API.TopErrorCodes[0].Count)
	require.Equal(t, 404, h.API.TopErrorCodes[0].Status)
	require.NotNil(t, h.API.LastSuccessAt)
	require.Equal(t, h.API.LastHour.Errors, h.API.Last24h.Errors)
	require.Equal(t, int64(2), h.Keys.Active)
	require.Len(t, h.Keys.ExpiringSoon, 1)
	require.Equal(t, second.KeyID, h.Keys.ExpiringSoon[0].ID)
	require.True(t, exp.Equal(*h.Keys.ExpiringSoon[0].ExpiresAt))
	require.Len(t, h.Keys.NeverUsed, 1)
	require.Equal(t, second.KeyID, h.Keys.NeverUsed[0].ID)
	require.Equal(t, int64(2), h.Pools.Total)
	require.Len(t, h.Pools.Attention, 1)
	require.Equal(t, poolID, h.Pools.Attention[0].ID)
	require.True(t, h.Pools.Attention[0].LowBalance)
	require.True(t, h.Pools.Attention[0].ExpiringSoon)
	require.Equal(t, int64(0), h.Webhooks.Attempts)

	// Sealed: another partner of the same environment sees none of it.
	var ho healthBody
	require.Equal(t, 200, getChecked(t, other, "/v1/partner/dashboard/integration-health", &ho))
	require.Equal(t, apiusage.StatusHealthy, ho.Status, "%+v", ho.Reasons)
	require.Equal(t, int64(0), ho.API.SignatureFailures.Total)
	require.Equal(t, int64(0), ho.API.Last24h.Errors)
	require.Equal(t, int64(1), ho.Keys.Active)

	// Production of the same partner: nothing of sandbox's traffic, and
	// no pool yet, which fails every reward.
	prod := addKey(t, p, "production")
	var hp healthBody
	require.Equal(t, 200, getChecked(t, prod, "/v1/partner/dashboard/integration-health", &hp))
	require.Equal(t, "production", hp.Environment)
	require.Equal(t, apiusage.StatusFailing, hp.Status)
	require.Equal(t, []string{"NO_TOKEN_POOL"}, reasonCodes(hp))
	require.Equal(t, int64(0), hp.API.SignatureFailures.Total)
	require.Equal(t, int64(0), hp.API.Last24h.Errors)
	require.Equal(t, int64(1), hp.Keys.Active)
}

func TestHTTPCampaignAnalyticsWindow(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	var c map[string]any
	require.Equal(t, 201, p.JSON(t, http.MethodPost, "/v1/partner/campaigns", map[string]any{
		"name": "Window", "status": "ACTIVE", "multiplier": "1", "actionTypes": []string{"PURCHASE"},
	}, &c))
	id := c["id"].(string)
	for i := 0; i < 3; i++ {
		require.Equal(t, 200, p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", submitBody(fmt.Sprint("win-", i), "10", "alice"), nil))
	}
	now := srv.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }

	for _, base := range []string{"/v1/partner/campaigns/" + id + "/analytics", "/v1/partner/dashboard/campaigns/" + id + "/analytics"} {
		var an projections.CampaignAnalytics
		require.Equal(t, 200, getChecked(t, p, u(base), &an))
		require.Equal(t, int64(3), an.Actions.Total)
		require.Nil(t, an.From)
		require.Nil(t, an.To)

		require.Equal(t, 200, getChecked(t, p, u(base+"?from="+ts(-time.Hour)+"&to="+ts(time.Hour)), &an))
		require.Equal(t, int64(3), an.Actions.Total)
		require.Equal(t, int64(3), an.Actions.Completed)
		require.Greater(t, an.TokensDistributed, int64(0))
		require.Len(t, an.Daily, 1)
		require.NotNil(t, an.From)
		require.True(t, now.Add(-time.Hour).Truncate(time.Second).Equal(*an.From))

		// Windows without the actions: nothing counted, budget unchanged.
		require.Equal(t, 200, getChecked(t, p, u(base+"?from="+ts(time.Hour)), &an))
		require.Equal(t, int64(0), an.Actions.Total)
		require.Equal(t, int64(0), an.TokensDistributed)
		require.Equal(t, int64(0), an.UniqueUsers)
		require.Empty(t, an.Daily)
		require.Empty(t, an.ByActionType)
		require.Equal(t, 200, getChecked(t, p, u(base+"?to="+ts(-time.Hour)), &an))
		require.Equal(t, int64(0), an.Actions.Total)
		require.Equal(t, 200, getChecked(t, p, u(base+"?startDate="+ts(-time.Hour)), &an))
		require.Equal(t, int64(3), an.Actions.Total)

		for q, field := range map[string]string{
			"from=yesterday": "from",
			"to=2024-13-01":  "to",
			"from=" + ts(time.Hour) + "&to=" + ts(-time.Hour): "to",
			"from=" + ts(0) + "&to=" + ts(0):                  "to",
		} {
			var e struct {
				Code    string                  `json:"code"`
				Details []eventstore.FieldIssue `json:"details"`
			}
			require.Equal(t, 400, getChecked(t, p, u(base+"?"+q), &e), q)
			require.Equal(t, "VALIDATION_ERROR", e.Code)
			require.Equal(t, field, e.Details[0].Field, q)
		}
	}
}
