package app_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/apptest"
)

func TestHealthReadyAndMetrics(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, path)
		require.NotEmpty(t, resp.Header.Get("X-Request-Id"), path)
	}

	srv.NATS.Stop()
	resp, err := http.Get(srv.URL + "/readyz")
	require.NoError(t, err)
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, body["reason"], "nats")
	srv.NATS.Start()
}

func TestUnknownRouteHasContractErrorBody(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	resp, err := http.Get(srv.URL + "/v1/partner/nope")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, "ROUTE_NOT_FOUND", body["code"])
	require.Equal(t, float64(404), body["statusCode"])
	require.Equal(t, resp.Header.Get("X-Request-Id"), body["requestId"])
}
