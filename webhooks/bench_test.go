package webhooks_test

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/projections"
)

// BenchmarkDelivery measures deliveries per second to a local receiver and
// the latency from a command's commit to the first attempt arriving.
func BenchmarkDelivery(b *testing.B) {
	h := newHarness(b)
	var mu sync.Mutex
	first := map[string]time.Time{}
	rc := newReceiver(b, func(_ int, r received) int {
		mu.Lock()
		if _, ok := first[r.Env.ID]; !ok {
			first[r.Env.ID] = time.Now()
		}
		mu.Unlock()
		return http.StatusOK
	})
	reg := h.register(tenant, rc.URL, true)
	rc.setSecret(reg.Secret)
	opts := fastOptions()
	opts.Workers, opts.PerEndpoint = 64, 32
	// A process's own pool, sized like ledgerd's, not the test's small one.
	cfg, err := pgxpool.ParseConfig(h.db.URL)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 32
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	h.dispatchOn(pool, opts)

	committed := make(map[string]time.Time, b.N)
	var cmu sync.Mutex
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				e := h.emit(tenant, "pool-pool_bench", poolLowBalance{PoolID: "pool_bench", Available: int64(i)})
				at := time.Now()
				cmu.Lock()
				committed[projections.WebhookEventID(e.ID.String(), "token_pool.low_balance", 0)] = at
				cmu.Unlock()
			}
		}()
	}
	for i := range b.N {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commits/s")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		mu.Lock()
		n := len(first)
		mu.Unlock()
		if n >= b.N || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	lat := make([]float64, 0, len(first))
	for id, at := range first {
		if c, ok := committed[id]; ok {
			lat = append(lat, float64(at.Sub(c).Microseconds())/1000)
		}
	}
	sort.Float64s(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))]
	}
	b.ReportMetric(float64(len(first))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(pct(0.5), "first-attempt-p50-ms")
	b.ReportMetric(pct(0.99), "first-attempt-p99-ms")
}
