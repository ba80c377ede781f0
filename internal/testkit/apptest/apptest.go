// Package apptest starts the whole service in-process for end-to-end
// tests: its own PostgreSQL database, its own embedded JetStream server,
// the relay and projectors running, and HTTP on a loopback port.
package apptest

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
)

// Server is a running service owned by one test.
type Server struct {
	*app.App
	URL  string
	DB   *testenv.DB
	NATS *testenv.NATS
}

// Option adjusts the configuration before start.
type Option func(*app.Config)

// Start runs the service for t and stops it gracefully when t ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return start(t, testenv.NewDB(t), testenv.NewNATS(t), opts...)
}

// StartReplica runs a second ledgerd process against primary's database
// and NATS server, with the same secrets, as a load-balanced replica
// would: for tests of guarantees that must hold across processes.
func StartReplica(t testing.TB, primary *Server, opts ...Option) *Server {
	t.Helper()
	shared := func(c *app.Config) {
		c.MasterKey = hex.EncodeToString(primary.MasterKey)
		c.JWTSecret = hex.EncodeToString(primary.JWTSecret)
	}
	return start(t, primary.DB, primary.NATS, append([]Option{shared}, opts...)...)
}

func start(t testing.TB, db *testenv.DB, nt *testenv.NATS, opts ...Option) *Server {
	t.Helper()
	cfg := app.Config{
		DatabaseURL:           db.URL,
		NATSURL:               nt.URL(),
		NATSReplicas:          1,
		ListenAddr:            "127.0.0.1:0",
		DataDir:               t.TempDir(),
		Env:                   "development",
		LogLevel:              "warn",
		ShutdownTimeout:       10 * time.Second,
		ReadWait:              5 * time.Second,
		AllowLoopbackWebhooks: true,
		// High enough never to disturb functional tests; rate-limit tests
		// lower them with an Option.
		RateLimits:  map[string]int{"STANDARD": 1_000_000, "PROFESSIONAL": 1_000_000, "ENTERPRISE": 1_000_000},
		LoginLimits: httpapi.LoginLimits{PerEmail: 1_000_000, PerIP: 1_000_000},
	}
	// Listen first, so the service knows the URL browsers reach it at
	// (checkout links start with it).
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	require.NoError(t, err)
	cfg.PublicURL = "http://" + ln.Addr().String()
	for _, o := range opts {
		o(&cfg)
	}
	var log *slog.Logger
	if os.Getenv("TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		_ = ln.Close()
	}
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		a.Close()
	})
	return &Server{App: a, URL: "http://" + ln.Addr().String(), DB: db, NATS: nt}
}
