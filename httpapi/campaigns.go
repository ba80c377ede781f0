package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

func (a *rewardsAPI) campaignHandlers() map[RouteKey]http.HandlerFunc {
	return map[RouteKey]http.HandlerFunc{
		{http.MethodGet, "/v1/partner/campaigns"}:                         a.listCampaigns,
		{http.MethodGet, "/v1/partner/campaigns/active"}:                  a.activeCampaign,
		{http.MethodGet, "/v1/partner/campaigns/:id"}:                     a.getCampaign,
		{http.MethodGet, "/v1/partner/campaigns/:id/analytics"}:           a.campaignAnalytics,
		{http.MethodGet, "/v1/partner/dashboard/campaigns/:id/analytics"}: a.campaignAnalytics,
		{http.MethodPost, "/v1/partner/campaigns"}:                        a.createCampaign,
		{http.MethodPatch, "/v1/partner/campaigns/:id"}:                   a.updateCampaign,
	}
}

func (a *rewardsAPI) listCampaigns(w http.ResponseWriter, r *http.Request) {
	p, win, err := a.window(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := r.URL.Query().Get("status")
	if err := oneOf("status", status, ledger.CampaignDraft, ledger.CampaignScheduled, ledger.CampaignActive, ledger.CampaignPaused, ledger.CampaignEnded); err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cs, total, err := projections.ListCampaigns(r.Context(), a.DB, t, status, win)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, cs)
}

func (a *rewardsAPI) activeCampaign(w http.ResponseWriter, r *http.Request) {
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	c, err := projections.ActiveCampaign(r.Context(), a.DB, t)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (a *rewardsAPI) getCampaign(w http.ResponseWriter, r *http.Request) {
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	c, err := projections.GetCampaign(r.Context(), a.DB, t, mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (a *rewardsAPI) campaignAnalytics(w http.ResponseWriter, r *http.Request) {
	from, to, err := dateRange(r)
	if err == nil && from != nil && to != nil && !from.Before(*to) {
		err = eventstore.Invalid("empty window", eventstore.FieldIssue{Field: "to", Issue: "must be after from"})
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	an, err := projections.GetCampaignAnalytics(r.Context(), a.DB, t, mux.Vars(r)["id"], from, to)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, an)
}

// answerCampaign answers a committed campaign write from the command's
// result. It still waits (bounded) for the read model so the client's next
// read sees the write, but a lagging read model is no error: the write is
// done, and a 503 would make the client retry and create a second campaign.
func (a *rewardsAPI) answerCampaign(w http.ResponseWriter, r *http.Request, out ledger.CampaignOutcome, status int) {
	if err := projections.WaitPosition(r.Context(), a.DB, out.Position, a.ReadWait); err != nil {
		loggerFrom(r.Context()).Warn("rewards read model lagging after campaign write", "campaign", out.CampaignID, "err", err)
	}
	writeJSON(w, status, projections.CampaignViewOf(out.Campaign))
}

func (a *rewardsAPI) createCampaign(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in ledger.CampaignInput
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.CreateCampaign(r.Context(), sc, commandMeta(r), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.answerCampaign(w, r, out, http.StatusCreated)
}

func (a *rewardsAPI) updateCampaign(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in ledger.CampaignPatch
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.UpdateCampaign(r.Context(), sc, commandMeta(r), mux.Vars(r)["id"], in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.answerCampaign(w, r, out, http.StatusOK)
}
