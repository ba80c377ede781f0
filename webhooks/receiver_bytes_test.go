package webhooks_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
