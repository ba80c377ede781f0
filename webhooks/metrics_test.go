package webhooks

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// A fresh registry exposes the delivery counters at zero, for every
// outcome and failure reason, before any delivery is attempted.
func TestDeliveryCountersStartAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	families, err := reg.Gather()
	require.NoError(t, err)
	series := map[string]map[string]bool{}
	for _, f := range families {
		series[f.GetName()] = map[string]bool{}
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			series[f.GetName()][key] = true
			if f.GetType().String() == "COUNTER" {
				require.Zero(t, m.GetCounter().GetValue(), f.GetName())
			}
		}
	}
	for _, o := range []string{"succeeded", "failed", "canceled"} {
		require.True(t, series["webhook_deliveries_total"]["outcome="+o+","], o)
	}
	require.True(t, series["webhook_delivery_attempts_total"]["outcome=success,reason=,"])
	for _, r := range []string{"timeout", "http_5xx", "connection_refused", "invalid_url"} {
		require.True(t, series["webhook_delivery_attempts_total"]["outcome=failure,reason="+r+","], r)
	}
}
