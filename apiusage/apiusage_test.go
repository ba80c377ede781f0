package apiusage

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func TestPercentileInterpolatesWithinBuckets(t *testing.T) {
	t.Parallel()
	h := make([]int64, NumBuckets)
	require.Nil(t, percentile(h, 0.5))
	h[3] = 10 // (5, 10] ms
	require.Equal(t, 7.5, *percentile(h, 0.5))
	require.Equal(t, 10.0, *percentile(h, 0.99))
	h[len(h)-1] = 990 // slower than the last bound
	require.Equal(t, LatencyBoundsMs[len(LatencyBoundsMs)-1], *percentile(h, 0.5))
	require.Equal(t, 0, bucketOf(500*time.Microsecond))
	require.Equal(t, 3, bucketOf(10*time.Millisecond))
	require.Equal(t, NumBuckets-1, bucketOf(time.Minute))
}

// Counts of several flushes, and of concurrent recorders (processes),
// add up in the table, histograms included; tenants stay apart.
func TestRecordersAddUpAcrossFlushes(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	now := time.Date(2030, 5, 6, 10, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r1 := NewRecorder(db.Pool, Options{Now: clock})
	r2 := NewRecorder(db.Pool, Options{Now: clock})
	a := eventstore.Tenant{PartnerID: "ptr_a", Environment: "sandbox"}
	b := eventstore.Tenant{PartnerID: "ptr_b", Environment: "sandbox"}
	req := func(sc eventstore.Tenant, route string, status int, code string, ms int) Request {
		return Request{PartnerID: sc.PartnerID, Environment: sc.Environment, Route: route, Status: status, Code: code,
			Latency: time.Duration(ms) * time.Millisecond}
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for _, r := range []*Recorder{r1, r2} {
		wg.Add(1)
		go func(r *Recorder) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				r.Record(req(a, "GET /v1/partner/users", 200, "", 3))
				if i%10 == 0 {
					errs <- r.Flush(ctx)
				}
			}
			r.Record(req(a, "GET /v1/partner/users/:externalId", 404, "USER_NOT_FOUND", 20))
			r.Record(req(b, "GET /v1/partner/users", 200, "", 3))
			r.Record(Request{Route: "GET /v1/partner/users", Status: 401}) // no tenant: not counted
			errs <- r.Flush(ctx)
		}(r)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	rep, err := Usage(ctx, db.Pool, a, 7, now)
	require.NoError(t, err)
	require.Equal(t, int64(102), rep.Totals.Requests)
	require.Equal(t, int64(2), rep.Totals.Errors)
	require.Equal(t, "2030-05-06", rep.To)
	require.Equal(t, int64(102), rep.Daily[6].Requests)
	require.Equal(t, "GET /v1/partner/users", rep.ByEndpoint[0].Endpoint)
	require.Equal(t, int64(100), rep.ByEndpoint[0].Requests)
	require.Equal(t, 3.8, *rep.ByEndpoint[0].LatencyMs.P50) // mid-way in the (2.5, 5] bucket
	require.Equal(t, []CodeCount{{Code: "USER_NOT_FOUND", Status: 404, Count: 2}}, rep.ByErrorCode)

	repB, err := Usage(ctx, db.Pool, b, 7, now)
	require.NoError(t, err)
	require.Equal(t, int64(2), repB.Totals.Requests)

	// Past the window: not counted; pruned rows are gone.
	later, err := Usage(ctx, db.Pool, a, 7, now.AddDate(0, 0, 7))
	require.NoError(t, err)
	require.Equal(t, int64(0), later.Totals.Requests)
	n, err := Prune(ctx, db.Pool, now.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
}
