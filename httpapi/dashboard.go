// Dashboards: summary, trends, top earners, recent activity, API usage and
// integration health (/v1/partner/dashboard…).

package httpapi

import (
	"net/http"
	"time"

	"github.com/sirgiving/ledger/apiusage"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

func (a *api) dashboardSummary(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(t eventstore.Tenant) (any, error) {
		return projections.Summary(r.Context(), a.DB, t, time.Now())
	})
}

func (a *api) dashboardTrends(w http.ResponseWriter, r *http.Request) {
	days, err := intParam(r, "days", 1, 365, 30)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.serveRead(w, r, func(t eventstore.Tenant) (any, error) {
		return projections.DailyTrends(r.Context(), a.DB, t, days, time.Now())
	})
}

func (a *api) topEarners(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 1, 100, 10)
	if err != nil {
		writeError(w, r, err)
		return
	}
	days, err := intParam(r, "days", 1, 365, 0)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	top, err := projections.TopEarners(r.Context(), a.DB, t, limit, days, time.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Data []projections.TopEarner `json:"data"`
	}{top})
}

func (a *api) recentActivity(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 1, 100, 20)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	acts, _, err := projections.ListActions(r.Context(), a.DB, t, projections.ActionFilter{}, projections.Window{Limit: limit})
	if err != nil {
		writeError(w, r, err)
		return
	}
	if acts == nil {
		acts = []projections.ActionView{}
	}
	writeJSON(w, http.StatusOK, struct {
		Data []projections.ActionView `json:"data"`
	}{acts})
}

func (a *api) apiUsage(w http.ResponseWriter, r *http.Request) {
	days, err := intParam(r, "days", 1, 90, 7)
	if err != nil {
		writeError(w, r, err)
		return
	}
	sc, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	rep, err := apiusage.Usage(r.Context(), a.DB, sc, days, a.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (a *api) integrationHealth(w http.ResponseWriter, r *http.Request) {
	sc, err := tenantOf(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t := sc
	if err := projections.WaitTenant(r.Context(), a.DB, t, a.ReadWait, projections.RewardsName, projections.WebhooksName); err != nil {
		writeError(w, r, err)
		return
	}
	var keyID string
	if p, ok := PrincipalFrom(r.Context()); ok {
		keyID = p.KeyID
	}
	ih, err := apiusage.CheckIntegration(r.Context(), a.DB, sc, keyID, a.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ih)
}
