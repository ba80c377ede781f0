package coalesce

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Requests that arrive while a call is in flight go out together in the
// next call, in arrival order, and each caller gets its own answer.
func TestRequestsQueuedDuringACallShareTheNext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var calls [][]int
	b := New(100, 1, time.Minute, func(_ context.Context, qs []int) ([]int, error) {
		mu.Lock()
		calls = append(calls, append([]int(nil), qs...))
		first := len(calls) == 1
		mu.Unlock()
		if first {
			<-release
		}
		out := make([]int, len(qs))
		for i, q := range qs {
			out[i] = q * 10
		}
		return out, nil
	})
	got := make([]int, 4)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); got[0], _ = b.Do(context.Background(), 0) }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 1 }, 10*time.Second, time.Millisecond)
	for i := 1; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], _ = b.Do(context.Background(), i) }()
		require.Eventually(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.pending) == i }, 10*time.Second, time.Millisecond)
	}
	close(release)
	wg.Wait()
	require.Equal(t, []int{0, 10, 20, 30}, got)
	require.Equal(t, [][]int{{0}, {1, 2, 3}}, calls)
	require.Eventually(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.running == 0 }, 10*time.Second, time.Millisecond,
		"no goroutine is left once the queue is empty")
}

// A failed call fails every request in it; a call that answers the wrong
// number of requests is a failure too, not a mismatched answer.
func TestAFailedCallFailsEachRequest(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	b := New(10, 1, time.Minute, func(context.Context, []string) ([]string, error) { return nil, boom })
	_, err := b.Do(context.Background(), "a")
	require.ErrorIs(t, err, boom)

	short := New(10, 1, time.Minute, func(context.Context, []string) ([]string, error) { return []string{}, nil })
	_, err = short.Do(context.Background(), "a")
	require.ErrorContains(t, err, "0 answers for 1 requests")
}

// A caller whose context ends stops waiting; the call itself carries on
// under its own deadline, and answers the callers still waiting.
func TestACallerMayStopWaiting(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var deadline time.Time
	b := New(10, 1, time.Minute, func(ctx context.Context, qs []int) ([]int, error) {
		deadline, _ = ctx.Deadline()
		<-release
		return qs, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := b.Do(ctx, 1); done <- err }()
	require.Eventually(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.running == 1 && len(b.pending) == 0 }, 10*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	close(release)
	got, err := b.Do(context.Background(), 2)
	require.NoError(t, err)
	require.Equal(t, 2, got)
	require.WithinDuration(t, time.Now().Add(time.Minute), deadline, 30*time.Second)
}

// MaxBatch bounds a call; the rest wait for the following call.
func TestMaxBatchSplitsAQueue(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	b := New(2, 1, time.Minute, func(_ context.Context, qs []int) ([]int, error) {
		mu.Lock()
		sizes = append(sizes, len(qs))
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release
		}
		return qs, nil
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = b.Do(context.Background(), 0) }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 }, 10*time.Second, time.Millisecond)
	for i := 1; i <= 5; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = b.Do(context.Background(), i) }()
	}
	require.Eventually(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.pending) == 5 }, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.Equal(t, []int{1, 2, 2, 1}, sizes)
}
