package httpapi_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

type specRow struct{ method, path, auth string }

func readSpec(t *testing.T) []specRow {
	t.Helper()
	f, err := os.Open("testdata/endpoints.tsv")
	require.NoError(t, err)
	defer f.Close()
	var rows []specRow
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		c := strings.Split(sc.Text(), "\t")
		require.GreaterOrEqual(t, len(c), 3, sc.Text())
		rows = append(rows, specRow{c[0], c[1], c[2]})
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, rows)
	return rows
}

// concrete fills :params with sample values.
func concrete(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "sample1"
		}
	}
	return strings.Join(parts, "/")
}

// TestEveryEndpointIsRoutedWithItsAuthKind drives every row of
// endpoints.tsv: no credentials → 401 MISSING_CREDENTIALS; a signed
// publishable key on "HMAC, secret key" → 403; valid credentials get past
// authentication (unbuilt endpoints answer 501 NOT_IMPLEMENTED only then).
func TestEveryEndpointIsRoutedWithItsAuthKind(t *testing.T) {
	t.Parallel()
	rows := readSpec(t)
	routes := map[httpapi.RouteKey]httpapi.AuthKind{}
	for _, r := range httpapi.Routes() {
		routes[r.Key()] = r.Auth
	}
	require.Len(t, routes, len(rows))
	for _, r := range rows {
		auth, ok := routes[httpapi.RouteKey{Method: r.method, Path: r.path}]
		require.True(t, ok, "%s %s is not routed", r.method, r.path)
		require.Equal(t, r.auth, string(auth), "%s %s", r.method, r.path)
	}

	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	for _, r := range rows {
		path := concrete(r.path)
		name := r.method + " " + r.path

		req, err := http.NewRequest(r.method, srv.URL+path, nil)
		require.NoError(t, err)
		resp := send(t, req)
		if r.auth == string(httpapi.AuthLogin) {
			resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, name)
			continue
		}
		errBody(t, resp, 401, "MISSING_CREDENTIALS")

		var authed *http.Response
		switch httpapi.AuthKind(r.auth) {
		case httpapi.AuthJWT:
			req, err := http.NewRequest(r.method, srv.URL+path, strings.NewReader("{}"))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+p.Token)
			authed = send(t, req)
		case httpapi.AuthWidget:
			authed = p.Widget(t, r.method, path, map[string]any{})
		case httpapi.AuthHMAC:
			authed = p.DoWith(t, p.PublicKey, r.method, path, map[string]any{})
		case httpapi.AuthHMACSecret:
			errBody(t, p.DoWith(t, p.PublicKey, r.method, path, map[string]any{}), 403, "SECRET_KEY_REQUIRED")
			authed = p.Do(t, r.method, path, map[string]any{})
		default:
			t.Fatalf("%s: unknown auth kind %q", name, r.auth)
		}
		raw, err := io.ReadAll(authed.Body)
		authed.Body.Close()
		require.NoError(t, err)
		require.NotContains(t, []int{401, 403, 405, 429}, authed.StatusCode, "%s: %s", name, raw)
		require.NotEmpty(t, authed.Header.Get("X-RateLimit-Limit"), name)
		var body map[string]any
		if authed.StatusCode == http.StatusNotImplemented {
			require.NoError(t, json.Unmarshal(raw, &body))
			require.Equal(t, "NOT_IMPLEMENTED", body["code"], name)
		}
		if authed.StatusCode == http.StatusNotFound {
			require.NoError(t, json.Unmarshal(raw, &body))
			require.NotEqual(t, "ROUTE_NOT_FOUND", body["code"], name)
		}
	}
}
