package app_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/app"
)

// FromEnv reads every documented variable, applies the README's defaults
// and refuses what it cannot use. (t.Setenv: not parallel.)
func TestFromEnv(t *testing.T) {
	for _, k := range []string{"NATS_URL", "LISTEN_ADDR", "METRICS_ADDR", "DATA_DIR", "LEDGER_ENV", "RATE_LIMITS", "LOGIN_LIMITS",
		"TRUSTED_PROXIES", "READ_YOUR_WRITES_WAIT", "SHUTDOWN_TIMEOUT", "NATS_REPLICAS", "LEDGER_MASTER_KEY", "JWT_SECRET"} {
		t.Setenv(k, "")
	}
	t.Setenv("DATABASE_URL", "postgres://localhost/x")

	c, err := app.FromEnv()
	require.NoError(t, err)
	require.Equal(t, ":8080", c.ListenAddr)
	require.Empty(t, c.MetricsAddr)
	require.Equal(t, "development", c.Env)
	require.Equal(t, 2*time.Second, c.ReadWait)
	require.Empty(t, c.LoginLimits.TrustedProxies)

	t.Setenv("METRICS_ADDR", ":9090")
	t.Setenv("LOGIN_LIMITS", "PER_IP=100/1m")
	t.Setenv("TRUSTED_PROXIES", "172.28.0.10")
	t.Setenv("RATE_LIMITS", "STANDARD=100")
	c, err = app.FromEnv()
	require.NoError(t, err)
	require.Equal(t, ":9090", c.MetricsAddr)
	require.Equal(t, 100, c.LoginLimits.PerIP)
	require.Equal(t, time.Minute, c.LoginLimits.IPWindow)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("172.28.0.10/32")}, c.LoginLimits.TrustedProxies)
	require.Equal(t, map[string]int{"STANDARD": 100}, c.RateLimits)

	for k, v := range map[string]string{
		"LOGIN_LIMITS": "PER_IP=lots", "TRUSTED_PROXIES": "balancer", "RATE_LIMITS": "GOLD=5",
		"READ_YOUR_WRITES_WAIT": "soon", "LEDGER_ENV": "staging", "DATABASE_URL": "",
	} {
		t.Run(k, func(t *testing.T) {
			t.Setenv(k, v)
			_, err := app.FromEnv()
			require.ErrorContains(t, err, k)
		})
	}
	t.Run("production needs its secrets", func(t *testing.T) {
		t.Setenv("LEDGER_ENV", "production")
		_, err := app.FromEnv()
		require.ErrorContains(t, err, "LEDGER_MASTER_KEY")
	})
}
