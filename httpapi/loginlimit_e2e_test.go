package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

const loginPath = "/v1/partner/auth/login"

// loginStatus tries a login and returns the status; a 429 is checked
// against the contract (error body, Retry-After) and the OpenAPI document.
func loginStatus(t *testing.T, srv *apptest.Server, email, password string) int {
	t.Helper()
	resp := portal(t, srv, "", http.MethodPost, loginPath, map[string]string{"email": email, "password": password})
	body := check(t, http.MethodPost, loginPath, resp)
	if resp.StatusCode == http.StatusTooManyRequests {
		var e map[string]any
		require.NoError(t, json.Unmarshal(body, &e), "%s", body)
		require.Equal(t, "RATE_LIMITED", e["code"], "%s", body)
		require.Equal(t, float64(429), e["statusCode"])
		require.Equal(t, resp.Header.Get("X-Request-Id"), e["requestId"])
		retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		require.NoError(t, err)
		require.Positive(t, retry)
		require.LessOrEqual(t, retry, 3600)
	}
	return resp.StatusCode
}

func withLoginLimits(l httpapi.LoginLimits) apptest.Option {
	return func(c *app.Config) { c.LoginLimits = l }
}

func TestLoginIsLimitedPerEmail(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, withLoginLimits(httpapi.LoginLimits{PerEmail: 3, EmailWindow: time.Hour, PerIP: 1_000_000, IPWindow: time.Hour}))
	_, email, password := srv.CreatePortalUser(t)
	_, other, otherPassword := srv.CreatePortalUser(t)

	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusUnauthorized, loginStatus(t, srv, email, "wrong"))
	}
	// Even the right password is refused now, under any spelling of the
	// address; other accounts are unaffected.
	require.Equal(t, http.StatusTooManyRequests, loginStatus(t, srv, email, password))
	require.Equal(t, http.StatusTooManyRequests, loginStatus(t, srv, " "+strings.ToUpper(email)+" ", password))
	require.Equal(t, http.StatusOK, loginStatus(t, srv, other, otherPassword))

	// A successful login clears the count of failures.
	for i := 0; i < 2; i++ {
		require.Equal(t, http.StatusUnauthorized, loginStatus(t, srv, other, "wrong"))
	}
	require.Equal(t, http.StatusOK, loginStatus(t, srv, other, otherPassword))
	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusUnauthorized, loginStatus(t, srv, other, "wrong"))
	}
	require.Equal(t, http.StatusTooManyRequests, loginStatus(t, srv, other, otherPassword))

	// Unknown addresses are limited the same way (no hint they are unknown).
	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusUnauthorized, loginStatus(t, srv, "nobody@example.com", "guess"))
	}
	require.Equal(t, http.StatusTooManyRequests, loginStatus(t, srv, "nobody@example.com", "guess"))
}

func TestLoginIsLimitedPerClientAddress(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, withLoginLimits(httpapi.LoginLimits{PerEmail: 1_000_000, EmailWindow: time.Hour, PerIP: 5, IPWindow: time.Hour}))
	_, email, password := srv.CreatePortalUser(t)

	// Every attempt counts, successful or not, whatever the address.
	require.Equal(t, http.StatusOK, loginStatus(t, srv, email, password))
	require.Equal(t, http.StatusUnauthorized, loginStatus(t, srv, email, "wrong"))
	require.Equal(t, http.StatusUnauthorized, loginStatus(t, srv, "a@example.com", "guess"))
	require.Equal(t, http.StatusUnauthorized, loginStatus(t, srv, "b@example.com", "guess"))
	require.Equal(t, http.StatusOK, loginStatus(t, srv, email, password))
	// X-Forwarded-For is not trusted to name another client.
	req, err := http.NewRequest(http.MethodPost, srv.URL+loginPath, strings.NewReader(`{"email":"`+email+`","password":"`+password+`"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	check(t, http.MethodPost, loginPath, resp)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, http.StatusTooManyRequests, loginStatus(t, srv, "c@example.com", "guess"))
}

// Behind a trusted balancer, each client forwarded for has its own
// budget; entries the client wrote itself (left of the balancer's) do not
// buy a fresh one.
func TestLoginLimitBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, withLoginLimits(httpapi.LoginLimits{PerEmail: 1_000_000, EmailWindow: time.Hour, PerIP: 2, IPWindow: time.Hour,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
	via := func(xff string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+loginPath, strings.NewReader(`{"email":"x@example.com","password":"guess"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		check(t, http.MethodPost, loginPath, resp)
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, via("203.0.113.1"))
	require.Equal(t, http.StatusUnauthorized, via("203.0.113.1"))
	require.Equal(t, http.StatusTooManyRequests, via("203.0.113.1"))
	require.Equal(t, http.StatusTooManyRequests, via("198.51.100.9, 203.0.113.1"), "a spoofed left-hand entry buys nothing")
	require.Equal(t, http.StatusUnauthorized, via("203.0.113.2"), "another client behind the balancer has its own budget")
	require.Equal(t, http.StatusUnauthorized, via("203.0.113.2, 127.0.0.1"), "trusted hops are skipped")
	require.Equal(t, http.StatusTooManyRequests, via("203.0.113.2"))
}

// A stranger's wrong guesses cannot lock the owner out (they used to: ten
// from anyone refused even the right password for 15 minutes). The
// guesser's own address is limited hard; the account, once it has drawn
// that many failures, slows every address that failed recently, but an
// address with no recent failure still logs in with the right password.
func TestLoginLockoutIsPerClientAddress(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, withLoginLimits(httpapi.LoginLimits{PerEmail: 3, EmailWindow: time.Hour, PerIP: 1_000_000, IPWindow: time.Hour,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
	_, email, password := srv.CreatePortalUser(t)
	from := func(client, password string) int {
		t.Helper()
		raw, err := json.Marshal(map[string]string{"email": email, "password": password})
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, srv.URL+loginPath, strings.NewReader(string(raw)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		check(t, http.MethodPost, loginPath, resp)
		return resp.StatusCode
	}
	const stranger, other, owner = "203.0.113.66", "203.0.113.67", "198.51.100.10"
	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusUnauthorized, from(stranger, "guess"))
	}
	require.Equal(t, http.StatusTooManyRequests, from(stranger, "guess"), "the guesser's address is stopped")
	require.Equal(t, http.StatusTooManyRequests, from(stranger, password), "even with the right password")
	require.Equal(t, http.StatusOK, from(owner, password), "the owner, elsewhere, is not locked out")

	// The account has drawn its share of failures: a second address gets
	// its first guess, then must wait before the next.
	require.Equal(t, http.StatusUnauthorized, from(other, "guess"))
	require.Equal(t, http.StatusTooManyRequests, from(other, "guess"))
	require.Equal(t, http.StatusOK, from(owner, password))
	require.Equal(t, http.StatusTooManyRequests, from(stranger, password), "the owner's success gives the guesser nothing")
}
