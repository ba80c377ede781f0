package apitest_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apitest"
)

func TestDocumentLoadsAndValidates(t *testing.T) {
	t.Parallel()
	doc, err := apitest.Document()
	require.NoError(t, err)
	require.Equal(t, "3.1.0", doc.OpenAPI)
	require.True(t, doc.IsOpenAPI31OrLater())
}

func TestFindOperationPrefersLiteralSegments(t *testing.T) {
	t.Parallel()
	doc, err := apitest.Document()
	require.NoError(t, err)
	op, err := apitest.FindOperation(doc, "GET", "/v1/partner/campaigns/active?x=1")
	require.NoError(t, err)
	require.Equal(t, "getActiveCampaign", op.Operation.OperationID)
	op, err = apitest.FindOperation(doc, "GET", "/v1/partner/campaigns/cmp_1")
	require.NoError(t, err)
	require.Equal(t, "getCampaign", op.Operation.OperationID)
	require.Equal(t, "cmp_1", op.PathParams["id"])
	_, err = apitest.FindOperation(doc, "PUT", "/v1/partner/campaigns/cmp_1")
	require.Error(t, err)
}

func headers(rateLimited bool) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Request-Id", "req_0123456789abcdef01234567")
	if rateLimited {
		h.Set("X-RateLimit-Limit", "600")
		h.Set("X-RateLimit-Remaining", "599")
		h.Set("X-RateLimit-Reset", "1767225660")
	}
	return h
}

const (
	act  = "act_3f9c2a7e0b6d4e1f8a5c9d2e7b4a1c6f"
	txn  = "txn_8b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e"
	good = `{"actionId":"` + act + `","idempotencyKey":"order-1","status":"COMPLETED","tokensDistributed":50,"transactionIds":["` + txn + `"]}`
)

func TestValidateResponseAcceptsConformingAnswers(t *testing.T) {
	t.Parallel()
	require.NoError(t, apitest.ValidateResponse("POST", "/v1/partner/actions/submit", 200, headers(true), []byte(good)))

	replay := headers(false)
	replay.Set("Idempotent-Replayed", "true")
	require.NoError(t, apitest.ValidateResponse("POST", "/v1/partner/actions/submit", 409, replay, []byte(good)))

	errBody := `{"statusCode":402,"code":"INSUFFICIENT_POOL","error":"Payment Required","message":"no","requestId":"req_0123456789abcdef01234567"}`
	require.NoError(t, apitest.ValidateResponse("POST", "/v1/partner/actions/submit", 402, headers(true), []byte(errBody)))

	require.NoError(t, apitest.ValidateResponse("DELETE", "/v1/partner/keys/key_1", 204, headers(true), nil))

	user := `{"id":"pusr_3f9c2a7e0b6d4e1f8a5c9d2e7b4a1c6f","partnerUserId":"u1","email":null,"metadata":{"any":{"thing":1}},"createdAt":"2026-01-01T00:00:00Z"}`
	require.NoError(t, apitest.ValidateResponse("GET", "/v1/partner/users/u1", 200, headers(true), []byte(user)))

	list := `{"data":[` + user + `],"pagination":{"page":1,"limit":20,"total":1,"hasMore":false}}`
	require.NoError(t, apitest.ValidateResponse("GET", "/v1/partner/users?page=1", 200, headers(true), []byte(list)))
}

func TestValidateResponseCatchesDrift(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		status int
		header http.Header
		body   string
	}{
		"misspelled field": {200, headers(true),
			`{"actionId":"` + act + `","idempotency_key":"order-1","idempotencyKey":"order-1","status":"COMPLETED","tokensDistributed":50,"transactionIds":[]}`},
		"missing field":          {200, headers(true), `{"actionId":"` + act + `","status":"COMPLETED","tokensDistributed":50,"transactionIds":[]}`},
		"fractional tokens":      {200, headers(true), `{"actionId":"` + act + `","idempotencyKey":"k","status":"COMPLETED","tokensDistributed":49.99,"transactionIds":[]}`},
		"unknown status value":   {200, headers(true), `{"actionId":"` + act + `","idempotencyKey":"k","status":"DONE","tokensDistributed":1,"transactionIds":[]}`},
		"undocumented status":    {418, headers(true), good},
		"missing request id":     {200, http.Header{"Content-Type": {"application/json"}, "X-Ratelimit-Limit": {"1"}, "X-Ratelimit-Remaining": {"1"}, "X-Ratelimit-Reset": {"1"}}, good},
		"missing rate limit":     {200, headers(false), good},
		"replay without header":  {409, headers(false), good},
		"error body wrong shape": {402, headers(true), `{"statusCode":402,"message":"no"}`},
	}
	for name, c := range cases {
		err := apitest.ValidateResponse("POST", "/v1/partner/actions/submit", c.status, c.header, []byte(c.body))
		require.Error(t, err, name)
		t.Log(name, ": ", err)
	}
	require.Error(t, apitest.ValidateResponse("DELETE", "/v1/partner/keys/key_1", 204, headers(true), []byte(`{"ok":true}`)))
	require.Error(t, apitest.ValidateResponse("GET", "/v1/partner/nope", 200, headers(true), []byte(`{}`)))
	nested := `{"data":[{"id":"pusr_3f9c2a7e0b6d4e1f8a5c9d2e7b4a1c6f","partnerUserId":"u1","createdAt":"2026-01-01T00:00:00Z","extra":1}],"pagination":{"page":1,"limit":20,"total":1,"hasMore":false}}`
	require.ErrorContains(t, apitest.ValidateResponse("GET", "/v1/partner/users", 200, headers(true), []byte(nested)), "$.data[0].extra")
}
