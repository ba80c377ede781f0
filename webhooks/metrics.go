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
	// A labelled counter is exported only once a label set is used, so a
	// fresh process would show no webhook_* series at all and an alert on
	// rate(webhook_delivery_attempts_total{outcome="failure"}) would see
	// "no data" rather than 0. Create every known series at zero.
	m.attempts.WithLabelValues("success", "").Add(0)
	for _, reason := range failureReasons {
		m.attempts.WithLabelValues("failure", reason).Add(0)
	}
	for _, outcome := range []string{"succeeded", "failed", "canceled"} {
		m.deliveries.WithLabelValues(outcome).Add(0)
	}
	if r != nil {
		r.MustRegister(m.attempts, m.deliveries, m.latency, m.depth, m.oldest)
	}
	return m
}

// failureReasons are the reason labels a failed attempt can carry: the
// outcomes of an attempt and the network error classes of classify. A
// reason missing here still counts when it happens; it only starts from
// no series instead of zero.
var failureReasons = []string{
	"invalid_url", "redirect", "http_429", "http_4xx", "http_5xx",
	"blocked_address", "timeout", "dns", "tls", "connection_refused", "network",
}
