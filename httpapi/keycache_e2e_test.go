package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/ledger"
)

// Keys are served from each process's memory, yet a change committed by
// one process holds in another from its very next request: no waiting for
// a read model, no invalidation message. Each change here is a domain
// command run by process one (as an operator's ledgerctl or a portal
// request there would), and the request right after it goes to process
// two, whose cache was warm with the key's previous standing.
func TestKeyChangesTakeEffectAcrossProcesses(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	pinned := func(c *app.Config) { c.Now = func() time.Time { return time.Unix(0, clock.Load()) } }
	one := apptest.Start(t, pinned)
	two := apptest.StartReplica(t, one, pinned)
	p := one.NewPartner(t, "sandbox")

	var n atomic.Int64
	viaTwo := func() *http.Response { // a fresh signature each time
		path := fmt.Sprintf("/v1/partner/users?n=%d", n.Add(1))
		return send(t, two.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, path, nil, two.Now().Unix()))
	}
	widgetViaTwo := func() *http.Response {
		req, err := http.NewRequest(http.MethodGet, two.URL+"/v1/partner/config", nil)
		require.NoError(t, err)
		req.Header.Set("X-Partner-Key", p.PublicKey)
		return send(t, req)
	}
	ctx, meta := context.Background(), events.Metadata{Actor: "test"}
	update := func(patch ledger.KeyPatch) {
		t.Helper()
		_, err := one.Ledger.UpdateAPIKey(ctx, meta, p.PartnerID, p.KeyID, patch)
		require.NoError(t, err)
	}
	yes, no := true, false

	// A key created through one works through two at once; two's cache
	// now holds it.
	passedAuth(t, viaTwo())
	passedAuth(t, widgetViaTwo())

	update(ledger.KeyPatch{IsActive: &no})
	errBody(t, viaTwo(), 401, "INVALID_KEY")
	errBody(t, widgetViaTwo(), 401, "INVALID_KEY")
	update(ledger.KeyPatch{IsActive: &yes}) // a refusal is not sticky either
	passedAuth(t, viaTwo())

	past := time.Unix(0, clock.Load()).Add(-time.Minute)
	update(ledger.KeyPatch{ExpiresAt: &past})
	errBody(t, viaTwo(), 401, "INVALID_KEY")
	update(ledger.KeyPatch{ClearExpiry: true})
	passedAuth(t, viaTwo())

	// Expiry by the clock alone: no event at all between the last
	// accepted request and the first refused one.
	soon := time.Unix(0, clock.Load()).Add(time.Hour)
	update(ledger.KeyPatch{ExpiresAt: &soon})
	passedAuth(t, viaTwo())
	passedAuth(t, widgetViaTwo())
	clock.Add(int64(time.Hour + time.Second))
	errBody(t, viaTwo(), 401, "INVALID_KEY")
	errBody(t, widgetViaTwo(), 401, "INVALID_KEY")
	update(ledger.KeyPatch{ClearExpiry: true})
	passedAuth(t, viaTwo())

	_, err := one.Ledger.SuspendPartner(ctx, meta, p.PartnerID, "test")
	require.NoError(t, err)
	errBody(t, viaTwo(), 403, "PARTNER_SUSPENDED")
	errBody(t, widgetViaTwo(), 403, "PARTNER_SUSPENDED")
	_, err = one.Ledger.ApprovePartner(ctx, meta, p.PartnerID)
	require.NoError(t, err)
	passedAuth(t, viaTwo())

	_, err = one.Ledger.RevokeAPIKey(ctx, meta, p.PartnerID, p.KeyID)
	require.NoError(t, err)
	errBody(t, viaTwo(), 401, "INVALID_KEY")
	errBody(t, widgetViaTwo(), 401, "INVALID_KEY")

	// A key created through one after two's cache was loaded is unknown
	// to that cache: two confirms before refusing, and accepts it.
	p.CreateKey(t, "created after two loaded its cache")
	passedAuth(t, viaTwo())
	passedAuth(t, widgetViaTwo())
}

// The same signed request, sent many times at once to two processes, is
// accepted exactly once: copies in one process's claim batch, and the
// other process's claims, all meet the one unique row.
func TestSameSignedRequestIsAcceptedOnceAcrossProcesses(t *testing.T) {
	t.Parallel()
	one := apptest.Start(t)
	two := apptest.StartReplica(t, one)
	p := one.NewPartner(t, "sandbox")
	// Both caches warm, so no copy waits on a first load.
	passedAuth(t, p.Do(t, http.MethodGet, "/v1/partner/users?warm=1", nil))
	passedAuth(t, send(t, two.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodGet, "/v1/partner/users?warm=2", nil, two.Now().Unix())))

	const copies = 24
	ts := one.Now().Unix()
	body := []byte(`{"externalId":"sent-many-times"}`)
	type answer struct {
		status int
		code   string
		err    error
	}
	answers := make([]answer, copies)
	reqs := make([]*http.Request, copies)
	for i := range reqs {
		target := one
		if i%2 == 1 {
			target = two
		}
		reqs[i] = target.SignedRequest(t, p.SecretKey, p.HMACSecret, http.MethodPost, "/v1/partner/users", body, ts)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var b struct{ Code string }
			_ = json.Unmarshal(raw, &b)
			answers[i] = answer{status: resp.StatusCode, code: b.Code}
		}()
	}
	close(start)
	wg.Wait()
	accepted := 0
	for _, a := range answers {
		require.NoError(t, a.err)
		if a.status == http.StatusUnauthorized {
			require.Equal(t, "REPLAYED_REQUEST", a.code)
			continue
		}
		require.Less(t, a.status, 300, "%+v", a)
		accepted++
	}
	require.Equal(t, 1, accepted, "%+v", answers)
}
