package httpapi

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, c := range []struct {
		peer, xff string
		trusted   []netip.Prefix
		want      string
	}{
		{"192.0.2.1:5000", "203.0.113.1", nil, "192.0.2.1"},               // no proxy trusted
		{"192.0.2.1:5000", "203.0.113.1", lb, "192.0.2.1"},                // peer is not a proxy
		{"10.1.2.3:5000", "203.0.113.1", lb, "203.0.113.1"},               // one balancer
		{"10.1.2.3:5000", "198.51.100.1, 203.0.113.1", lb, "203.0.113.1"}, // client-written entry ignored
		{"10.1.2.3:5000", "203.0.113.1, 10.9.9.9", lb, "203.0.113.1"},     // two balancers
		{"10.1.2.3:5000", "", lb, "10.1.2.3"},                             // nothing forwarded
		{"10.1.2.3:5000", "10.4.4.4", lb, "10.1.2.3"},                     // only proxies: the peer
		{"10.1.2.3:5000", "203.0.113.1, not-an-ip", lb, "10.1.2.3"},       // garbage stops the walk
		{"[::1]:5000", "2001:db8::7", lb, "2001:db8::7"},                  // IPv6
		{"[::ffff:10.1.2.3]:5000", "203.0.113.5", lb, "203.0.113.5"},      // IPv4-mapped peer
	} {
		r := httptest.NewRequest("POST", "/v1/partner/auth/login", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		require.Equal(t, c.want, clientIP(r, c.trusted), "%+v", c)
	}
}

func TestParseTrustedProxiesAndLoginLimits(t *testing.T) {
	t.Parallel()
	p, err := ParseTrustedProxies(" 10.0.0.0/8, 172.18.0.5 ,::1")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.18.0.5/32"), netip.MustParsePrefix("::1/128")}, p)
	_, err = ParseTrustedProxies("10.0.0.0/8,nope")
	require.ErrorContains(t, err, `"nope"`)

	l, err := ParseLoginLimits("PER_EMAIL=5/10m, per_ip=100/1m")
	require.NoError(t, err)
	require.Equal(t, LoginLimits{PerEmail: 5, EmailWindow: 10 * time.Minute, PerIP: 100, IPWindow: time.Minute}, l)
	l, err = ParseLoginLimits("")
	require.NoError(t, err)
	require.Equal(t, DefaultLoginLimits, l.withDefaults())
	for _, bad := range []string{"PER_IP=0/1m", "PER_IP=5", "PER_IP=5/soon", "PER_USER=5/1m"} {
		_, err := ParseLoginLimits(bad)
		require.Error(t, err, bad)
	}
}

// The account limiter's rules over time, on an injected clock.
func TestLoginFailuresPerAccountAndAddress(t *testing.T) {
	t.Parallel()
	lim := LoginLimits{PerEmail: 3, EmailWindow: 30 * time.Minute}
	l := newAttemptLimiter()
	now := time.Unix(1_700_000_000, 0)
	take := func(addr string) bool {
		_, ok := l.takeLogin("a@example.com", addr, lim, now)
		return ok
	}
	for i := 0; i < 3; i++ {
		require.True(t, take("x"))
	}
	until, ok := l.takeLogin("a@example.com", "x", lim, now)
	require.False(t, ok)
	require.Equal(t, now.Add(30*time.Minute), until)
	require.True(t, take("y"), "a fresh address is admitted")
	require.False(t, take("y"), "the account is slowed for addresses that failed")
	now = now.Add(10 * time.Minute) // EmailWindow / PerEmail
	require.True(t, take("y"), "after the backoff it may try again")
	require.False(t, take("x"), "the hard limit holds for its window")
	l.loginOK("a@example.com", "y")
	require.True(t, take("y"))
	require.False(t, take("x"))
	now = now.Add(21 * time.Minute)
	require.True(t, take("x"), "a window ends")
	l.prune(now.Add(time.Hour))
	require.Empty(t, l.emails, "pruning forgets accounts with no live failures")
}
