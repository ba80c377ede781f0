package httpapi_test

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

// Two processes behind a balancer admit no more than the partner's limit
// in a minute, and nearly all of it (within one lease slice), while only
// a fraction of the requests pays a round trip for the count.
func TestRateLimitHoldsAcrossProcesses(t *testing.T) {
	t.Parallel()
	const limit, sent = 300, 400
	base := time.Now()
	opt := func(c *app.Config) {
		c.RateLimits = map[string]int{"STANDARD": limit}
		c.Now = func() time.Time { return base } // one minute for the whole test
	}
	srv := apptest.Start(t, opt)
	rep := apptest.StartReplica(t, srv, opt)
	p := srv.NewPartner(t, "sandbox")
	viaRep := &apptest.Partner{Srv: rep, PartnerID: p.PartnerID, Env: p.Env, SecretKey: p.SecretKey, HMACSecret: p.HMACSecret}

	var mu sync.Mutex
	admitted, refused := 0, 0
	var wg sync.WaitGroup
	for w := range 4 {
		via := p
		if w%2 == 1 {
			via = viaRep
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range sent / 4 {
				resp := via.Do(t, http.MethodGet, "/v1/partner/users?limit=1&page="+strconv.Itoa(1+w*sent+i), nil)
				resp.Body.Close()
				mu.Lock()
				switch resp.StatusCode {
				case http.StatusOK:
					admitted++
				case http.StatusTooManyRequests:
					refused++
					require.NotEmpty(t, resp.Header.Get("Retry-After"))
					require.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
					require.Equal(t, strconv.Itoa(limit), resp.Header.Get("X-RateLimit-Limit"))
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	leases := httpapi.RateLeases(srv.Auth) + httpapi.RateLeases(rep.Auth)
	t.Logf("limit %d/min, %d requests through two processes: %d admitted, %d refused; %d leases (round trips)", limit, sent, admitted, refused, leases)
	require.Equal(t, sent, admitted+refused)
	require.LessOrEqual(t, admitted, limit, "never more than the limit across processes")
	// Slots the other process leased and did not spend: at most one and a
	// half slices (limit/50 each), and a portal call of the partner's may
	// have spent one.
	require.GreaterOrEqual(t, admitted, limit-3*(limit/50)/2-2, "nearly the whole limit is usable")
	require.Less(t, leases, int64(admitted/4), "most requests are counted without a round trip")
}

// Login limits hold across processes: failures on one account from one
// address, and attempts from one address, add up whichever process
// answers them.
func TestLoginLimitsHoldAcrossProcesses(t *testing.T) {
	t.Parallel()
	opt := withLoginLimits(httpapi.LoginLimits{PerEmail: 4, EmailWindow: time.Hour, PerIP: 6, IPWindow: time.Hour,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	srv := apptest.Start(t, opt)
	rep := apptest.StartReplica(t, srv, opt)
	_, email, password := srv.CreatePortalUser(t)
	login := func(s *apptest.Server, client, email, password string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.URL+loginPath, strings.NewReader(`{"email":"`+email+`","password":"`+password+`"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		check(t, http.MethodPost, loginPath, resp)
		return resp.StatusCode
	}
	procs := []*apptest.Server{srv, rep}

	// Four failures from one address, alternating processes, lock that
	// address out of the account on both.
	for i := range 4 {
		require.Equal(t, http.StatusUnauthorized, login(procs[i%2], "203.0.113.1", email, "wrong"), "attempt %d", i+1)
	}
	for _, s := range procs {
		require.Equal(t, http.StatusTooManyRequests, login(s, "203.0.113.1", email, password))
	}
	// Another address still logs in, on either process.
	require.Equal(t, http.StatusOK, login(rep, "203.0.113.2", email, password))

	// Six attempts from one address, whatever the accounts, alternating
	// processes; the seventh is refused on both.
	for i := range 6 {
		require.Equal(t, http.StatusUnauthorized, login(procs[i%2], "198.51.100.7", "nobody"+strconv.Itoa(i)+"@example.com", "guess"), "attempt %d", i+1)
	}
	for _, s := range procs {
		require.Equal(t, http.StatusTooManyRequests, login(s, "198.51.100.7", "someone@example.com", "guess"))
	}
}
