// Campaigns and their analytics (/v1/partner/campaigns…).

package httpapi

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

func (a *api) listCampaigns(w http.ResponseWriter, r *http.Request) {
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

func (a *api) activeCampaign(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(t eventstore.Tenant) (any, error) {
		return projections.ActiveCampaign(r.Context(), a.DB, t)
	})
}

func (a *api) getCampaign(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(t eventstore.Tenant) (any, error) {
		return projections.GetCampaign(r.Context(), a.DB, t, mux.Vars(r)["id"])
	})
}

func (a *api) campaignAnalytics(w http.ResponseWriter, r *http.Request) {
	from, to, err := dateRange(r)
	if err == nil && from != nil && to != nil && !from.Before(*to) {
		err = eventstore.Invalid("empty window", eventstore.FieldIssue{Field: "to", Issue: "must be after from"})
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.serveRead(w, r, func(t eventstore.Tenant) (any, error) {
		return projections.GetCampaignAnalytics(r.Context(), a.DB, t, mux.Vars(r)["id"], from, to)
	})
}

// answerCampaign answers a committed campaign write from the command's
// result. It still waits (bounded) for the read model so the client's next
// read sees the write, but a lagging read model is no error: the write is
// done, and a 503 would make the client retry and create a second campaign.
func (a *api) answerCampaign(w http.ResponseWriter, r *http.Request, out ledger.CampaignOutcome, status int) {
	if err := projections.WaitPosition(r.Context(), a.DB, out.Position, a.ReadWait); err != nil {
		loggerFrom(r.Context()).Warn("rewards read model lagging after campaign write", "campaign", out.CampaignID, "err", err)
	}
	writeJSON(w, status, campaignViewOf(out.Campaign))
}

func (a *api) createCampaign(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in campaignRequest
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.CreateCampaign(r.Context(), sc, commandMeta(r), in.input())
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.answerCampaign(w, r, out, http.StatusCreated)
}

func (a *api) updateCampaign(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in campaignPatchRequest
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.UpdateCampaign(r.Context(), sc, commandMeta(r), mux.Vars(r)["id"], in.patch())
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.answerCampaign(w, r, out, http.StatusOK)
}

// campaignViewOf is the body of a campaign as a command left it: the same
// as GET /campaigns/:id shows once the read model has applied that command,
// so writes can answer without waiting for it.
func campaignViewOf(c ledger.CampaignState) projections.CampaignView {
	cfg := c.Config
	v := projections.CampaignView{
		ID: c.ID, Name: cfg.Name, Status: c.Status, StartsAt: utcPtr(cfg.StartsAt), EndsAt: utcPtr(cfg.EndsAt),
		ActionTypes: cfg.ActionTypes, Multiplier: cfg.Multiplier, Tiers: cfg.Tiers,
		Splits:            make([]projections.CampaignSplitView, len(cfg.Splits)),
		TokensDistributed: c.Net(), CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(),
	}
	if cfg.Description != "" {
		d := cfg.Description
		v.Description = &d
	}
	if cfg.TokenPoolID != "" {
		p := cfg.TokenPoolID
		v.TokenPoolID = &p
	}
	if v.ActionTypes == nil {
		v.ActionTypes = []string{}
	}
	if v.Tiers == nil {
		v.Tiers = []events.CampaignTier{}
	}
	for i, x := range cfg.Splits {
		v.Splits[i] = projections.CampaignSplitView{StakeholderTypeCode: x.StakeholderTypeCode, Percent: x.Percentage}
	}
	if cfg.TokenBudget != nil {
		b := *cfg.TokenBudget
		v.Budget = &projections.CampaignBudget{Total: b, Used: v.TokensDistributed, Remaining: b - v.TokensDistributed}
	}
	return v
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// tierRequest is one reward tier of a campaign body.
type tierRequest struct {
	MinAmount  decimalText `json:"minAmount"`
	Multiplier decimalText `json:"multiplier"`
}

// splitRequest gives a stakeholder type a percentage of each reward;
// percentage is accepted as an alias of percent.
type splitRequest struct {
	StakeholderTypeCode string      `json:"stakeholderTypeCode"`
	Percent             decimalText `json:"percent"`
	Percentage          decimalText `json:"percentage"`
}

// campaignRequest is the body of POST /campaigns; tokenBudget is accepted
// as an alias of budget.
type campaignRequest struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Status      string         `json:"status"`
	StartsAt    *time.Time     `json:"startsAt"`
	EndsAt      *time.Time     `json:"endsAt"`
	ActionTypes []string       `json:"actionTypes"`
	Multiplier  decimalText    `json:"multiplier"`
	Tiers       []tierRequest  `json:"tiers"`
	Splits      []splitRequest `json:"splits"`
	Budget      *int64         `json:"budget"`
	TokenBudget *int64         `json:"tokenBudget"`
	TokenPoolID string         `json:"tokenPoolId"`
}

// campaignPatchRequest is the body of PATCH /campaigns/:id; absent fields
// are unchanged.
type campaignPatchRequest struct {
	Name        *string         `json:"name"`
	Description *string         `json:"description"`
	Status      *string         `json:"status"`
	StartsAt    *time.Time      `json:"startsAt"`
	EndsAt      *time.Time      `json:"endsAt"`
	ActionTypes *[]string       `json:"actionTypes"`
	Multiplier  *decimalText    `json:"multiplier"`
	Tiers       *[]tierRequest  `json:"tiers"`
	Splits      *[]splitRequest `json:"splits"`
	Budget      *int64          `json:"budget"`
	TokenBudget *int64          `json:"tokenBudget"`
	TokenPoolID *string         `json:"tokenPoolId"`
}

func tierInputs(in []tierRequest) []ledger.TierInput {
	if in == nil {
		return nil
	}
	out := make([]ledger.TierInput, len(in))
	for i, t := range in {
		out[i] = ledger.TierInput{MinAmount: string(t.MinAmount), Multiplier: string(t.Multiplier)}
	}
	return out
}

func splitInputs(in []splitRequest) []ledger.SplitInput {
	if in == nil {
		return nil
	}
	out := make([]ledger.SplitInput, len(in))
	for i, x := range in {
		out[i] = ledger.SplitInput{StakeholderTypeCode: x.StakeholderTypeCode, Percent: string(x.Percent), Percentage: string(x.Percentage)}
	}
	return out
}

func (in campaignRequest) input() ledger.CampaignInput {
	return ledger.CampaignInput{
		Name: in.Name, Description: in.Description, Status: in.Status, StartsAt: in.StartsAt, EndsAt: in.EndsAt,
		ActionTypes: in.ActionTypes, Multiplier: string(in.Multiplier), Tiers: tierInputs(in.Tiers), Splits: splitInputs(in.Splits),
		Budget: in.Budget, TokenBudget: in.TokenBudget, TokenPoolID: in.TokenPoolID,
	}
}

func (in campaignPatchRequest) patch() ledger.CampaignPatch {
	p := ledger.CampaignPatch{
		Name: in.Name, Description: in.Description, Status: in.Status, StartsAt: in.StartsAt, EndsAt: in.EndsAt,
		ActionTypes: in.ActionTypes, Multiplier: in.Multiplier.ptr(), Budget: in.Budget, TokenBudget: in.TokenBudget, TokenPoolID: in.TokenPoolID,
	}
	if in.Tiers != nil {
		t := tierInputs(*in.Tiers)
		p.Tiers = &t
	}
	if in.Splits != nil {
		x := splitInputs(*in.Splits)
		p.Splits = &x
	}
	return p
}
