// Package app wires the service together: configuration, PostgreSQL,
// migrations, NATS (external or embedded), the event store, the relay, the
// projectors and the HTTP server. cmd/ledgerd is a thin main around it, and
// end-to-end tests start the same App in-process.
package app

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/webhooks"
)

// Config is the service configuration, read from the environment (see
// README for each variable and its default).
type Config struct {
	// DatabaseURL is the PostgreSQL connection string (DATABASE_URL).
	DatabaseURL string
	// NATSURL is a NATS server list (NATS_URL); empty embeds a JetStream
	// server with its files under DataDir/nats.
	NATSURL string
	// NATSReplicas is the JetStream stream replication (NATS_REPLICAS).
	NATSReplicas int
	// ListenAddr is the HTTP listen address (LISTEN_ADDR).
	ListenAddr string
	// MetricsAddr, when set (METRICS_ADDR), serves /metrics on its own
	// listener and not on ListenAddr, so the partner-facing port does not
	// expose operational detail. Empty keeps /metrics on ListenAddr, the
	// development convenience. The Go profiler (/debug/pprof/) is served
	// only on this listener, never on ListenAddr: unset, there is none.
	MetricsAddr string
	// DataDir holds embedded NATS files and development secrets (DATA_DIR).
	DataDir string
	// Env is "development" or "production" (LEDGER_ENV).
	Env string
	// LogLevel is debug, info, warn or error (LOG_LEVEL); LogFormat is
	// json or text (LOG_FORMAT).
	LogLevel  string
	LogFormat string
	// MasterKey encrypts secrets at rest, 64 hex chars (LEDGER_MASTER_KEY).
	// Development generates one under DataDir; production refuses to
	// start without it.
	MasterKey string
	// JWTSecret signs portal tokens (JWT_SECRET); same rules as MasterKey.
	JWTSecret string
	// ShutdownTimeout bounds graceful shutdown (SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// ReadWait bounds how long a read waits for the read model to reflect
	// the partner's last write (READ_YOUR_WRITES_WAIT).
	ReadWait time.Duration
	// AllowLoopbackWebhooks lets webhooks target loopback addresses, for
	// development and tests only (WEBHOOKS_ALLOW_LOOPBACK).
	AllowLoopbackWebhooks bool
	// RateLimits are requests per minute per partner by tier (RATE_LIMITS,
	// e.g. "STANDARD=600,PROFESSIONAL=3000,ENTERPRISE=10000"); tiers left
	// out take httpapi.DefaultRateLimits.
	RateLimits map[string]int
	// LoginLimits bound password login attempts per email and per client
	// address (LOGIN_LIMITS, e.g. "PER_EMAIL=10/15m,PER_IP=60/1m"); zero
	// fields take httpapi.DefaultLoginLimits. Its TrustedProxies
	// (TRUSTED_PROXIES, CIDRs) are the balancers whose X-Forwarded-For
	// names the client address.
	LoginLimits httpapi.LoginLimits
	// Now is the clock request authentication uses (nil: time.Now); tests
	// pin it to check timestamp windows at their exact edges.
	Now func() time.Time
	// Webhooks tunes the webhook dispatcher (retry schedule, timeouts,
	// concurrency); zero values are the production defaults. Its address
	// policy always comes from AllowLoopbackWebhooks.
	Webhooks webhooks.Options
	// DisableBackground turns off relay and projectors (tests that drive
	// them by hand).
	DisableBackground bool
	// PublicURL is where browsers reach this server (PUBLIC_URL; default
	// http://localhost and LISTEN_ADDR's port): checkout links and the
	// pages providers send donors back to start with it.
	PublicURL string
	// Donations configures the checkout providers and donation limits.
	Donations DonationsConfig
}

// DonationsConfig configures donation checkout. A provider is configured
// when its secrets are set; sandbox keys always have the sandbox checkout.
type DonationsConfig struct {
	// MaxAmount bounds a donation in cents (DONATION_MAX_AMOUNT; default
	// ledger.DefaultMaxDonationAmount).
	MaxAmount int64
	// StripeSecretKey (STRIPE_SECRET_KEY), StripeWebhookSecret
	// (STRIPE_WEBHOOK_SECRET) and StripeAPIURL (STRIPE_API_URL, for
	// stripe-mock) configure Stripe Checkout; the key's mode (sk_test_ or
	// sk_live_) decides which environment it serves.
	StripeSecretKey     string
	StripeWebhookSecret string
	StripeAPIURL        string
	// EveryOrgWebhookToken (EVERYORG_WEBHOOK_TOKEN),
	// EveryOrgWebhookSecret (EVERYORG_WEBHOOK_SECRET), EveryOrgDonateURL
	// (EVERYORG_DONATE_URL) and EveryOrgEnvironment (EVERYORG_ENVIRONMENT,
	// default production) configure Every.org donate links.
	EveryOrgWebhookToken  string
	EveryOrgWebhookSecret string
	EveryOrgDonateURL     string
	EveryOrgEnvironment   string
	// EveryOrgAPIKey (EVERYORG_API_KEY) turns on Every.org's public
	// nonprofit API for slugs the directory does not list;
	// EveryOrgAPIURL (EVERYORG_API_URL) replaces its base URL.
	EveryOrgAPIKey string
	EveryOrgAPIURL string
	// DevNonprofits loads the development set of well-known US nonprofits
	// at start (development only; on by default there).
	DevNonprofits bool
}

// Production reports whether the service runs with production rules.
func (c Config) Production() bool { return c.Env == "production" }

// FromEnv reads Config from environment variables, applying defaults.
func FromEnv() (Config, error) {
	c := Config{
		DatabaseURL:           os.Getenv("DATABASE_URL"),
		NATSURL:               os.Getenv("NATS_URL"),
		ListenAddr:            getenv("LISTEN_ADDR", ":8080"),
		MetricsAddr:           os.Getenv("METRICS_ADDR"),
		DataDir:               getenv("DATA_DIR", ".data"),
		Env:                   getenv("LEDGER_ENV", "development"),
		LogLevel:              getenv("LOG_LEVEL", "info"),
		LogFormat:             getenv("LOG_FORMAT", "text"),
		MasterKey:             os.Getenv("LEDGER_MASTER_KEY"),
		JWTSecret:             os.Getenv("JWT_SECRET"),
		AllowLoopbackWebhooks: os.Getenv("WEBHOOKS_ALLOW_LOOPBACK") == "true",
		PublicURL:             strings.TrimRight(os.Getenv("PUBLIC_URL"), "/"),
		Donations: DonationsConfig{
			StripeSecretKey: os.Getenv("STRIPE_SECRET_KEY"), StripeWebhookSecret: os.Getenv("STRIPE_WEBHOOK_SECRET"),
			StripeAPIURL: os.Getenv("STRIPE_API_URL"), EveryOrgWebhookToken: os.Getenv("EVERYORG_WEBHOOK_TOKEN"),
			EveryOrgWebhookSecret: os.Getenv("EVERYORG_WEBHOOK_SECRET"), EveryOrgDonateURL: os.Getenv("EVERYORG_DONATE_URL"),
			EveryOrgEnvironment: os.Getenv("EVERYORG_ENVIRONMENT"), EveryOrgAPIKey: os.Getenv("EVERYORG_API_KEY"),
			EveryOrgAPIURL: os.Getenv("EVERYORG_API_URL"), DevNonprofits: getenv("DEV_NONPROFITS", "true") == "true",
		},
	}
	var err error
	if c.NATSReplicas, err = strconv.Atoi(getenv("NATS_REPLICAS", "1")); err != nil || c.NATSReplicas < 1 {
		return c, fmt.Errorf("NATS_REPLICAS must be a positive integer")
	}
	if c.ShutdownTimeout, err = time.ParseDuration(getenv("SHUTDOWN_TIMEOUT", "20s")); err != nil {
		return c, fmt.Errorf("SHUTDOWN_TIMEOUT: %w", err)
	}
	if c.ReadWait, err = time.ParseDuration(getenv("READ_YOUR_WRITES_WAIT", "2s")); err != nil {
		return c, fmt.Errorf("READ_YOUR_WRITES_WAIT: %w", err)
	}
	if c.RateLimits, err = httpapi.ParseRateLimits(os.Getenv("RATE_LIMITS")); err != nil {
		return c, err
	}
	if c.LoginLimits, err = httpapi.ParseLoginLimits(os.Getenv("LOGIN_LIMITS")); err != nil {
		return c, err
	}
	if c.LoginLimits.TrustedProxies, err = httpapi.ParseTrustedProxies(os.Getenv("TRUSTED_PROXIES")); err != nil {
		return c, err
	}
	if v := os.Getenv("DONATION_MAX_AMOUNT"); v != "" {
		if c.Donations.MaxAmount, err = strconv.ParseInt(v, 10, 64); err != nil || c.Donations.MaxAmount < 100 {
			return c, fmt.Errorf("DONATION_MAX_AMOUNT must be an integer number of cents, at least 100")
		}
	}
	if c.PublicURL == "" {
		port := "8080"
		if _, p, err := net.SplitHostPort(c.ListenAddr); err == nil && p != "" {
			port = p
		}
		c.PublicURL = "http://localhost:" + port
	}
	if c.Env != "development" && c.Env != "production" {
		return c, fmt.Errorf("LEDGER_ENV must be development or production, not %q", c.Env)
	}
	if c.DatabaseURL == "" {
		return c, fmt.Errorf("DATABASE_URL is not set (make run sets it, starting a local PostgreSQL if needed)")
	}
	if c.Production() {
		if c.MasterKey == "" || c.JWTSecret == "" {
			return c, fmt.Errorf("production requires LEDGER_MASTER_KEY and JWT_SECRET")
		}
		if c.AllowLoopbackWebhooks {
			return c, fmt.Errorf("WEBHOOKS_ALLOW_LOOPBACK is for development only")
		}
	}
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return c, err
	}
	return c, nil
}

func getenv(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}
