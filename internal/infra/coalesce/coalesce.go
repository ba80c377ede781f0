// Package coalesce puts the requests of concurrent callers into one round
// trip to the database, the way the event store's group commit does for
// appends: whoever arrives while a round trip is in flight waits for the
// next one, so batches grow with load and an idle process adds no wait.
package coalesce

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Batcher sends queued requests to its exec function, at most MaxBatch at a
// time and with at most MaxInflight calls running. It keeps no goroutine
// while idle: a caller that finds fewer than MaxInflight calls running
// starts one, which sends what is queued until the queue is empty. It never
// waits for a batch to fill.
type Batcher[Q, A any] struct {
	exec        func(ctx context.Context, qs []Q) ([]A, error)
	maxBatch    int
	maxInflight int
	timeout     time.Duration

	mu      sync.Mutex
	pending []*waiter[Q, A]
	running int
}

type waiter[Q, A any] struct {
	q    Q
	a    A
	err  error
	done chan struct{}
}

// New returns a Batcher that answers requests with exec. exec gets a batch
// in arrival order and must return one answer per request, in the same
// order, or an error that every request in the batch then gets. Its
// context is not any caller's (one call answers them all): it ends after
// timeout.
func New[Q, A any](maxBatch, maxInflight int, timeout time.Duration, exec func(ctx context.Context, qs []Q) ([]A, error)) *Batcher[Q, A] {
	return &Batcher[Q, A]{exec: exec, maxBatch: max(maxBatch, 1), maxInflight: max(maxInflight, 1), timeout: timeout}
}

// Do queues q and returns its answer. If ctx ends first, Do returns ctx's
// error, and q may still be sent: a request that must not take effect
// unanswered does not belong here.
func (b *Batcher[Q, A]) Do(ctx context.Context, q Q) (A, error) {
	w := &waiter[Q, A]{q: q, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, w)
	start := b.running < b.maxInflight
	if start {
		b.running++
	}
	b.mu.Unlock()
	if start {
		go b.run()
	}
	select {
	case <-w.done:
		return w.a, w.err
	case <-ctx.Done():
		var zero A
		return zero, ctx.Err()
	}
}

func (b *Batcher[Q, A]) run() {
	for {
		b.mu.Lock()
		n := len(b.pending)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		n = min(n, b.maxBatch)
		batch := b.pending[:n:n]
		if rest := b.pending[n:]; len(rest) > 0 {
			b.pending = append(make([]*waiter[Q, A], 0, len(rest)), rest...)
		} else {
			b.pending = nil
		}
		b.mu.Unlock()
		b.send(batch)
	}
}

func (b *Batcher[Q, A]) send(batch []*waiter[Q, A]) {
	qs := make([]Q, len(batch))
	for i, w := range batch {
		qs[i] = w.q
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	as, err := b.exec(ctx, qs)
	if err == nil && len(as) != len(qs) {
		err = fmt.Errorf("coalesce: %d answers for %d requests", len(as), len(qs))
	}
	for i, w := range batch {
		if err != nil {
			w.err = err
		} else {
			w.a = as[i]
		}
		close(w.done)
	}
}
