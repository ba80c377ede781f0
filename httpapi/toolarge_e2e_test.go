package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

// A body over 1 MiB is 413 PAYLOAD_TOO_LARGE, whichever layer reads it
// first: the signature check (HMAC), the handler (JWT) or the login.
func TestOversizedBodiesAre413(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	huge := append(append([]byte(`{"name":"`), bytes.Repeat([]byte("a"), 1<<20)...), `"}`...)
	expect := func(resp *http.Response, method, path string) {
		t.Helper()
		body := check(t, method, path, resp)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s %s: %s", method, path, body)
		var e wireError
		require.NoError(t, json.Unmarshal(body, &e))
		require.Equal(t, "PAYLOAD_TOO_LARGE", e.Code)
		require.Equal(t, http.StatusRequestEntityTooLarge, e.StatusCode)
	}
	expect(p.Do(t, http.MethodPost, "/v1/partner/actions/submit", huge), http.MethodPost, "/v1/partner/actions/submit")
	expect(p.Do(t, http.MethodPost, "/v1/partner/campaigns", huge), http.MethodPost, "/v1/partner/campaigns")
	for _, c := range []struct{ token, path string }{{p.Token, "/v1/partner/keys"}, {"", "/v1/partner/auth/login"}} {
		req, err := http.NewRequest(http.MethodPost, srv.URL+c.path, bytes.NewReader(huge))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		expect(resp, http.MethodPost, c.path)
	}
}
