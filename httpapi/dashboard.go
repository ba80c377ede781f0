package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

func (a *rewardsAPI) dashboardHandlers() map[RouteKey]http.HandlerFunc {
	return map[RouteKey]http.HandlerFunc{
		{http.MethodGet, "/v1/partner/dashboard/summary"}:         a.dashboardSummary,
		{http.MethodGet, "/v1/partner/dashboard/trends"}:          a.dashboardTrends,
		{http.MethodGet, "/v1/partner/dashboard/top-earners"}:     a.topEarners,
		{http.MethodGet, "/v1/partner/dashboard/recent-activity"}: a.recentActivity,
	}
}

// intParam reads an optional integer query parameter within [min, max].
func intParam(r *http.Request, name string, min, max, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, eventstore.Invalid("bad "+name, eventstore.FieldIssue{Field: name, Issue: "must be an integer from " + strconv.Itoa(min) + " to " + strconv.Itoa(max)})
	}
	return n, nil
}

func (a *rewardsAPI) dashboardSummary(w http.ResponseWriter, r *http.Request) {
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s, err := projections.Summary(r.Context(), a.DB, t, time.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (a *rewardsAPI) dashboardTrends(w http.ResponseWriter, r *http.Request) {
	days, err := intParam(r, "days", 1, 365, 30)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	tr, err := projections.DailyTrends(r.Context(), a.DB, t, days, time.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tr)
}

func (a *rewardsAPI) topEarners(w http.ResponseWriter, r *http.Request) {
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

func (a *rewardsAPI) recentActivity(w http.ResponseWriter, r *http.Request) {
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
