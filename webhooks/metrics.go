package webhooks

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	attempts   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	latency    prometheus.Histogram
	depth      prometheus.Gauge
	oldest     prometheus.Gauge
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhook_delivery_attempts_total",
			Help: "Webhook delivery attempts by outcome (success, failure) and failure reason."}, []string{"outcome", "reason"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhook_deliveries_total",
			Help: "Webhook deliveries that reached a final state, by outcome (succeeded, failed, canceled)."}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "webhook_attempt_duration_seconds",
			Help: "Duration of webhook delivery attempts.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "webhook_queue_depth",
			Help: "Webhook deliveries pending (due or scheduled for retry)."}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "webhook_oldest_pending_age_seconds",
			Help: "Age of the oldest pending webhook delivery."}),
	}
	if r != nil {
		r.MustRegister(m.attempts, m.deliveries, m.latency, m.depth, m.oldest)
	}
	return m
}
