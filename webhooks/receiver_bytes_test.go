package webhooks_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/projections"
	"github.com/sirgiving/ledger/webhooks"
)

// A receiver's answer is stored, whatever bytes it holds (PostgreSQL text
// refuses NUL), so its delivery follows the schedule to the end; and an
// outcome the database refused would not take others of its batch down.
func TestReceiverBytesCannotStallRecording(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	nul := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("oops\x00\xff"))
	}))
	t.Cleanup(nul.Close)
	fine := newReceiver(t, nil)
	regN := h.register(tenant, nul.URL, true)
	regF := h.register(tenant, fine.URL, true)
	fine.setSecret(regF.Secret)
	// Slow flushes let both endpoints' outcomes share recorder batches.
	h.dispatchWith(h.db.Pool, fastOptions(), func(d *webhooks.Dispatcher) {
		webhooks.GateFlushes(d, func() bool { time.Sleep(50 * time.Millisecond); return true })
	})
	h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1", Available: 1})

	eventually(t, func() bool {
		ds := h.deliveries(tenant, regN.Event.WebhookID)
		return len(ds) == 1 && ds[0].Status == "FAILED"
	}, "the delivery to the NUL-answering endpoint runs its schedule")
	d := h.deliveries(tenant, regN.Event.WebhookID)[0]
	require.Equal(t, len(fastOptions().Schedule), d.AttemptCount)
	require.Len(t, d.Attempts, d.AttemptCount)
	for _, a := range d.Attempts {
		require.True(t, strings.HasPrefix(a.ResponseBody, "oops\uFFFD"), "%q", a.ResponseBody)
	}
	eventually(t, func() bool {
		ds := h.deliveries(tenant, regF.Event.WebhookID)
		return len(ds) == 1 && ds[0].Status == "SUCCEEDED"
	}, "the healthy endpoint's delivery succeeds")
	require.Equal(t, 1, fine.count(), "the healthy endpoint got its event once")
}

// An answer that arrived is recorded even when shutdown interrupts the
// rest of the exchange: a success is not thrown away and sent again.
func TestShutdownKeepsAnAnswerThatArrived(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	answered := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		answered <- struct{}{}
		time.Sleep(time.Second) // the body is still coming when shutdown begins
		_, _ = w.Write([]byte("done"))
	}))
	t.Cleanup(srv.Close)
	reg := h.register(tenant, srv.URL, true)
	stop := h.dispatch(fastOptions())
	h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1"})
	<-answered
	time.Sleep(200 * time.Millisecond) // the status line has reached the dispatcher
	stop()

	ds := h.deliveries(tenant, reg.Event.WebhookID)
	require.Len(t, ds, 1)
	require.Equal(t, "SUCCEEDED", ds[0].Status)
	require.Equal(t, 1, ds[0].AttemptCount)
}

// A failure after a long silence starts a new failure streak: an endpoint
// that failed a month ago and saw no traffic since is not disabled by one
// 503 today; one that kept failing is.
func TestQuietSpellStartsANewFailureStreak(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, func(int, received) int { return http.StatusServiceUnavailable })
	reg := h.register(tenant, rc.URL, true)
	rc.setSecret(reg.Secret)
	opts := fastOptions()
	opts.Schedule = opts.Schedule[:1] // each delivery fails at its first attempt
	opts.DisableAfter = 72 * time.Hour
	h.dispatch(opts)
	id := reg.Event.WebhookID
	failEvent := func(n int) {
		h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1", Available: int64(n)})
		eventually(t, func() bool {
			ds := h.deliveries(tenant, id)
			return len(ds) == n && ds[0].Status == "FAILED" && ds[len(ds)-1].Status == "FAILED"
		}, "the delivery fails")
	}
	streakStart := func() time.Time {
		var at time.Time
		require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT failing_since FROM webhook_endpoints WHERE subscription_id = $1`, id).Scan(&at))
		return at
	}
	active := func() bool {
		w, err := projections.GetWebhook(h.ctx, h.db.Pool, tenant, id)
		require.NoError(t, err)
		return w.IsActive
	}
	failEvent(1)

	// A month ago it failed, then nothing: today's failure starts afresh.
	_, err := h.db.Pool.Exec(h.ctx, `UPDATE webhook_endpoints SET failing_since = now() - interval '30 days',
		last_failure_at = now() - interval '30 days' WHERE subscription_id = $1`, id)
	require.NoError(t, err)
	failEvent(2)
	require.WithinDuration(t, time.Now(), streakStart(), time.Hour)
	require.True(t, active())

	// Failing for four days without a long silence: disabled.
	_, err = h.db.Pool.Exec(h.ctx, `UPDATE webhook_endpoints SET failing_since = now() - interval '4 days',
		last_failure_at = now() - interval '2 hours' WHERE subscription_id = $1`, id)
	require.NoError(t, err)
	failEvent(3)
	eventually(t, func() bool { return !active() }, "the webhook is disabled")
}
