package webhooks_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The per-endpoint concurrency cap holds across dispatchers of different
// processes (each with its own pool, as two ledgerd would have): claims
// are serialised, so two dispatchers claiming at once cannot each see the
// endpoint idle and take a full cap of deliveries.
func TestPerEndpointCapHoldsAcrossProcesses(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var inFlight, most atomic.Int64
	rc := newReceiver(t, func(int, received) int {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(20 * time.Millisecond) // long enough for the other dispatcher to claim meanwhile
		inFlight.Add(-1)
		return http.StatusOK
	})
	reg := h.register(tenant, rc.URL, true)
	rc.setSecret(reg.Secret)
	opts := fastOptions()
	opts.Workers, opts.PerEndpoint = 8, 2
	const n = 60
	for i := range n {
		h.emit(tenant, "pool-pool_1", poolLowBalance{PoolID: "pool_1", Available: int64(i)})
	}
	// A backlog both dispatchers find at once when they start.
	eventually(t, func() bool {
		var pending int
		require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM webhook_deliveries WHERE status = 'PENDING'`).Scan(&pending))
		return pending == n
	}, "the fan-out records every delivery")
	h.dispatchOn(h.db.Pool, opts)
	h.dispatchOn(h.db.NewPool(t), opts)
	eventually(t, func() bool { return rc.count() >= n }, "every delivery arrives")
	require.LessOrEqual(t, most.Load(), int64(2), "concurrent requests to one endpoint across two dispatchers")
	t.Logf("most concurrent requests to the endpoint across two dispatchers: %d (cap 2)", most.Load())
}
