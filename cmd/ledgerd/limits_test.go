package main_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/proctest"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
)

// TestLimitsHoldAcrossOSProcesses is the balancer's view of the limits: two
// ledgerd OS processes on one database, requests alternating between them,
// admit no more than one partner's per-minute rate limit together, and
// lock an address out of an account after the configured failed logins
// together. (httpapi's tests prove the same rules in depth with two app
// instances in one test binary; this one runs what is deployed.)
//
// Not parallel: it runs before TestClusterFailover starts, so its two
// processes never slow the cluster's timed failovers.
func TestLimitsHoldAcrossOSProcesses(t *testing.T) {
	bins := proctest.Binaries(t, raceEnabled)
	db := testenv.NewDB(t)
	secret := func() string { b := make([]byte, 32); _, _ = rand.Read(b); return hex.EncodeToString(b) }
	const limit, sent, failures = 60, 100, 4
	common := []string{"LEDGER_ENV=development", "LEDGER_MASTER_KEY=" + secret(), "JWT_SECRET=" + secret(),
		"LOG_LEVEL=warn", "DATABASE_URL=" + db.URL,
		fmt.Sprintf("RATE_LIMITS=STANDARD=%d,PROFESSIONAL=%d,ENTERPRISE=%d", limit, limit, limit),
		fmt.Sprintf("LOGIN_LIMITS=PER_EMAIL=%d/1h,PER_IP=1000/1m", failures)}
	ledgerd := filepath.Join(bins, "ledgerd")
	procs := []*proctest.Process{
		proctest.NewLedgerd(t, ledgerd, "ledgerd-a", append(common, "DATA_DIR="+t.TempDir())...),
		proctest.NewLedgerd(t, ledgerd, "ledgerd-b", append(common, "DATA_DIR="+t.TempDir())...),
	}
	for _, p := range procs {
		p.Start(90 * time.Second)
	}
	s := newSigner(t, procs[0].URL())

	// A minute's budget is counted per calendar minute: start the burst
	// with most of one left, so it is all counted against one window.
	if sec := time.Now().Second(); sec > 50 {
		time.Sleep(time.Duration(61-sec) * time.Second)
	}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range sent / 4 {
				base := procs[(w+i)%2].URL()
				path := "/v1/partner/users?limit=1&page=" + strconv.Itoa(1+w*sent+i)
				code, body := s.send(base, http.MethodGet, path, nil, time.Now().Unix())
				mu.Lock()
				codes[code]++
				mu.Unlock()
				if code != http.StatusOK && code != http.StatusTooManyRequests {
					t.Errorf("GET %s via %s: %d %s", path, base, code, body)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("rate limit %d/min, %d requests alternating between two ledgerd processes: %v", limit, sent, codes)
	require.Equal(t, sent, codes[http.StatusOK]+codes[http.StatusTooManyRequests])
	require.LessOrEqual(t, codes[http.StatusOK], limit, "two processes admit no more than one limit")
	// Slices leased by one process and not spent, at most one and a half
	// (limit/50, at least 1, each), and the portal calls that created the
	// key may have spent a few.
	require.GreaterOrEqual(t, codes[http.StatusOK], limit-5, "nearly all of the limit is usable")

	login := func(base, password string) int {
		body := []byte(`{"email":"` + app.DemoEmail + `","password":"` + password + `"}`)
		resp, err := http.Post(base+"/v1/partner/auth/login", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range failures {
		require.Equal(t, http.StatusUnauthorized, login(procs[i%2].URL(), "wrong-password"), "failed login %d", i+1)
	}
	for _, p := range procs {
		require.Equal(t, http.StatusTooManyRequests, login(p.URL(), app.DemoPassword),
			"%s: %d failures through two processes lock this address out of the account", p.Name, failures)
	}
}
