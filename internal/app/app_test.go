package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/infra/bus"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
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

// Graceful shutdown drains requests and flushes the relay: everything
// committed before the stop is in JetStream when Run returns.
func TestShutdownFlushesTheRelay(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	nt := testenv.NewNATS(t)
	cfg := app.Config{DatabaseURL: db.URL, NATSURL: nt.URL(), NATSReplicas: 1, DataDir: t.TempDir(), Env: "development",
		ShutdownTimeout: 10 * time.Second, ReadWait: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	defer a.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()

	for i := 0; i < 40; i++ {
		_, err := a.Store.Append(ctx, eventstore.Tenant{PartnerID: "p", Environment: "sandbox"}, events.Metadata{}, "note-1", eventstore.ExpectAny, shutdownNote{N: i})
		require.NoError(t, err)
	}
	cancel()
	require.NoError(t, <-done)

	var relayed, head int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT position FROM relay_checkpoints WHERE name = 'jetstream'`).Scan(&relayed))
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT position FROM event_head`).Scan(&head))
	require.GreaterOrEqual(t, head, int64(40))
	require.Equal(t, head, relayed, "everything committed was relayed before Run returned")
	js, err := jetstream.New(nt.Connect(t))
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), a.Bus.Stream)
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	last, err := st.GetMsg(context.Background(), info.State.LastSeq)
	require.NoError(t, err)
	require.Equal(t, strconv.FormatInt(head, 10), last.Header.Get(bus.HeaderPosition), "the stream ends with the last event")
}

type shutdownNote struct {
	N int `json:"n"`
}

func (shutdownNote) EventType() string { return "test.shutdownnote" }

func init() { events.Register[shutdownNote](1) }

func TestProductionRefusesToStartWithoutSecrets(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://x@127.0.0.1:1/x")
	t.Setenv("LEDGER_ENV", "production")
	t.Setenv("LEDGER_MASTER_KEY", "")
	t.Setenv("JWT_SECRET", "")
	_, err := app.FromEnv()
	require.ErrorContains(t, err, "LEDGER_MASTER_KEY")

	t.Setenv("LEDGER_ENV", "staging")
	_, err = app.FromEnv()
	require.ErrorContains(t, err, "LEDGER_ENV")

	t.Setenv("LEDGER_ENV", "development")
	c, err := app.FromEnv()
	require.NoError(t, err)
	require.Equal(t, ":8080", c.ListenAddr)
	require.True(t, filepath.IsAbs(c.DataDir))
}

// Two ledgerd processes on one database: both serve, one relays, and a
// command accepted by either is visible through the other.
func TestTwoReplicasShareOneLedger(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t)
	b := apptest.StartReplica(t, a)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		_, err := srv.Store.Append(ctx, eventstore.Tenant{PartnerID: "p", Environment: "sandbox"}, events.Metadata{}, "note-r", eventstore.ExpectAny, shutdownNote{N: i})
		require.NoError(t, err)
	}
	evs, err := eventstore.ReadStream(ctx, b.Pool, "note-r")
	require.NoError(t, err)
	require.Len(t, evs, 10)
	for i, e := range evs {
		require.Equal(t, int64(i+1), e.StreamVersion)
	}
	rep, err := eventstore.Verify(ctx, a.Pool, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Reason)
	for _, srv := range []*apptest.Server{a, b} {
		resp, err := http.Get(srv.URL + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
}

// With METRICS_ADDR set, /metrics moves off the partner-facing listener.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	t.Parallel()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := free.Addr().String()
	require.NoError(t, free.Close())
	srv := apptest.Start(t, func(c *app.Config) { c.MetricsAddr = addr })

	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the public listener no longer serves metrics")
	resp, err = http.Get(srv.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var body []byte
	require.Eventually(t, func() bool { // the listener opens as Run starts
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return err == nil && resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, string(body), "ledger_relay_lag_events")
	require.Contains(t, string(body), `http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 1`,
		"the public listener's requests are counted on the metrics listener")
}

// The Go profiler answers on the operators' listener and nowhere on the
// partner-facing one, whether METRICS_ADDR is set or not.
func TestPprofOnlyOnTheMetricsListener(t *testing.T) {
	t.Parallel()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := free.Addr().String()
	require.NoError(t, free.Close())
	srv := apptest.Start(t, func(c *app.Config) { c.MetricsAddr = addr })
	plain := apptest.Start(t) // METRICS_ADDR unset: everything on one port

	var body []byte
	require.Eventually(t, func() bool { // the listener opens as Run starts
		resp, err := http.Get("http://" + addr + "/debug/pprof/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return err == nil && resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, string(body), "goroutine")
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	for _, base := range []string{srv.URL, plain.URL} {
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1"} {
			resp, err := http.Get(base + path)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusNotFound, resp.StatusCode, "%s%s on the partner listener", base, path)
		}
	}
}

// A database that cannot be reached is an error that says so, not a panic.
func TestNewFailsCleanlyWithoutADatabase(t *testing.T) {
	t.Parallel()
	cfg := app.Config{
		DatabaseURL: "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2",
		DataDir:     t.TempDir(), Env: "development", ListenAddr: "127.0.0.1:0", NATSReplicas: 1,
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	require.Nil(t, a)
}
