package projections_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/projections"
)

// A fresh runner exports its counters at zero for every projection, so
// dashboards and alerts on them see 0 rather than no data until the first
// failure.
func TestRunnerCountersStartAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	_, err := projections.NewRunner(nil, nil, projections.RunnerOptions{Registerer: reg}, projections.Accounts{}, projections.Rewards{})
	require.NoError(t, err)
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string][]string{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			require.Zero(t, m.GetCounter().GetValue(), f.GetName())
			for _, l := range m.GetLabel() {
				got[f.GetName()] = append(got[f.GetName()], l.GetName()+"="+l.GetValue())
			}
		}
	}
	for _, name := range []string{"ledger_projection_failures_total", "ledger_projection_events_applied_total"} {
		require.ElementsMatch(t, []string{"projection=" + projections.AccountsName, "projection=" + projections.RewardsName}, got[name], name)
	}
}
