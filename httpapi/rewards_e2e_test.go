package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func submitBody(key, amount string, users ...string) map[string]any {
	var sh []map[string]any
	for _, u := range users {
		sh = append(sh, map[string]any{"stakeholderTypeCode": "CUSTOMER", "partnerUserId": u, "userEmail": u + "@example.com"})
	}
	return map[string]any{"idempotencyKey": key, "actionType": "PURCHASE", "amount": json.Number(amount), "currency": "USD",
		"stakeholders": sh, "autoCreateUsers": true, "metadata": map[string]any{"orderId": key}}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// signedAt sends a request signed at now−skew seconds, so identical
// concurrent requests carry distinct signatures (the server refuses a
// replayed signature).
func signedAt(t *testing.T, p *apptest.Partner, skew int64, method, path string, body any) *http.Response {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	if body == nil {
		raw = nil
	}
	req := p.Srv.SignedRequest(t, p.SecretKey, p.HMACSecret, method, path, raw, p.Srv.Now().Unix()-skew)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

func eventCount(t *testing.T, srv *apptest.Server) int64 {
	t.Helper()
	var n int64
	require.NoError(t, srv.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
	return n
}

// smallPool gives p an extra pool of exactly tokens and returns its id.
func smallPool(t *testing.T, srv *apptest.Server, p *apptest.Partner, tokens int64) string {
	t.Helper()
	id, _, err := srv.Ledger.ProvisionPool(context.Background(), eventstore.Tenant{PartnerID: p.PartnerID, Environment: p.Env}, events.Metadata{},
		ledger.PoolInput{PoolID: eventstore.NewID("pool"), Name: "race pool", Allocated: tokens})
	require.NoError(t, err)
	return id
}

func TestHTTPPoolRaceExactlyNComplete(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	const n = 10
	poolID := smallPool(t, srv, p, 50*n)

	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b := submitBody(fmt.Sprint("race-", i), "49.99", fmt.Sprint("u", i%5))
			b["tokenPoolId"] = poolID
			var out map[string]any
			code := p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", b, &out)
			if code == http.StatusPaymentRequired {
				require.Equal(t, "INSUFFICIENT_POOL", out["code"])
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	require.Equal(t, map[int]int{200: n, 402: 64 - n}, codes)

	var pool struct {
		Allocated, Distributed, Returned, Available int64
	}
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/token-pools/"+poolID+"/balance"), nil, &pool))
	require.Equal(t, int64(0), pool.Available)
	require.Equal(t, pool.Allocated, pool.Available+pool.Distributed-pool.Returned)
	var failed struct {
		Pagination struct{ Total int64 } `json:"pagination"`
	}
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/actions?status=FAILED"), nil, &failed))
	require.Equal(t, int64(64-n), failed.Pagination.Total)
}

func TestHTTPIdempotentReplayIsByteIdentical(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	body := submitBody("order-1", "49.99", "alice", "bob", "carol")

	type answer struct {
		code     int
		replayed string
		body     []byte
	}
	answers := make([]answer, 20)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp := signedAt(t, p, int64(i), http.MethodPost, "/v1/partner/actions/submit", body)
			answers[i] = answer{resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), readAll(t, resp)}
		}(i)
	}
	wg.Wait()
	var original []byte
	for _, a := range answers {
		if a.code == 200 {
			require.Nil(t, original, "two 200s")
			original = a.body
		}
	}
	require.NotNil(t, original)
	for _, a := range answers {
		if a.code == 409 {
			require.Equal(t, "true", a.replayed)
			require.Equal(t, string(original), string(a.body))
		} else {
			require.Equal(t, 200, a.code)
		}
	}
	var res struct {
		ActionID          string   `json:"actionId"`
		Status            string   `json:"status"`
		TokensDistributed int64    `json:"tokensDistributed"`
		TransactionIDs    []string `json:"transactionIds"`
	}
	require.NoError(t, json.Unmarshal(original, &res))
	require.Equal(t, "COMPLETED", res.Status)
	require.Equal(t, int64(50), res.TokensDistributed)
	require.Len(t, res.TransactionIDs, 3)

	// One action, one set of transactions; the next reads reflect it at once.
	var txns struct {
		Data []struct {
			ID     string `json:"id"`
			Tokens int64  `json:"tokens"`
		} `json:"data"`
	}
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/transactions?actionId="+res.ActionID), nil, &txns))
	require.Len(t, txns.Data, 3)
	var sum int64
	for _, tx := range txns.Data {
		sum += tx.Tokens
	}
	require.Equal(t, int64(50), sum)
	var acts struct {
		Pagination struct{ Total int64 } `json:"pagination"`
	}
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/actions"), nil, &acts))
	require.Equal(t, int64(1), acts.Pagination.Total)
	var bal struct{ Balance int64 }
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/users/alice/balance"), nil, &bal))
	require.Equal(t, int64(17), bal.Balance)

	// Same key, another body: 422.
	var e map[string]any
	require.Equal(t, 422, p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", submitBody("order-1", "10", "alice"), &e))
	require.Equal(t, "IDEMPOTENCY_KEY_REUSED", e["code"])
}

func TestHTTPReverseOnceAndReadYourWrites(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	var res struct {
		ActionID string `json:"actionId"`
	}
	require.Equal(t, 200, p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", submitBody("r1", "30", "alice", "bob"), &res))
	var bal struct{ Balance, TotalEarned int64 }
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/users/alice/balance"), nil, &bal))
	require.Equal(t, int64(15), bal.Balance)

	codes := make([]int, 8)
	bodies := make([]map[string]any, 8)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			codes[i] = p.JSON(t, http.MethodPost, "/v1/partner/actions/"+res.ActionID+"/reverse", map[string]string{"reason": fmt.Sprint("refund ", i)}, &bodies[i])
		}(i)
	}
	wg.Wait()
	ok := 0
	for i, c := range codes {
		if c == 200 {
			ok++
			require.Equal(t, "REVERSED", bodies[i]["status"])
		} else {
			require.Equal(t, 409, c)
			require.Equal(t, "ALREADY_REVERSED", bodies[i]["code"])
		}
	}
	require.Equal(t, 1, ok)
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/users/alice/balance"), nil, &bal))
	require.Equal(t, int64(0), bal.Balance)
	require.Equal(t, int64(15), bal.TotalEarned)
	var txns struct {
		Data []map[string]any `json:"data"`
	}
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/users/alice/transactions"), nil, &txns))
	require.Len(t, txns.Data, 2)
	require.Equal(t, "REVERSAL", txns.Data[0]["type"])
	var act map[string]any
	require.Equal(t, 200, p.JSON(t, http.MethodGet, u("/v1/partner/actions/"+res.ActionID), nil, &act))
	require.Equal(t, "REVERSED", act["status"])
	require.Equal(t, 404, p.JSON(t, http.MethodPost, "/v1/partner/actions/act_00000000000000000000000000000000/reverse", nil, &act))
}

func TestHTTPBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	before := eventCount(t, srv)
	cases := map[string]func(map[string]any){
		"amount":         func(b map[string]any) { b["amount"] = json.Number("10.001") },
		"currency":       func(b map[string]any) { b["currency"] = "ZZZ" },
		"stakeholders":   func(b map[string]any) { b["stakeholders"] = []any{} },
		"idempotencyKey": func(b map[string]any) { delete(b, "idempotencyKey") },
		"actionType":     func(b map[string]any) { delete(b, "actionType") },
		"metadata": func(b map[string]any) {
			b["metadata"] = map[string]string{"x": string(bytes.Repeat([]byte("a"), 17000))}
		},
	}
	for field, mut := range cases {
		b := submitBody("bad-"+field, "10", "alice")
		mut(b)
		var e struct {
			StatusCode int
			Code       string
			Details    []eventstore.FieldIssue
		}
		require.Equal(t, 400, p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", b, &e), field)
		require.Equal(t, "VALIDATION_ERROR", e.Code)
		require.Equal(t, field, e.Details[0].Field)
	}
	var e map[string]any
	require.Equal(t, 400, p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", "{not json", &e))
	many := make([]map[string]any, 101)
	for i := range many {
		many[i] = submitBody(fmt.Sprint("m", i), "1", "alice")
	}
	require.Equal(t, 400, p.JSON(t, http.MethodPost, "/v1/partner/actions/bulk", map[string]any{"actions": many}, &e))
	require.Equal(t, "TOO_MANY_ACTIONS", e["code"])
	nouser := submitBody("nouser", "10", "ghost")
	nouser["autoCreateUsers"] = false
	require.Equal(t, 422, p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", nouser, &e))
	require.Equal(t, "USER_NOT_FOUND", e["code"])
	require.Equal(t, 400, p.JSON(t, http.MethodPost, "/v1/partner/users", map[string]any{"email": "x@example.com"}, &e))
	require.Equal(t, before, eventCount(t, srv))
}

func TestHTTPBulkUsersPoolsAndTenancy(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	a := srv.NewPartner(t, "sandbox")
	b := srv.NewPartner(t, "sandbox")

	// Users.
	var usr map[string]any
	require.Equal(t, 201, a.JSON(t, http.MethodPost, "/v1/partner/users", map[string]any{"partnerUserId": "ext-1", "email": "one@example.com", "firstName": "One"}, &usr))
	require.Regexp(t, `^pusr_[0-9a-f]{32}$`, usr["id"])
	require.Equal(t, 409, a.JSON(t, http.MethodPost, "/v1/partner/users", map[string]any{"partnerUserId": "ext-1"}, &usr))
	require.Equal(t, 200, a.JSON(t, http.MethodPatch, "/v1/partner/users/ext-1", map[string]any{"metadata": map[string]any{"vip": true}}, &usr))
	require.Equal(t, map[string]any{"vip": true}, usr["metadata"])

	// Bulk: one completes, one replays, one is rejected; order kept.
	var first map[string]any
	require.Equal(t, 200, a.JSON(t, http.MethodPost, "/v1/partner/actions/submit", submitBody("b-0", "5", "ext-1"), &first))
	bad := submitBody("b-2", "5", "ext-1")
	bad["currency"] = "NOPE"
	var bulk struct {
		Results []struct {
			Index             int
			Status            string
			ActionID          string
			TokensDistributed *int64
			Error             *struct{ Code string }
		}
		Summary map[string]int
	}
	require.Equal(t, 200, a.JSON(t, http.MethodPost, "/v1/partner/actions/bulk", map[string]any{"actions": []any{
		submitBody("b-0", "5", "ext-1"), submitBody("b-1", "7.5", "ext-1", "ext-2"), bad}}, &bulk))
	require.Len(t, bulk.Results, 3)
	require.Equal(t, first["actionId"], bulk.Results[0].ActionID)
	require.Equal(t, "REPLAYED", bulk.Results[0].Status)
	require.Equal(t, "COMPLETED", bulk.Results[1].Status)
	require.Equal(t, int64(8), *bulk.Results[1].TokensDistributed)
	require.Equal(t, "REJECTED", bulk.Results[2].Status)
	require.Equal(t, "VALIDATION_ERROR", bulk.Results[2].Error.Code)
	require.Equal(t, map[string]int{"total": 3, "completed": 1, "failed": 0, "rejected": 1, "replayed": 1, "tokensDistributed": 8}, bulk.Summary)

	var users struct {
		Data       []map[string]any
		Pagination struct{ Total int64 }
	}
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/users?search=one@"), nil, &users))
	require.Equal(t, int64(1), users.Pagination.Total)
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/users?page=1&limit=1"), nil, &users))
	require.Equal(t, int64(2), users.Pagination.Total)
	require.Len(t, users.Data, 1)

	// Pools and allocation requests: sandbox requests are approved at once.
	var pools struct {
		Data []struct {
			ID        string
			Available int64
			Allocated int64
		}
	}
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/token-pools"), nil, &pools))
	require.Len(t, pools.Data, 1)
	var req map[string]any
	require.Equal(t, 201, a.JSON(t, http.MethodPost, "/v1/partner/token-pools/request", map[string]any{"amount": 5000, "reason": "more"}, &req))
	require.Equal(t, "APPROVED", req["status"])
	var reqs struct{ Data []map[string]any }
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/token-pools/requests"), nil, &reqs))
	require.Len(t, reqs.Data, 1)

	// Tenancy: B sees none of A's users, actions, pools or transactions.
	var e map[string]any
	require.Equal(t, 404, b.JSON(t, http.MethodGet, u("/v1/partner/users/ext-1"), nil, &e))
	require.Equal(t, 404, b.JSON(t, http.MethodGet, u("/v1/partner/actions/"+first["actionId"].(string)), nil, &e))
	require.Equal(t, 404, b.JSON(t, http.MethodGet, u("/v1/partner/token-pools/"+pools.Data[0].ID+"/balance"), nil, &e))
	var list struct {
		Data       []map[string]any
		Pagination struct{ Total int64 }
	}
	for _, path := range []string{"/v1/partner/users", "/v1/partner/actions", "/v1/partner/token-pools/requests"} {
		require.Equal(t, 200, b.JSON(t, http.MethodGet, u(path), nil, &list))
		require.Equal(t, int64(0), list.Pagination.Total, path)
	}
	require.Equal(t, 200, a.JSON(t, http.MethodGet, u("/v1/partner/transactions?type=REWARD"), nil, &list))
	require.NotEmpty(t, list.Data)
	require.Equal(t, 404, b.JSON(t, http.MethodGet, u("/v1/partner/transactions/"+list.Data[0]["id"].(string)), nil, &e))

	// A's production key sees none of A's sandbox data, and has no pool yet.
	prod := a.InEnvironment(t, "production")
	for _, path := range []string{"/v1/partner/users", "/v1/partner/actions", "/v1/partner/transactions", "/v1/partner/token-pools"} {
		require.Equal(t, 200, prod.JSON(t, http.MethodGet, u(path), nil, &list))
		require.Equal(t, int64(0), list.Pagination.Total, path)
	}
	require.Equal(t, 402, prod.JSON(t, http.MethodPost, "/v1/partner/actions/submit", submitBody("p-1", "5", "ext-1"), &e))
	require.Equal(t, "INSUFFICIENT_POOL", e["code"])
	require.Equal(t, 201, prod.JSON(t, http.MethodPost, "/v1/partner/token-pools/request", map[string]any{"amount": 100}, &req))
	require.Equal(t, "PENDING", req["status"])
}

var nonce atomic.Int64

// u makes a GET path unique, so that two identical reads in the same
// second carry different signatures (the server refuses replays).
func u(path string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%s_n=%d", path, sep, nonce.Add(1))
}
