package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

// FuzzRoutes sends arbitrary bytes as the path parameters, a query and
// the body of every route of endpoints.tsv, authenticated as the route
// asks, to the whole service in-process. Whatever the bytes, the answer is
// the caller's (DESIGN promise 9): never a 5xx (routes without a handler
// answer 501 by design), always the contract's error body with a code;
// and a good signed submit by another partner, sent meanwhile, completes.
// Its seeds run with go test; `make fuzz FUZZ=FuzzRoutes` explores.
func FuzzRoutes(f *testing.F) {
	srv := apptest.Start(f)
	fuzzer := srv.NewPartner(f, "sandbox")
	bystander := srv.NewPartner(f, "sandbox")
	// Enough tokens that a long `make fuzz` never runs the bystander's
	// pool dry (sandbox allocations are approved at once).
	require.Equal(f, http.StatusCreated, bystander.JSON(f, http.MethodPost, "/v1/partner/token-pools/request",
		map[string]any{"amount": 1_000_000_000_000, "reason": "fuzz bystander"}, nil))
	routes := httpapi.Routes()
	handled := httpapi.Handlers(httpapi.HandlerDeps{})

	seeds := []struct {
		param string
		body  []byte
	}{
		{"\xff", []byte(`{"ammount":"1e2","amount":"+5"}`)},
		{"a\x00b\x01", []byte("{\"name\":\"\xff\",\"metadata\":{\"k\x00\":1}}")},
		{strings.Repeat("z", 300), []byte(`[]`)},
		{"act_0123456789abcdef0123456789abcdef", []byte(`{"stakeholders":[{"role":1}],"amount":"00010"}`)},
		{"../%2e%2e/x", []byte("\x00\xff{")},
	}
	for i := range routes {
		s := seeds[i%len(seeds)]
		f.Add(uint8(i), s.param, s.body)
	}

	var n atomic.Int64
	f.Fuzz(func(t *testing.T, route uint8, param string, body []byte) {
		rt := routes[int(route)%len(routes)]
		path := rt.Path
		for _, seg := range strings.Split(rt.Path, "/") {
			if strings.HasPrefix(seg, ":") {
				path = strings.Replace(path, seg, url.PathEscape(param), 1)
			}
		}
		q := url.QueryEscape(param)
		path += "?search=" + q + "&partnerUserId=" + q + "&status=" + q + "&from=" + q + "&page=" + q

		// The bystander's submit runs while the fuzzed request does.
		key := fmt.Sprintf("bystander-%d", n.Add(1))
		good, err := json.Marshal(submitBody(key, "3", "bystander-user"))
		require.NoError(t, err)
		goodReq := srv.SignedRequest(t, bystander.SecretKey, bystander.HMACSecret, http.MethodPost, "/v1/partner/actions/submit", good, srv.Now().Unix())
		type answer struct {
			status int
			body   []byte
			err    error
		}
		done := make(chan answer, 1)
		go func() {
			resp, err := http.DefaultClient.Do(goodReq)
			if err != nil {
				done <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- answer{resp.StatusCode, b, err}
		}()

		resp := fuzzRequest(t, srv, fuzzer, rt, path, body)
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		_, hasHandler := handled[rt.Key()]
		if resp.StatusCode == http.StatusNotImplemented {
			require.False(t, hasHandler, "%s %s: %s", rt.Method, path, raw)
		} else {
			require.Less(t, resp.StatusCode, 500, "%s %s: %s", rt.Method, path, raw)
		}
		if resp.StatusCode >= 400 {
			var e struct {
				StatusCode int    `json:"statusCode"`
				Code       string `json:"code"`
				RequestID  string `json:"requestId"`
			}
			require.NoError(t, json.Unmarshal(raw, &e), "%s %s: %s", rt.Method, path, raw)
			require.Equal(t, resp.StatusCode, e.StatusCode, "%s", raw)
			require.NotEmpty(t, e.Code, "%s", raw)
			require.Equal(t, resp.Header.Get("X-Request-Id"), e.RequestID)
		}

		a := <-done
		require.NoError(t, a.err)
		require.Equal(t, http.StatusOK, a.status, "the bystander's submit: %s", a.body)
		var out struct {
			IdempotencyKey string `json:"idempotencyKey"`
			Status         string `json:"status"`
		}
		require.NoError(t, json.Unmarshal(a.body, &out))
		require.Equal(t, key, out.IdempotencyKey)
		require.Equal(t, "COMPLETED", out.Status)
	})
}

// fuzzRequest sends body to path authenticated as rt requires.
func fuzzRequest(t *testing.T, srv *apptest.Server, p *apptest.Partner, rt httpapi.Route, path string, body []byte) *http.Response {
	t.Helper()
	switch rt.Auth {
	case httpapi.AuthHMAC, httpapi.AuthHMACSecret:
		return p.Do(t, rt.Method, path, body)
	case httpapi.AuthWidget:
		return p.Widget(t, rt.Method, path, body)
	}
	req, err := http.NewRequest(rt.Method, srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if rt.Auth == httpapi.AuthJWT {
		req.Header.Set("Authorization", "Bearer "+p.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}
