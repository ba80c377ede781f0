package webhooks_test

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
	queries := &countingTracer{}
	cfg.ConnConfig.Tracer = queries
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
	dispatcherQueries := queries.n.Load()
	mu.Lock()
	defer mu.Unlock()
	// Where the time goes: commit → delivery row (relay, JetStream,
	// fan-out; enqueued_at is the insert's clock inside the fan-out
	// transaction) and delivery row → first attempt (dispatcher). The
	// database and this process share a clock.
	enqueued := map[string]time.Time{}
	rows, err := pool.Query(context.Background(), `SELECT event_id, enqueued_at FROM webhook_deliveries`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			b.Fatal(err)
		}
		enqueued[id] = at
	}
	rows.Close()
	var total, fanOut, dispatch []float64
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for id, at := range first {
		c, ok := committed[id]
		if !ok {
			continue
		}
		total = append(total, ms(at.Sub(c)))
		if e, ok := enqueued[id]; ok {
			fanOut = append(fanOut, ms(e.Sub(c)))
			dispatch = append(dispatch, ms(at.Sub(e)))
		}
	}
	pct := func(lat []float64, p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		sort.Float64s(lat)
		return lat[int(p*float64(len(lat)-1))]
	}
	b.ReportMetric(float64(len(first))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(pct(total, 0.5), "first-attempt-p50-ms")
	b.ReportMetric(pct(total, 0.99), "first-attempt-p99-ms")
	b.ReportMetric(pct(fanOut, 0.5), "commit-to-row-p50-ms")
	b.ReportMetric(pct(fanOut, 0.99), "commit-to-row-p99-ms")
	b.ReportMetric(pct(dispatch, 0.5), "row-to-attempt-p50-ms")
	b.ReportMetric(pct(dispatch, 0.99), "row-to-attempt-p99-ms")
	b.ReportMetric(float64(rc.conns.Load()), "receiver-conns")
	b.ReportMetric(float64(dispatcherQueries)/float64(max(1, len(first))), "dispatcher-queries/delivery")
}

// countingTracer counts the statements a pool sends (round trips, give or
// take a batch).
type countingTracer struct{ n atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (*countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
