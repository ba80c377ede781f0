package eventstore

import (
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type storeMetrics struct {
	batchCommands prometheus.Histogram
	batchEvents   prometheus.Histogram
	latency       prometheus.Histogram
	errors        prometheus.Counter
	appended      prometheus.Counter
	retries       prometheus.Counter
	wrongGuesses  prometheus.Counter
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	m := &storeMetrics{
		batchCommands: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ledger_append_batch_commands", Help: "Commands sharing one group-commit transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ledger_append_batch_events", Help: "Events appended by one group-commit transaction.",
			Buckets: []float64{0, 1, 4, 16, 64, 256, 1024, 4096},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ledger_append_duration_seconds", Help: "Time from the start of a group commit to COMMIT returning.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_append_failures_total", Help: "Group commits that failed and were rolled back.",
		}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_events_appended_total", Help: "Events durably appended by this process.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_append_redecisions_total", Help: "Group commits re-decided because another process appended first.",
		}),
		wrongGuesses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_append_fresh_misses_total",
			Help: "Group commits re-decided because a stream decided as new without a read (an action's, for a reused idempotency key) was not.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.batchCommands, m.batchEvents, m.latency, m.errors, m.appended, m.retries, m.wrongGuesses)
	}
	return m
}

func (m *storeMetrics) observe(commands, evs int, d time.Duration) {
	m.batchCommands.Observe(float64(commands))
	m.batchEvents.Observe(float64(evs))
	m.latency.Observe(d.Seconds())
	m.appended.Add(float64(evs))
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
