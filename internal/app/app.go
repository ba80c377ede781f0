package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sirgiving/ledger/apiusage"
	"github.com/sirgiving/ledger/checkout"
	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/internal/infra/bus"
	"github.com/sirgiving/ledger/internal/infra/natsembed"
	"github.com/sirgiving/ledger/internal/infra/netguard"
	"github.com/sirgiving/ledger/internal/nonprofits"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/migrations"
	"github.com/sirgiving/ledger/projections"
	"github.com/sirgiving/ledger/scheduler"
	"github.com/sirgiving/ledger/webhooks"
)

// App is a running service instance.
type App struct {
	Config Config
	Log    *slog.Logger
	Pool   *pgxpool.Pool
	// Bookkeeping is a small pool with asynchronous commit for writes that
	// are not facts of the ledger (replay guard, key usage times, the
	// relay's and the skipping projections' checkpoints): a crash that
	// loses one costs a re-check or a re-read, never a fact.
	Bookkeeping *pgxpool.Pool
	Store       *eventstore.Store
	NC          *nats.Conn
	Embedded    *natsembed.Server
	Relay       *eventstore.Relay
	Runner      *projections.Runner
	// Ledger is every command of the reward domain, executed through Store.
	Ledger *ledger.Service
	// Dispatcher sends webhook deliveries.
	Dispatcher *webhooks.Dispatcher
	// Campaigns starts and ends scheduled campaigns.
	Campaigns *scheduler.Campaigns
	Registry  *prometheus.Registry
	Handler   http.Handler
	Bus       bus.Config
	// Auth authenticates partner requests (keys, HMAC, portal tokens).
	Auth *httpapi.KeyAuth
	// Usage counts requests per tenant for the API-usage dashboards; its
	// Flush writes the counts gathered so far.
	Usage *apiusage.Recorder
	// Checkout is the configured donation checkout providers.
	Checkout *checkout.Registry

	// MasterKey and JWTSecret are the resolved 32-byte secrets.
	MasterKey []byte
	JWTSecret []byte

	closers []func()
}

// Logger builds the process logger from the configuration.
func Logger(c Config) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// New connects to PostgreSQL, applies pending migrations, connects to (or
// embeds) NATS, and builds every component. Nothing runs until Run.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *App, err error) {
	if log == nil {
		log = Logger(cfg)
	}
	a := &App{Config: cfg, Log: log, Registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			a.Close() // what was opened before the failure
		}
	}()
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if a.MasterKey, err = secret(cfg, cfg.MasterKey, "master.key"); err != nil {
		return nil, err
	}
	if a.JWTSecret, err = secret(cfg, cfg.JWTSecret, "jwt.key"); err != nil {
		return nil, err
	}

	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if pcfg.MaxConns < 16 {
		pcfg.MaxConns = 16
	}
	if a.Pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.Pool.Close)
	// Writes that need no fsync of their own (replay guard, lastUsedAt,
	// the relay's and the skips' checkpoints) go through sessions with
	// asynchronous commit. WAL is written in order, so the next commit
	// that is flushed (an append) makes them durable too.
	bcfg := pcfg.Copy()
	bcfg.MaxConns = 8
	bcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	if a.Bookkeeping, err = pgxpool.NewWithConfig(ctx, bcfg); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.Bookkeeping.Close)
	if err := a.migrate(ctx); err != nil {
		return nil, err
	}

	if err := a.connectNATS(); err != nil {
		return nil, err
	}
	a.Bus = bus.Config{Replicas: cfg.NATSReplicas}.WithDefaults()

	tail := eventstore.NewTail()
	a.Store = eventstore.OpenStore(a.Pool, eventstore.StoreOptions{Registerer: a.Registry, Logger: log, Tail: tail})
	a.closers = append(a.closers, a.Store.Close)
	guard := netguard.Policy{AllowLoopback: cfg.AllowLoopbackWebhooks && !cfg.Production()}
	if a.Checkout, err = checkoutProviders(cfg); err != nil {
		return nil, err
	}
	a.Ledger = ledger.NewService(a.Store, ledger.Options{
		MasterKey: a.MasterKey, WebhookRequireHTTPS: cfg.Production(), WebhookHosts: guard,
		Checkout: a.Checkout, MaxDonationAmount: cfg.Donations.MaxAmount,
	})
	a.Campaigns = &scheduler.Campaigns{Ledger: a.Ledger, DB: a.Pool, Log: log}
	if a.Relay, err = eventstore.NewRelay(a.Pool, a.NC, eventstore.RelayOptions{Bus: a.Bus, Registerer: a.Registry, Logger: log, Tail: tail, Checkpoints: a.Bookkeeping}); err != nil {
		return nil, err
	}
	if a.Runner, err = projections.NewRunner(a.Pool, a.NC, projections.RunnerOptions{Bus: a.Bus, Registerer: a.Registry, Logger: log, Skips: a.Bookkeeping}, Projections()...); err != nil {
		return nil, err
	}
	if err := a.Runner.Setup(ctx); err != nil {
		return nil, err
	}
	a.Auth = httpapi.NewKeyAuth(httpapi.KeyAuthConfig{
		DB: a.Pool, Bookkeeping: a.Bookkeeping, MasterKey: a.MasterKey, JWTSecret: a.JWTSecret,
		RateLimits: cfg.RateLimits, Login: cfg.LoginLimits, Now: cfg.Now, Logger: log,
	})
	wopts := cfg.Webhooks
	wopts.Addresses, wopts.Registerer, wopts.Logger = guard, a.Registry, log
	a.Dispatcher = webhooks.New(a.Pool, a.Ledger, a.MasterKey, wopts)
	a.Usage = apiusage.NewRecorder(a.Bookkeeping, apiusage.Options{Now: cfg.Now, Logger: log})
	hd := httpapi.HandlerDeps{
		Ledger: a.Ledger, DB: a.Pool, Auth: a.Auth, MasterKey: a.MasterKey, ReadWait: cfg.ReadWait, Now: cfg.Now,
		Checkout: a.Checkout, MaxDonationAmount: cfg.Donations.MaxAmount,
	}
	if cfg.Donations.EveryOrgAPIKey != "" {
		hd.Directory = &nonprofits.EveryOrgDirectory{BaseURL: cfg.Donations.EveryOrgAPIURL, APIKey: cfg.Donations.EveryOrgAPIKey}
	}
	handlers := httpapi.Handlers(hd)
	if !cfg.Production() {
		if err := a.ensureDemoUser(ctx); err != nil {
			return nil, err
		}
		if cfg.Donations.DevNonprofits {
			if err := a.ensureDevNonprofits(ctx); err != nil {
				return nil, err
			}
		}
	}
	deps := httpapi.Deps{
		Auth:       a.Auth,
		Handlers:   handlers,
		Ready:      a.Ready,
		Registerer: a.Registry,
		Gatherer:   a.Registry,
		Logger:     log,
		Usage:      a.Usage,
		Extra:      httpapi.WidgetRoutes(hd),
	}
	if cfg.MetricsAddr != "" {
		deps.Gatherer = nil // served by MetricsHandler on its own listener
	}
	a.Handler = httpapi.New(deps)
	return a, nil
}

// MetricsHandler serves /metrics (Prometheus), /healthz and the Go
// profiler (/debug/pprof/) for the operators' listener (METRICS_ADDR);
// everything else is 404. The profiler is registered here and nowhere
// else: this handler is never served on the partner-facing listener, and
// nothing registers on http.DefaultServeMux (importing net/http/pprof does,
// but no listener of ours serves that mux).
func (a *App) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", httpapi.Healthz)
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves heap, goroutine, allocs, block, mutex…
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Projections is every read model the service maintains.
func Projections() []projections.Projection {
	return []projections.Projection{projections.Accounts{}, projections.NewWebhooks(), projections.Rewards{}, projections.Donations{}}
}

// Demo portal login created in development mode.
const (
	DemoEmail    = "demo@sirgiving.dev"
	DemoPassword = "sirgiving-demo"
)

// ensureDemoUser creates the development demo portal user if absent and
// prints its credentials.
func (a *App) ensureDemoUser(ctx context.Context) error {
	_, _, err := a.Ledger.CreatePortalUser(ctx, events.Metadata{Actor: "system:dev-demo"}, DemoEmail, DemoPassword)
	if err != nil {
		if le := eventstore.AsError(err); le.Code != "EMAIL_TAKEN" {
			return fmt.Errorf("creating the demo portal user: %w", err)
		}
	}
	var lvl slog.Level
	if lvl.UnmarshalText([]byte(a.Config.LogLevel)) != nil || lvl <= slog.LevelInfo {
		fmt.Fprintf(os.Stderr, "\n  development demo portal login: %s / %s\n  (POST /v1/partner/auth/login, then POST /v1/partner/keys)\n\n", DemoEmail, DemoPassword)
	}
	return nil
}

func (a *App) migrate(ctx context.Context) error {
	conn, err := a.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("PostgreSQL unreachable: %w", err)
	}
	defer conn.Release()
	from, to, err := migrations.Apply(ctx, conn.Conn())
	if err != nil {
		return err
	}
	if from != to {
		a.Log.Info("applied migrations", "from", from, "to", to)
	}
	return nil
}

func (a *App) connectNATS() error {
	url := a.Config.NATSURL
	if url == "" {
		srv, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(a.Config.DataDir, "nats")})
		if err != nil {
			return err
		}
		a.Embedded = srv
		a.closers = append(a.closers, srv.Stop)
		url = srv.URL()
		a.Log.Info("embedded NATS JetStream started", "url", url, "store", filepath.Join(a.Config.DataDir, "nats"))
	}
	nc, err := nats.Connect(url,
		nats.Name("ledgerd"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		// Commands must succeed with the broker down, so do not fail start-up
		// either: the relay catches up when it comes back.
		nats.RetryOnFailedConnect(true),
	)
	if err != nil {
		return fmt.Errorf("NATS_URL: %w", err)
	}
	a.NC = nc
	a.closers = append(a.closers, nc.Close)
	return nil
}

// Ready reports whether PostgreSQL and NATS are reachable and the schema
// is current.
func (a *App) Ready(ctx context.Context) error {
	var problems []string
	cur, err := migrations.Current(ctx, a.Pool)
	if err != nil {
		// The endpoint is unauthenticated: say what is wrong, keep the
		// details (hosts, driver messages) in the log.
		a.Log.Warn("readiness: PostgreSQL check failed", "err", err)
		problems = append(problems, "postgres: unreachable")
	} else if latest, _ := migrations.Latest(); cur != latest {
		problems = append(problems, fmt.Sprintf("schema at version %d, binary expects %d", cur, latest))
	}
	if a.NC == nil || !a.NC.IsConnected() {
		problems = append(problems, "nats: not connected")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Run serves HTTP on ln and runs the relay and projectors until ctx ends,
// then shuts down gracefully: stop accepting, drain requests, flush the
// relay, stop projectors, close the store.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	var mln net.Listener
	if a.Config.MetricsAddr != "" {
		var err error
		if mln, err = net.Listen("tcp", a.Config.MetricsAddr); err != nil {
			return fmt.Errorf("METRICS_ADDR: %w", err)
		}
	}
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Auth.Run(bg) }()
	// Stopped after HTTP has drained, so its final flush counts every request.
	go func() { defer wg.Done(); a.Usage.Run(bg) }()
	if !a.Config.DisableBackground {
		wg.Add(3)
		go func() { defer wg.Done(); _ = a.Relay.Run(bg) }()
		go func() { defer wg.Done(); _ = a.Runner.Run(bg) }()
		go func() { defer wg.Done(); _ = a.Dispatcher.Run(bg) }()
	}
	if !a.Config.DisableBackground {
		wg.Add(2)
		go func() { defer wg.Done(); a.Campaigns.Run(bg) }()
		go func() { defer wg.Done(); a.adviseReplicas(bg) }()
	}
	srv := &http.Server{Handler: a.Handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if mln != nil {
		msrv := &http.Server{Handler: a.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- msrv.Serve(mln) }()
		defer msrv.Close()
		a.Log.Info("metrics listening", "addr", mln.Addr().String())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.Log.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.Log.Warn("HTTP drain incomplete", "err", err)
	}
	// Commands already accepted finish before the relay's last flush.
	a.Store.Close()
	stopBG()
	wg.Wait()
	a.Log.Info("shut down: requests drained, relay flushed, projectors stopped")
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// Close releases every resource New acquired, in reverse order.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// secret returns the configured hex secret or, in development, one kept
// under DataDir (created on first use) so restarts keep decrypting.
func secret(cfg Config, configured, file string) ([]byte, error) {
	if configured != "" {
		b, err := hex.DecodeString(configured)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%s must be 64 hex characters (32 bytes)", file)
		}
		return b, nil
	}
	if cfg.Production() {
		return nil, fmt.Errorf("production requires a configured secret for %s", file)
	}
	path := filepath.Join(cfg.DataDir, "secrets", file)
	if b, err := os.ReadFile(path); err == nil {
		return hex.DecodeString(strings.TrimSpace(string(b)))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return b, nil
}

// MasterKeyFromEnv resolves the master key the way ledgerd does
// (LEDGER_MASTER_KEY, or in development the key kept under DATA_DIR), for
// operator tools that seal secrets outside the server.
func MasterKeyFromEnv() ([]byte, error) {
	dir, err := filepath.Abs(getenv("DATA_DIR", ".data"))
	if err != nil {
		return nil, err
	}
	cfg := Config{Env: getenv("LEDGER_ENV", "development"), DataDir: dir}
	if configured := os.Getenv("LEDGER_MASTER_KEY"); configured != "" || cfg.Production() {
		return secret(cfg, configured, "master.key")
	}
	// Never create one here: a key ledgerd does not have would seal
	// secrets the service can never open (a user who cannot log in).
	path := filepath.Join(dir, "secrets", "master.key")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no master key: set LEDGER_MASTER_KEY, or DATA_DIR to ledgerd's data directory (%s does not exist)", path)
	}
	return secret(cfg, "", "master.key")
}
