package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// errBody decodes a contract error body and checks its shape.
func errBody(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, "%s", raw)
	var b map[string]any
	require.NoError(t, json.Unmarshal(raw, &b), "%s", raw)
	require.Equal(t, code, b["code"], "%s", raw)
	require.Equal(t, float64(status), b["statusCode"])
	require.Equal(t, resp.Header.Get("X-Request-Id"), b["requestId"])
	require.NotEmpty(t, b["message"])
}

// passedAuth asserts the request got past authentication (the endpoint
// itself may be unbuilt, 501, or refuse the input).
func passedAuth(t *testing.T, resp *http.Response) {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	require.NotContains(t, []int{401, 403, 404, 405, 429}, resp.StatusCode, "%s", raw)
	require.NotEmpty(t, resp.Header.Get("X-RateLimit-Limit"))
	require.NotEmpty(t, resp.Header.Get("X-RateLimit-Remaining"))
	require.NotEmpty(t, resp.Header.Get("X-RateLimit-Reset"))
}

func send(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

func TestSigningVariants(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")

	// GET with a raw query string, signed exactly as sent.
	passedAuth(t, p.Do(t, http.MethodGet, "/v1/partner/users?page=1&limit=5&z=a%20b&a=%7E", nil))
	// The same query re-ordered or re-encoded is a different request.
	now := srv.Now().Unix()
	req := srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users?a=%7E&page=1", nil, now)
	req.URL.RawQuery = "page=1&a=%7E"
	errBody(t, send(t, req), 401, "INVALID_SIGNATURE")
	req = srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users?a=~", nil, now)
	req.URL.RawQuery = "a=%7E"
	errBody(t, send(t, req), 401, "INVALID_SIGNATURE")

	// POST with a body, an empty body, and a non-ASCII body.
	passedAuth(t, p.Do(t, http.MethodPost, "/v1/partner/users", map[string]any{"externalId": "u-1"}))
	passedAuth(t, p.Do(t, http.MethodPost, "/v1/partner/users", nil))
	passedAuth(t, p.Do(t, http.MethodPost, "/v1/partner/users", []byte(`{"externalId":"Zoë ☃ 東京"}`)))

	// A body altered after signing, or signed with a lower-case method.
	req = srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodPost, "/v1/partner/users", []byte(`{"a":1}`), now)
	req.Body = io.NopCloser(strings.NewReader(`{"a":2}`))
	errBody(t, send(t, req), 401, "INVALID_SIGNATURE")
	req = srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodPost, "/v1/partner/users", nil, now)
	req.Header.Set("X-Signature", httpapi.Sign(p.HMACSecret, req.Header.Get("X-Timestamp"), "post", "/v1/partner/users", nil))
	errBody(t, send(t, req), 401, "INVALID_SIGNATURE")
	// Upper-case hex is not the contract's lowercase hex.
	req = srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users", nil, now+1)
	req.Header.Set("X-Signature", strings.ToUpper(req.Header.Get("X-Signature")))
	errBody(t, send(t, req), 401, "INVALID_SIGNATURE")
	// The HMAC key is the secret's ASCII text, not the bytes it decodes to.
	req = srv.SignedRequest(t, p.SecretKey, "", http.MethodGet, "/v1/partner/users", nil, now+2)
	errBody(t, send(t, req), 401, "INVALID_SIGNATURE")

	// Missing pieces.
	for _, h := range []string{"X-Partner-Key", "X-Timestamp", "X-Signature"} {
		req = srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users", nil, now+3)
		req.Header.Del(h)
		errBody(t, send(t, req), 401, "MISSING_CREDENTIALS")
	}
	req = srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users", nil, now)
	req.Header.Set("X-Timestamp", "soon")
	errBody(t, send(t, req), 401, "TIMESTAMP_OUT_OF_RANGE")
}

func TestTimestampWindowEdges(t *testing.T) {
	t.Parallel()
	pinned := time.Unix(1_800_000_000, 0)
	srv := apptest.Start(t, func(c *app.Config) { c.Now = func() time.Time { return pinned } })
	p := srv.NewPartner(t, "sandbox")
	at := func(ts int64) *http.Response {
		return send(t, srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users", nil, ts))
	}
	passedAuth(t, at(pinned.Unix()-300))
	passedAuth(t, at(pinned.Unix()+300))
	errBody(t, at(pinned.Unix()-301), 401, "TIMESTAMP_OUT_OF_RANGE")
	errBody(t, at(pinned.Unix()+301), 401, "TIMESTAMP_OUT_OF_RANGE")
}

func TestReplayIsRefused(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	ts := srv.Now().Unix()
	body := []byte(`{"externalId":"replay"}`)
	passedAuth(t, send(t, srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodPost, "/v1/partner/users", body, ts)))
	errBody(t, send(t, srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodPost, "/v1/partner/users", body, ts)), 401, "REPLAYED_REQUEST")

	// The refusal is in PostgreSQL, so a second process on the same
	// database refuses it too.
	a2, err := app.New(context.Background(), app.Config{
		DatabaseURL: srv.DB.URL, NATSURL: srv.NATS.URL(), NATSReplicas: 1, DataDir: srv.Config.DataDir,
		Env: "development", LogLevel: "warn", ReadWait: 5 * time.Second, DisableBackground: true,
	}, nil)
	require.NoError(t, err)
	defer a2.Close()
	second := httptest.NewServer(a2.Handler)
	defer second.Close()
	ts++
	req := srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users", nil, ts)
	passedAuth(t, send(t, req))
	req = srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users", nil, ts)
	req.URL.Host = strings.TrimPrefix(second.URL, "http://")
	errBody(t, send(t, req), 401, "REPLAYED_REQUEST")
}

func TestWrongKeys(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	a := srv.NewPartner(t, "sandbox")
	b := srv.NewPartner(t, "sandbox")
	now := srv.Now().Unix()
	for _, key := range []string{
		"sk_test_" + strings.Repeat("0", 64),                    // well-formed, unknown
		"sk_test_abc",                                           // malformed
		"sk_" + a.SecretKey[8:],                                 // no environment
		strings.Replace(a.SecretKey, "sk_test_", "sk_live_", 1), // right body, wrong environment
		strings.ToUpper(a.SecretKey),
	} {
		errBody(t, send(t, srv.SignedRequest(t, key, a.HMACSecret, http.MethodGet, "/v1/partner/users", nil, now)), 401, "INVALID_KEY")
	}
	// Another partner's hmacSecret does not sign for this key.
	errBody(t, send(t, srv.SignedRequest(t, a.SecretKey, b.HMACSecret, http.MethodGet, "/v1/partner/users", nil, now)), 401, "INVALID_SIGNATURE")
}

func TestDeactivatedExpiredAndRevokedKeys(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	path := "/v1/partner/keys/" + p.KeyID
	patch := func(body string) {
		t.Helper()
		var out map[string]any
		require.Equal(t, http.StatusOK, srv.PortalJSON(t, p.Token, http.MethodPatch, path, json.RawMessage(body), &out), out)
	}
	passedAuth(t, p.Do(t, http.MethodGet, "/v1/partner/users", nil))

	patch(`{"isActive": false}`)
	errBody(t, p.Do(t, http.MethodGet, "/v1/partner/users", nil), 401, "INVALID_KEY")
	errBody(t, p.Widget(t, http.MethodGet, "/v1/partner/config", nil), 401, "INVALID_KEY")
	patch(`{"isActive": true}`)
	passedAuth(t, p.Do(t, http.MethodGet, "/v1/partner/users", nil))

	patch(`{"expiresAt": "` + srv.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + `"}`)
	errBody(t, p.Do(t, http.MethodGet, "/v1/partner/users", nil), 401, "INVALID_KEY")
	patch(`{"expiresAt": null, "name": "renamed"}`)
	var rec map[string]any
	require.Equal(t, http.StatusOK, srv.PortalJSON(t, p.Token, http.MethodGet, path, nil, &rec))
	require.Equal(t, "renamed", rec["name"])
	require.Nil(t, rec["expiresAt"])
	passedAuth(t, p.Do(t, http.MethodGet, "/v1/partner/users", nil))

	var bad map[string]any
	require.Equal(t, http.StatusBadRequest, srv.PortalJSON(t, p.Token, http.MethodPatch, path, json.RawMessage(`{"secretKey":"x"}`), &bad))
	require.Equal(t, "VALIDATION_ERROR", bad["code"])

	require.Equal(t, http.StatusNoContent, srv.PortalJSON(t, p.Token, http.MethodDelete, path, nil, nil))
	errBody(t, p.Do(t, http.MethodGet, "/v1/partner/users", nil), 401, "INVALID_KEY")
	require.Equal(t, http.StatusNotFound, srv.PortalJSON(t, p.Token, http.MethodGet, path, nil, nil))
	require.Equal(t, http.StatusNotFound, srv.PortalJSON(t, p.Token, http.MethodDelete, path, nil, nil))
}

func TestPublishableKeysAndWidgetCORS(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	passedAuth(t, p.DoWith(t, p.PublicKey, http.MethodGet, "/v1/partner/users", nil))
	errBody(t, p.DoWith(t, p.PublicKey, http.MethodPost, "/v1/partner/users", map[string]any{"externalId": "x"}), 403, "SECRET_KEY_REQUIRED")

	// Widget: publishable key only, no signature needed.
	passedAuth(t, p.Widget(t, http.MethodGet, "/v1/partner/config", nil))
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/partner/config", nil)
	require.NoError(t, err)
	req.Header.Set("X-Partner-Key", p.SecretKey)
	errBody(t, send(t, req), 403, "PUBLISHABLE_KEY_REQUIRED")
	req.Header.Del("X-Partner-Key")
	req.Header.Set("Origin", "https://shop.example")
	resp := send(t, req)
	require.Equal(t, "https://shop.example", resp.Header.Get("Access-Control-Allow-Origin"))
	errBody(t, resp, 401, "MISSING_CREDENTIALS")

	// A browser preflight from another origin, then the real call.
	pre, err := http.NewRequest(http.MethodOptions, srv.URL+"/v1/partner/donations/create-link", nil)
	require.NoError(t, err)
	pre.Header.Set("Origin", "https://shop.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "content-type, x-partner-key")
	resp = send(t, pre)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "https://shop.example", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	require.Contains(t, strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "x-partner-key")
	req, err = http.NewRequest(http.MethodPost, srv.URL+"/v1/partner/donations/create-link", strings.NewReader(`{"amount":2500}`))
	require.NoError(t, err)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("X-Partner-Key", p.PublicKey)
	resp = send(t, req)
	require.Equal(t, "https://shop.example", resp.Header.Get("Access-Control-Allow-Origin"))
	passedAuth(t, resp)
}

func TestApprovalSuspensionAndTier(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, func(c *app.Config) { c.RateLimits = map[string]int{"STANDARD": 100, "ENTERPRISE": 1000} })
	sb := srv.NewPartner(t, "sandbox")
	// A production key of the same, not yet approved, partner.
	var live struct {
		PublicKey, SecretKey, HMACSecret, PartnerID string
	}
	require.Equal(t, http.StatusCreated, srv.PortalJSON(t, sb.Token, http.MethodPost, "/v1/partner/keys",
		map[string]string{"name": "live", "environment": "production"}, &live))
	require.Equal(t, sb.PartnerID, live.PartnerID)
	require.Regexp(t, `^pk_live_[0-9a-f]{64}$`, live.PublicKey)
	require.Regexp(t, `^sk_live_[0-9a-f]{64}$`, live.SecretKey)
	prod := &apptest.Partner{Srv: srv, PartnerID: live.PartnerID, Env: "production", SecretKey: live.SecretKey, PublicKey: live.PublicKey, HMACSecret: live.HMACSecret}

	errBody(t, prod.Do(t, http.MethodGet, "/v1/partner/users", nil), 403, "PARTNER_NOT_APPROVED")
	passedAuth(t, sb.Do(t, http.MethodGet, "/v1/partner/users", nil))

	ctx, meta := context.Background(), events.Metadata{Actor: "test"}
	res, err := srv.Ledger.ApprovePartner(ctx, meta, sb.PartnerID)
	require.NoError(t, err)
	srv.WaitAccounts(t, res.Position)
	resp := prod.Do(t, http.MethodGet, "/v1/partner/users", nil)
	require.Equal(t, "100", resp.Header.Get("X-RateLimit-Limit"))
	passedAuth(t, resp)

	res, err = srv.Ledger.SetPartnerTier(ctx, meta, sb.PartnerID, "ENTERPRISE")
	require.NoError(t, err)
	srv.WaitAccounts(t, res.Position)
	resp = prod.Do(t, http.MethodGet, "/v1/partner/users", nil)
	require.Equal(t, "1000", resp.Header.Get("X-RateLimit-Limit"))
	passedAuth(t, resp)
	_, err = srv.Ledger.SetPartnerTier(ctx, meta, sb.PartnerID, "GOLD")
	require.Equal(t, "VALIDATION_ERROR", eventstore.AsError(err).Code)

	res, err = srv.Ledger.SuspendPartner(ctx, meta, sb.PartnerID, "test")
	require.NoError(t, err)
	srv.WaitAccounts(t, res.Position)
	errBody(t, prod.Do(t, http.MethodGet, "/v1/partner/users", nil), 403, "PARTNER_SUSPENDED")
	errBody(t, sb.Do(t, http.MethodGet, "/v1/partner/users", nil), 403, "PARTNER_SUSPENDED")
	errBody(t, sb.Widget(t, http.MethodGet, "/v1/partner/config", nil), 403, "PARTNER_SUSPENDED")

	_, err = srv.Ledger.ApprovePartner(ctx, meta, "ptr_"+strings.Repeat("0", 32))
	require.Equal(t, "PARTNER_NOT_FOUND", eventstore.AsError(err).Code)
}

func TestPrincipalEnvironmentAndPartnerIsolation(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	a := srv.NewPartner(t, "sandbox")
	b := srv.NewPartner(t, "production")

	// The environment comes from the key, the partner from the key's record.
	ts := srv.Now().Unix()
	for _, c := range []struct {
		p   *apptest.Partner
		key string
		env string
	}{{a, a.SecretKey, "sandbox"}, {a, a.PublicKey, "sandbox"}, {b, b.SecretKey, "production"}, {b, b.PublicKey, "production"}} {
		// A key pair shares its hmacSecret, so vary the timestamp: the same
		// signed request under the other key of the pair is a replay.
		ts++
		req := srv.SignedRequest(t, c.key, c.p.HMACSecret, http.MethodGet, "/v1/partner/users?partnerId="+a.PartnerID, nil, ts)
		req.RequestURI = "/v1/partner/users?partnerId=" + a.PartnerID
		rec := httptest.NewRecorder()
		pr, err := srv.Auth.Authenticate(rec, req, httpapi.AuthHMAC)
		require.NoError(t, err)
		require.Equal(t, c.env, pr.Environment)
		require.Equal(t, c.p.PartnerID, pr.PartnerID, "the tenant never comes from the request")
		require.Equal(t, strings.HasPrefix(c.key, "sk_"), pr.SecretKey)
	}

	// Partner A cannot reach partner B's key records.
	path := "/v1/partner/keys/" + b.KeyID
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		var out map[string]any
		require.Equal(t, http.StatusNotFound, srv.PortalJSON(t, a.Token, m, path, nil, &out), m)
		require.Equal(t, "KEY_NOT_FOUND", out["code"])
	}
	require.Equal(t, http.StatusNotFound, srv.PortalJSON(t, a.Token, http.MethodPatch, path, map[string]any{"isActive": false}, nil))
	var list struct {
		Data []map[string]any `json:"data"`
	}
	require.Equal(t, http.StatusOK, srv.PortalJSON(t, a.Token, http.MethodGet, "/v1/partner/keys", nil, &list))
	require.Len(t, list.Data, 1)
	require.Equal(t, a.KeyID, list.Data[0]["id"])
	// B's key still works: A's attempts changed nothing.
	passedAuth(t, b.Do(t, http.MethodGet, "/v1/partner/users", nil))
}

func TestLoginCreateKeySignedRequestEndToEnd(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	_, email, password := srv.CreatePortalUser(t)

	var bad map[string]any
	require.Equal(t, http.StatusUnauthorized, srv.PortalJSON(t, "", http.MethodPost, "/v1/partner/auth/login",
		map[string]string{"email": email, "password": "wrong-password"}, &bad))
	require.Equal(t, "INVALID_CREDENTIALS", bad["code"])
	require.Equal(t, http.StatusUnauthorized, srv.PortalJSON(t, "", http.MethodPost, "/v1/partner/auth/login",
		map[string]string{"email": "nobody@example.com", "password": password}, &bad))

	var login map[string]any
	require.Equal(t, http.StatusOK, srv.PortalJSON(t, "", http.MethodPost, "/v1/partner/auth/login",
		map[string]string{"email": strings.ToUpper(email), "password": password}, &login))
	token, _ := login["accessToken"].(string)
	require.NotEmpty(t, token)
	require.Equal(t, "Bearer", login["tokenType"])
	require.NotEmpty(t, login["expiresAt"])
	require.Nil(t, login["partner"])
	require.Nil(t, login["publishableKey"])

	// JWT failures.
	require.Equal(t, http.StatusUnauthorized, srv.PortalJSON(t, "", http.MethodGet, "/v1/partner/auth/me", nil, &bad))
	require.Equal(t, "MISSING_CREDENTIALS", bad["code"])
	require.Equal(t, http.StatusUnauthorized, srv.PortalJSON(t, token+"x", http.MethodGet, "/v1/partner/auth/me", nil, &bad))
	require.Equal(t, "INVALID_TOKEN", bad["code"])
	expired := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "sirgiving-ledger", "sub": "usr_x", "exp": time.Now().Add(-time.Minute).Unix()})
	es, err := expired.SignedString(srv.JWTSecret)
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, srv.PortalJSON(t, es, http.MethodGet, "/v1/partner/auth/me", nil, &bad))
	require.Equal(t, "INVALID_TOKEN", bad["code"])
	require.Equal(t, http.StatusNotFound, srv.PortalJSON(t, token, http.MethodGet, "/v1/partner/keys/partner-info", nil, &bad))

	// Validation.
	require.Equal(t, http.StatusBadRequest, srv.PortalJSON(t, token, http.MethodPost, "/v1/partner/keys",
		map[string]string{"name": "x", "environment": "staging"}, &bad))
	require.Equal(t, "VALIDATION_ERROR", bad["code"])

	var key map[string]any
	require.Equal(t, http.StatusCreated, srv.PortalJSON(t, token, http.MethodPost, "/v1/partner/keys",
		map[string]string{"name": "backend", "environment": "sandbox"}, &key))
	require.Regexp(t, `^key_[0-9a-f]{32}$`, key["id"])
	require.Regexp(t, `^ptr_[0-9a-f]{32}$`, key["partnerId"])
	require.Regexp(t, `^pk_test_[0-9a-f]{64}$`, key["publicKey"])
	require.Regexp(t, `^sk_test_[0-9a-f]{64}$`, key["secretKey"])
	require.Regexp(t, `^[0-9a-f]{64}$`, key["hmacSecret"])
	require.Equal(t, "backend", key["name"])
	require.Equal(t, "sandbox", key["environment"])
	require.Equal(t, true, key["isActive"])
	require.Contains(t, key, "expiresAt")
	require.Contains(t, key, "lastUsedAt")
	require.NotEmpty(t, key["createdAt"])
	partnerID, keyID := key["partnerId"].(string), key["id"].(string)
	sk, pk, hs := key["secretKey"].(string), key["publicKey"].(string), key["hmacSecret"].(string)

	var me map[string]any
	require.Equal(t, http.StatusOK, srv.PortalJSON(t, token, http.MethodGet, "/v1/partner/auth/me", nil, &me))
	require.Equal(t, pk, me["publishableKey"])
	partner, _ := me["partner"].(map[string]any)
	require.Equal(t, partnerID, partner["id"])
	require.Equal(t, "PENDING_APPROVAL", partner["status"])
	require.Equal(t, "STANDARD", partner["tier"])
	require.Equal(t, email, me["user"].(map[string]any)["email"])
	var info map[string]any
	require.Equal(t, http.StatusOK, srv.PortalJSON(t, token, http.MethodGet, "/v1/partner/keys/partner-info", nil, &info))
	require.Equal(t, partnerID, info["id"])

	// A signed request with the new key works at once (read-your-writes).
	ts := srv.Now().Unix()
	passedAuth(t, send(t, srv.SignedRequest(t, sk, hs, http.MethodGet, "/v1/partner/users?page=1", nil, ts)))

	// Later reads never show the secrets; lastUsedAt appears after a flush.
	require.Eventually(t, func() bool {
		var rec map[string]any
		resp := getRaw(t, srv, token, "/v1/partner/keys/"+keyID, &rec)
		require.NotContains(t, resp, sk)
		require.NotContains(t, resp, hs)
		require.NotContains(t, rec, "secretKey")
		require.NotContains(t, rec, "hmacSecret")
		require.Equal(t, sk[:16], rec["secretKeyPrefix"])
		return rec["lastUsedAt"] != nil
	}, 30*time.Second, 200*time.Millisecond)

	// Secrets are not at rest in the clear anywhere in the event store.
	var n int
	require.NoError(t, srv.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM events WHERE payload::text LIKE '%'||$1||'%' OR payload::text LIKE '%'||$2||'%'`, sk[8:], hs).Scan(&n))
	require.Zero(t, n)

	// The first sandbox key provisioned one sandbox pool; a second one does not.
	require.Equal(t, http.StatusCreated, srv.PortalJSON(t, token, http.MethodPost, "/v1/partner/keys",
		map[string]string{"name": "second", "environment": "sandbox"}, nil))
	rows, err := srv.Pool.Query(context.Background(),
		`SELECT stream_id, environment, payload::text FROM events WHERE event_type = 'pool.provisioned' AND partner_id = $1`, partnerID)
	require.NoError(t, err)
	type pool struct{ stream, env, payload string }
	var pools []pool
	for rows.Next() {
		var p pool
		require.NoError(t, rows.Scan(&p.stream, &p.env, &p.payload))
		pools = append(pools, p)
	}
	require.NoError(t, rows.Err())
	require.Len(t, pools, 1)
	require.Equal(t, "sandbox", pools[0].env)
	var pp events.PoolProvisioned
	require.NoError(t, json.Unmarshal([]byte(pools[0].payload), &pp))
	require.Equal(t, "pool-"+pp.PoolID, pools[0].stream)
	require.Regexp(t, `^pool_[0-9a-f]{32}$`, pp.PoolID)
	require.Equal(t, int64(1_000_000), pp.Allocated)
	require.Equal(t, int64(100_000), pp.LowBalanceThreshold)
	require.Equal(t, "Sandbox pool", pp.Name)
}

func getRaw(t *testing.T, srv *apptest.Server, token, path string, out any) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp := send(t, req)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	require.NoError(t, json.Unmarshal(raw, out))
	return string(raw)
}

func TestEmailIsUniqueUnderConcurrency(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := "Same@Example.com"
			if i%2 == 1 {
				email = "same@example.com"
			}
			_, _, errs[i] = srv.Ledger.CreatePortalUser(context.Background(), events.Metadata{}, email, "password-123")
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			require.Equal(t, "EMAIL_TAKEN", eventstore.AsError(err).Code)
		}
	}
	require.Equal(t, 1, ok)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, func(c *app.Config) { c.RateLimits = map[string]int{"STANDARD": 3} })
	p := srv.NewPartner(t, "sandbox") // login and key creation are portal calls of the user, not the partner
	for i := 2; i >= 0; i-- {
		resp := p.Do(t, http.MethodGet, "/v1/partner/users", nil)
		require.Equal(t, "3", resp.Header.Get("X-RateLimit-Limit"), "%d %v", resp.StatusCode, resp.Header)
		require.Equal(t, strconv.Itoa(i), resp.Header.Get("X-RateLimit-Remaining"))
		reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64)
		require.NoError(t, err)
		require.Greater(t, reset, time.Now().Unix()-1)
		passedAuth(t, resp)
	}
	resp := p.Do(t, http.MethodGet, "/v1/partner/users", nil)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
	errBody(t, resp, 429, "RATE_LIMITED")
}

// A request refused with 429 can be sent again unchanged once the window
// resets (its signature was not spent), and a replay of an admitted
// request is refused without spending the partner's allowance.
func TestRateLimitedRequestCanBeResentUnchanged(t *testing.T) {
	t.Parallel()
	var skew atomic.Int64
	srv := apptest.Start(t, func(c *app.Config) {
		c.RateLimits = map[string]int{"STANDARD": 2}
		c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	p := srv.NewPartner(t, "sandbox")
	ts := srv.Now().Unix()
	signed := func(path string) *http.Request {
		return srv.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, path, nil, ts)
	}
	passedAuth(t, send(t, signed("/v1/partner/users?page=1")))
	replay := send(t, signed("/v1/partner/users?page=1"))
	require.Equal(t, "1", replay.Header.Get("X-RateLimit-Remaining"), "a replay spends nothing")
	errBody(t, replay, 401, "REPLAYED_REQUEST")
	passedAuth(t, send(t, signed("/v1/partner/users?page=2")))
	errBody(t, send(t, signed("/v1/partner/users?page=3")), 429, "RATE_LIMITED")

	skew.Store(int64(61 * time.Second)) // the next minute; ts is still inside ±300 s
	passedAuth(t, send(t, signed("/v1/partner/users?page=3")))
}

// Portal password hashes never enter the immutable event log in the clear:
// they are sealed under the master key, and login still works.
func TestPasswordHashIsSealedInTheEventLog(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	userID, email, password := srv.CreatePortalUser(t)
	evs, err := eventstore.ReadStream(context.Background(), srv.Pool, ledger.PortalUserStream(userID))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, 2, evs[0].SchemaVersion)
	require.NotContains(t, string(evs[0].Payload), "$2a$", "no bcrypt hash in the log")
	require.NotContains(t, string(evs[0].Payload), "passwordHash")
	require.NotEmpty(t, srv.Login(t, email, password))
}
