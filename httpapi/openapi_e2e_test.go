package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apitest"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

// check reads resp, validates it against the document and returns the body.
func check(t *testing.T, method, path string, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	apitest.CheckResponse(t, method, path, resp.StatusCode, resp.Header, b)
	return b
}

func portal(t *testing.T, srv *apptest.Server, token, method, path string, body any) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// TestAuthenticatedResponsesMatchOpenAPI drives the endpoints that work
// today through the real onboarding flow and checks every answer,
// successes and errors, against the document.
func TestAuthenticatedResponsesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")

	// Portal (JWT).
	resp := portal(t, srv, "", "POST", "/v1/partner/auth/login", map[string]string{"email": p.Email, "password": p.Password})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	check(t, "POST", "/v1/partner/auth/login", resp)
	resp = portal(t, srv, "", "POST", "/v1/partner/auth/login", map[string]string{"email": p.Email, "password": "wrong"})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	check(t, "POST", "/v1/partner/auth/login", resp)

	for _, path := range []string{"/v1/partner/auth/me", "/v1/partner/keys", "/v1/partner/keys/partner-info", "/v1/partner/keys/" + p.KeyID} {
		resp := portal(t, srv, p.Token, "GET", path, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		check(t, "GET", path, resp)
	}
	resp = portal(t, srv, p.Token, "POST", "/v1/partner/keys", map[string]string{"name": "second", "environment": "sandbox"})
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var created struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(check(t, "POST", "/v1/partner/keys", resp), &created))
	resp = portal(t, srv, p.Token, "POST", "/v1/partner/keys", map[string]string{"name": "bad", "environment": "staging"})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	check(t, "POST", "/v1/partner/keys", resp)
	resp = portal(t, srv, p.Token, "PATCH", "/v1/partner/keys/"+created.ID, map[string]any{"name": "renamed", "isActive": false})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	check(t, "PATCH", "/v1/partner/keys/"+created.ID, resp)
	resp = portal(t, srv, p.Token, "DELETE", "/v1/partner/keys/"+created.ID, nil)
	require.Less(t, resp.StatusCode, 300)
	check(t, "DELETE", "/v1/partner/keys/"+created.ID, resp)
	resp = portal(t, srv, p.Token, "GET", "/v1/partner/keys/key_00000000000000000000000000000000", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	check(t, "GET", "/v1/partner/keys/key_00000000000000000000000000000000", resp)

	// Widget and HMAC: whatever each answers today (200 or 501), with a
	// signed or publishable key, must be documented.
	check(t, "GET", "/v1/partner/config", p.Widget(t, "GET", "/v1/partner/config", nil))
	for _, path := range []string{"/v1/partner/token-pools", "/v1/partner/users?page=1&limit=5", "/v1/partner/dashboard/summary"} {
		check(t, "GET", path, p.Do(t, "GET", path, nil))
	}
	resp = p.DoWith(t, p.PublicKey, "POST", "/v1/partner/users", map[string]string{"partnerUserId": "u1"})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	check(t, "POST", "/v1/partner/users", resp)
}

// TestWebhookResponsesMatchOpenAPI registers, tests, lists and deletes a
// webhook and checks each answer against the document.
func TestWebhookResponsesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")

	resp := p.Do(t, "POST", "/v1/partner/webhooks", map[string]any{"url": srv.URL + "/hook", "description": "d", "eventTypes": []string{"action.completed"}})
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var wh struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(check(t, "POST", "/v1/partner/webhooks", resp), &wh))

	resp = p.Do(t, "POST", "/v1/partner/webhooks/"+wh.ID+"/test", nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	var queued struct {
		DeliveryID string `json:"deliveryId"`
	}
	require.NoError(t, json.Unmarshal(check(t, "POST", "/v1/partner/webhooks/"+wh.ID+"/test", resp), &queued))

	for _, path := range []string{"/v1/partner/webhooks", "/v1/partner/webhooks/" + wh.ID + "/deliveries", "/v1/partner/dashboard/webhooks/health"} {
		resp := p.Do(t, "GET", path, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		check(t, "GET", path, resp)
	}
	retry := "/v1/partner/webhooks/" + wh.ID + "/deliveries/" + queued.DeliveryID + "/retry"
	check(t, "POST", retry, p.Do(t, "POST", retry, nil))

	resp = p.Do(t, "POST", "/v1/partner/webhooks", map[string]any{"url": "not a url"})
	require.GreaterOrEqual(t, resp.StatusCode, 400)
	check(t, "POST", "/v1/partner/webhooks", resp)

	resp = p.Do(t, "DELETE", "/v1/partner/webhooks/"+wh.ID, nil)
	require.Less(t, resp.StatusCode, 300)
	check(t, "DELETE", "/v1/partner/webhooks/"+wh.ID, resp)
}
