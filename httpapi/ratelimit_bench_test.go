package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirgiving/ledger/internal/testkit/testenv"
)

// BenchmarkRateLimit is the rate limit's cost per admitted request on the
// hot path: "local" is the in-memory spend alone (what every request pays,
// and all the old per-process limiter did), the others include the leases
// from the shared count in PostgreSQL at the default STANDARD and
// ENTERPRISE limits, amortised over the requests each slice admits. Each
// bucket is used for exactly its limit, so every request is admitted.
// waits/op counts the requests that waited for a lease: in this tight loop
// requests outrun the background lease; BenchmarkRateLimitPaced shows a
// steady rate.
func BenchmarkRateLimit(b *testing.B) {
	db := testenv.NewDB(b)
	now := time.Now()
	for _, limit := range []int{0, 600, 10000} {
		name := fmt.Sprintf("limit=%d", limit)
		if limit == 0 {
			name = "local"
		}
		b.Run(name, func(b *testing.B) {
			l := newRateLimiter(db.Pool, slog.New(slog.DiscardHandler))
			ctx := context.Background()
			perBucket := max(limit, 1_000_000_000)
			if limit > 0 {
				perBucket = limit
			}
			if limit == 0 {
				// One bucket with a lease that never runs out.
				w := l.get("local")
				w.start, w.granted, w.shared = now.Unix()-now.Unix()%60, 1<<40, 1<<40
				w.mu.Unlock()
			}
			var n atomic.Int64
			run := fmt.Sprintf("%d-", time.Now().UnixNano())
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1) - 1
					bucket := "local"
					if limit > 0 {
						bucket = run + fmt.Sprint(i/int64(perBucket))
					}
					if _, _, ok := l.take(ctx, bucket, perBucket, now); !ok {
						b.Fatal("refused")
					}
				}
			})
			b.StopTimer()
			if limit > 0 {
				b.ReportMetric(float64(l.leases.Load())/float64(b.N), "leases/op")
				b.ReportMetric(float64(l.waits.Load())/float64(b.N), "waits/op")
			}
		})
	}
}

// BenchmarkRateLimitPaced sends requests at a steady pace (one per 200 µs
// per goroutine, well above what one partner may send) and reports how many
// waited for a lease: with the next slice leased in the background, almost
// none. Its ns/op is mostly the pacing.
func BenchmarkRateLimitPaced(b *testing.B) {
	db := testenv.NewDB(b)
	now := time.Now()
	const limit = 600
	l := newRateLimiter(db.Pool, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	var n atomic.Int64
	run := fmt.Sprintf("%d-", time.Now().UnixNano())
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) - 1
			if _, _, ok := l.take(ctx, run+fmt.Sprint(i/limit), limit, now); !ok {
				b.Fatal("refused")
			}
			time.Sleep(200 * time.Microsecond)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(l.leases.Load())/float64(b.N), "leases/op")
	b.ReportMetric(float64(l.waits.Load())/float64(b.N), "waits/op")
}
