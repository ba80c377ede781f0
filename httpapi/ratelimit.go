package httpapi

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// rateLimiter is a fixed one-minute window per bucket (a partner, or a
// portal user), shared by every ledgerd process through PostgreSQL
// (rate_limit_windows) without a round trip per request: a process leases
// a slice of the bucket's minute from the shared count and spends it from
// memory, leasing the next slice while it spends the second half of this
// one.
//
// What it promises, with N processes and a limit L per minute:
//
//   - At most L requests of a bucket are admitted per minute across all
//     processes while PostgreSQL answers: every admitted request spends a
//     slot some lease took from the shared count, and leases never take
//     the count past L. A minute is the same window everywhere as long as
//     the processes' clocks agree; clocks s seconds apart can admit up to
//     L more in the s seconds around the turn of the minute.
//   - Slots a process leased and has not spent are lost to the others
//     until the minute turns, so a partner can be refused before L
//     requests were admitted, by at most (N−1)·1.5·slice(L) of them (a
//     process holds at most half a slice and the next one), where
//     slice(L) = clamp(L/50, 1, 100), and a lease takes no more than a
//     quarter of what is left, so near the limit the slices shrink to one.
//     With one process the count is exact.
//   - At most about L/slice(L) leases per bucket per minute per process
//     (50 for 50 ≤ L ≤ 5000, L/100 above; a few more as slices shrink near
//     the limit). The next
//     slice is leased in the background once half of the current one is
//     spent, so a request waits for a lease only when requests outrun it
//     (a burst) or at the first request of a minute; requests of other
//     buckets never wait for it.
//   - If PostgreSQL cannot be reached, each process counts alone (at most
//     L per process, N·L in all) until it can again; commands fail then
//     anyway (they need PostgreSQL), so the excess is in refused work.
//
// X-RateLimit-Remaining is this process's view: the allowance not yet
// leased by anyone as of its last lease plus its own unspent slots.
type rateLimiter struct {
	db  AuthDB
	log *slog.Logger

	mu      sync.Mutex
	windows map[string]*window

	leases atomic.Int64 // leases taken from the shared count (for tests and benchmarks)
	waits  atomic.Int64 // requests that waited for a lease (for benchmarks)
	warned atomic.Int64 // Unix second of the last "unreachable" warning
}

// window is one bucket's current minute as this process sees it.
type window struct {
	mu      sync.Mutex
	start   int64 // Unix second the minute began
	granted int   // slots this process leased in the minute
	used    int   // of which spent
	shared  int   // slots leased by all processes, as of this process's last lease
	// pending, while a background lease runs (prefetch), is closed when it
	// ends.
	pending chan struct{}
}

func newRateLimiter(db AuthDB, log *slog.Logger) *rateLimiter {
	if log == nil {
		log = slog.Default()
	}
	return &rateLimiter{db: db, log: log, windows: map[string]*window{}}
}

// sliceOf is how many slots one lease asks for under limit.
func sliceOf(limit int) int { return min(max(limit/50, 1), 100) }

// get returns bucket's window, created if absent, locked.
func (l *rateLimiter) get(bucket string) *window {
	l.mu.Lock()
	w := l.windows[bucket]
	if w == nil {
		w = &window{}
		l.windows[bucket] = w
	}
	l.mu.Unlock()
	w.mu.Lock()
	return w
}

// take counts one request; it returns the remaining allowance, the reset
// time (Unix seconds) and whether the request is within the limit.
func (l *rateLimiter) take(ctx context.Context, bucket string, limit int, now time.Time) (int, int64, bool) {
	start := now.Unix() - now.Unix()%60
	reset := start + 60
	w := l.get(bucket)
	defer w.mu.Unlock()
	for {
		if w.start != start {
			w.start, w.granted, w.used, w.shared, w.pending = start, 0, 0, 0, nil
		}
		if w.used < w.granted || w.shared >= limit {
			break
		}
		if ch := w.pending; ch != nil {
			// The next slice is on its way: wait for it, not for a
			// lease of our own.
			l.waits.Add(1)
			w.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			}
			w.mu.Lock()
			if ctx.Err() != nil {
				return w.remaining(limit), reset, false
			}
			continue
		}
		l.waits.Add(1)
		l.lease(ctx, bucket, w, limit)
		break
	}
	if w.used >= w.granted {
		return 0, reset, false
	}
	w.used++
	if w.pending == nil && w.shared < limit && w.granted-w.used <= sliceOf(limit)/2 {
		l.prefetch(bucket, w, limit)
	}
	return w.remaining(limit), reset, true
}

// prefetch leases the next slice in the background once half of this one
// is spent, so that at a steady rate no request waits for a lease. Called
// with w locked.
func (l *rateLimiter) prefetch(bucket string, w *window, limit int) {
	ch := make(chan struct{})
	w.pending = ch
	start := w.start
	go func() {
		defer close(ch)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		granted, shared, err := l.leaseQuery(ctx, bucket, start, limit)
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.pending == ch {
			w.pending = nil
		}
		// A failure is left to the next lease that a request waits for,
		// which falls back to counting locally; a slice for a minute that
		// has ended is lost, as unspent slots are.
		if err == nil && w.start == start {
			w.granted += granted
			w.shared = max(w.shared, shared)
		}
	}()
}

// lease adds a slice of bucket's minute to w from the shared count; if
// PostgreSQL does not answer, it grants this request alone, counted
// against the limit locally. Called with w locked.
func (l *rateLimiter) lease(ctx context.Context, bucket string, w *window, limit int) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	granted, shared, err := l.leaseQuery(ctx, bucket, w.start, limit)
	if err != nil {
		if w.used < limit {
			w.granted = w.used + 1
			w.shared = max(w.shared, w.used+1)
		}
		return
	}
	w.granted += granted
	w.shared = max(w.shared, shared)
}

// leaseQuery takes up to a slice of bucket's minute at start from the
// shared count: it returns the slots granted and the count after.
func (l *rateLimiter) leaseQuery(ctx context.Context, bucket string, start int64, limit int) (granted, shared int, err error) {
	err = l.db.QueryRow(ctx, `
INSERT INTO rate_limit_windows AS w (bucket, window_start, used, granted)
VALUES ($1, $2, least($3, $4, greatest(1, $4 / 4)), least($3, $4, greatest(1, $4 / 4)))
ON CONFLICT (bucket, window_start) DO UPDATE SET
    granted = least($3, greatest(0, $4 - w.used), greatest(1, ($4 - w.used) / 4)),
    used    = w.used + least($3, greatest(0, $4 - w.used), greatest(1, ($4 - w.used) / 4))
RETURNING granted, used`, bucket, start, sliceOf(limit), limit).Scan(&granted, &shared)
	if err != nil {
		if last := l.warned.Load(); time.Now().Unix()-last >= 10 && l.warned.CompareAndSwap(last, time.Now().Unix()) {
			l.log.Warn("rate limit: the shared count is unreachable; counting in this process alone", "err", err)
		}
		return 0, 0, err
	}
	l.leases.Add(1)
	return granted, shared, nil
}

// remaining is the allowance left as this process sees it.
func (w *window) remaining(limit int) int {
	return max(0, limit-w.shared) + (w.granted - w.used)
}

// give returns a request's allowance taken at now (its window still
// open) to this process's slice and reports the remaining allowance.
func (l *rateLimiter) give(bucket string, limit int, now time.Time) int {
	start := now.Unix() - now.Unix()%60
	w := l.get(bucket)
	defer w.mu.Unlock()
	if w.start != start {
		return limit
	}
	if w.used > 0 {
		w.used--
	}
	return w.remaining(limit)
}

// remaining reports bucket's allowance left under limit at now.
func (l *rateLimiter) remaining(bucket string, limit int, now time.Time) int {
	start := now.Unix() - now.Unix()%60
	w := l.get(bucket)
	defer w.mu.Unlock()
	if w.start != start {
		return limit
	}
	return w.remaining(limit)
}

// prune forgets the minutes that have ended, here and in the shared count.
func (l *rateLimiter) prune(ctx context.Context, now time.Time) {
	start := now.Unix() - now.Unix()%60
	l.mu.Lock()
	for k, w := range l.windows {
		// A window locked now is in use (perhaps waiting for a lease):
		// not one to prune, and not one to wait for while holding l.mu.
		if !w.mu.TryLock() {
			continue
		}
		// A take that fetched w just before it is deleted spends from an
		// orphan: at worst one slice is stranded, never an excess.
		if w.start < start {
			delete(l.windows, k)
		}
		w.mu.Unlock()
	}
	l.mu.Unlock()
	if _, err := l.db.Exec(ctx, `DELETE FROM rate_limit_windows WHERE window_start < $1`, start-60); err != nil && ctx.Err() == nil {
		l.log.Warn("rate limit: pruning the shared count failed", "err", err)
	}
}
