package eventstore_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// latencies collects per-call durations from parallel goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration, perCall int) {
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	if len(l.d) == 0 {
		return
	}
	pct := func(p float64) float64 {
		return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "cmds/s")
	b.ReportMetric(float64(len(l.d)*perCall)/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

// benchHotStream runs b.N commands from 64 concurrent callers, each
// deciding against one hot stream (a balance that must not go negative)
// and appending perCmd events to it.
func benchHotStream(b *testing.B, opts eventstore.StoreOptions, perCmd int) {
	db := testenv.NewDB(b)
	s := eventstore.OpenStore(db.Pool, opts)
	b.Cleanup(s.Close)
	ctx := context.Background()
	const stream = "testcounter-hot"
	_, err := s.Append(ctx, scope, events.Metadata{}, stream, 0, testFunded{Amount: 1 << 40})
	require.NoError(b, err)
	spent := make([]events.Payload, perCmd)
	for i := range spent {
		spent[i] = testSpent{Amount: 1}
	}
	cmd := eventstore.Command{Tenant: scope, Metadata: events.Metadata{RequestID: "req_bench"}, Decide: func(ss *eventstore.Session) error {
		st, err := ss.Load(stream)
		if err != nil {
			return err
		}
		if st.State.(*counter).balance < int64(perCmd) {
			return eventstore.Errorf(eventstore.KindInsufficient, "EMPTY", "empty")
		}
		for _, p := range spent {
			ss.Emit(stream, p)
		}
		return nil
	}}
	runCallers(b, perCmd, func() error {
		_, err := s.Execute(ctx, cmd)
		return err
	})
}

// runCallers runs call b.N times from 64 concurrent callers and reports
// commands and events per second (perCall events a call) and the calls'
// latency.
func runCallers(b *testing.B, perCall int, call func() error) {
	var lat latencies
	b.SetParallelism(32) // 64 callers on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			if err := call(); err != nil {
				b.Error(err)
				return
			}
			lat.add(time.Since(t0))
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	lat.report(b, elapsed, perCall)
}

// BenchmarkAppendHotStreamGroupCommit: single-event commands on one hot
// stream, grouped into shared transactions.
func BenchmarkAppendHotStreamGroupCommit(b *testing.B) {
	benchHotStream(b, eventstore.StoreOptions{}, 1)
}

// BenchmarkAppendHotStreamOneTxPerCommand is the baseline: the same
// commands, one transaction (and one fsync) each.
func BenchmarkAppendHotStreamOneTxPerCommand(b *testing.B) {
	benchHotStream(b, eventstore.StoreOptions{MaxBatch: 1}, 1)
}

// BenchmarkAppendBatch100 appends commands of 100 events each.
func BenchmarkAppendBatch100(b *testing.B) {
	benchHotStream(b, eventstore.StoreOptions{}, 100)
}

// BenchmarkAppendNewStreams runs commands that each start a stream of
// their own, as a reward submit starts its action's: named in Prefetch
// (read before deciding, as every stream was), or in Fresh (decided as
// empty without a read). 64 callers, one event per command.
func BenchmarkAppendNewStreams(b *testing.B) {
	for _, mode := range []string{"prefetched", "fresh"} {
		b.Run(mode, func(b *testing.B) {
			db := testenv.NewDB(b)
			s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
			b.Cleanup(s.Close)
			ctx := context.Background()
			var next atomic.Int64
			runCallers(b, 1, func() error {
				stream := fmt.Sprintf("testcounter-new-%d", next.Add(1))
				cmd := eventstore.Command{Tenant: scope, Decide: func(ss *eventstore.Session) error {
					st, err := ss.Load(stream)
					if err != nil {
						return err
					}
					if st.Version != 0 {
						return eventstore.Errorf(eventstore.KindConflict, "EXISTS", "exists")
					}
					ss.Emit(stream, testFunded{Amount: 1})
					return nil
				}}
				if mode == "fresh" {
					cmd.Fresh = []string{stream}
				} else {
					cmd.Prefetch = []string{stream}
				}
				_, err := s.Execute(ctx, cmd)
				return err
			})
		})
	}
}
