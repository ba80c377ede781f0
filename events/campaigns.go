package events

import (
	"encoding/json"
	"time"
)

// CampaignTier raises the multiplier for amounts at or above MinAmount.
type CampaignTier struct {
	MinAmount  string `json:"minAmount"`
	Multiplier string `json:"multiplier"`
}

// CampaignSplit gives a stakeholder type a percentage of each reward.
type CampaignSplit struct {
	StakeholderTypeCode string `json:"stakeholderTypeCode"`
	Percentage          string `json:"percentage"`
}

// CampaignConfig is a campaign's full, current configuration.
type CampaignConfig struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	StartsAt    *time.Time      `json:"startsAt,omitempty"`
	EndsAt      *time.Time      `json:"endsAt,omitempty"`
	ActionTypes []string        `json:"actionTypes"`
	Multiplier  string          `json:"multiplier"`
	Tiers       []CampaignTier  `json:"tiers"`
	Splits      []CampaignSplit `json:"splits"`
	// TokenBudget caps the tokens the campaign may distribute (net of
	// reversals); nil means no cap beyond the pool's.
	TokenBudget *int64 `json:"tokenBudget,omitempty"`
	TokenPoolID string `json:"tokenPoolId,omitempty"`
}

// CampaignCreated creates a campaign. All campaign events of a tenant live
// on one stream, campaigns-<partner>-<environment>, so at most one campaign
// is ACTIVE per tenant and budgets are decided serially.
type CampaignCreated struct {
	CampaignID string         `json:"campaignId"`
	Status     string         `json:"status"`
	Config     CampaignConfig `json:"config"`
}

// EventType implements Payload.
func (CampaignCreated) EventType() string { return "campaign.created" }

// CampaignUpdated replaces a campaign's configuration.
type CampaignUpdated struct {
	CampaignID string         `json:"campaignId"`
	Config     CampaignConfig `json:"config"`
}

// EventType implements Payload.
func (CampaignUpdated) EventType() string { return "campaign.updated" }

// CampaignStatusChanged moves a campaign between DRAFT, SCHEDULED, ACTIVE,
// PAUSED and ENDED. Partner-facing (webhook data).
type CampaignStatusChanged struct {
	CampaignID string `json:"campaignId"`
	From       string `json:"from"`
	To         string `json:"to"`
	Reason     string `json:"reason,omitempty"`
}

// EventType implements Payload.
func (CampaignStatusChanged) EventType() string { return "campaign.status_changed" }

// CampaignBudgetDebited records tokens a campaign paid for actions:
// Amount is the sum of what the actions in ActionIDs were paid, in the
// order they were decided. Like pool.debited, one event pays for every
// action of one group commit that drew on the campaign with no other
// campaign event between them (Coalesce).
//
// Schema version 2. Version 1 named one action (actionId) and is upcast
// to a list of one.
type CampaignBudgetDebited struct {
	CampaignID string   `json:"campaignId"`
	ActionIDs  []string `json:"actionIds"`
	Amount     int64    `json:"amount"`

	merged bool // built by Coalesce: ActionIDs is its own (joinActionIDs)
}

// EventType implements Payload.
func (CampaignBudgetDebited) EventType() string { return "campaign.budget_debited" }

// Coalesce merges next, a debit of the same campaign's budget decided
// right after d in the same group commit, into one debit; folding the
// result is folding both (readers sum Amount). It refuses anything else,
// and a merge past MaxDebitActions.
func (d CampaignBudgetDebited) Coalesce(next Payload) (Payload, bool) {
	n, ok := next.(CampaignBudgetDebited)
	if !ok || n.CampaignID != d.CampaignID {
		return nil, false
	}
	ids, ok := joinActionIDs(d.ActionIDs, d.merged, n.ActionIDs)
	return CampaignBudgetDebited{CampaignID: d.CampaignID, ActionIDs: ids, Amount: d.Amount + n.Amount, merged: true}, ok
}

// upcastCampaignBudgetDebitedV1 turns {"campaignId","actionId","amount"}
// into {"campaignId","actionIds":[actionId],"amount"}.
func upcastCampaignBudgetDebitedV1(old json.RawMessage) (json.RawMessage, error) {
	var v1 struct {
		CampaignID string `json:"campaignId"`
		oneAction
	}
	if err := json.Unmarshal(old, &v1); err != nil {
		return nil, err
	}
	return json.Marshal(CampaignBudgetDebited{CampaignID: v1.CampaignID, ActionIDs: []string{v1.ActionID}, Amount: v1.Amount})
}

// CampaignBudgetCredited returns a reversed action's tokens to the budget.
type CampaignBudgetCredited struct {
	CampaignID string `json:"campaignId"`
	ActionID   string `json:"actionId"`
	Amount     int64  `json:"amount"`
}

// EventType implements Payload.
func (CampaignBudgetCredited) EventType() string { return "campaign.budget_credited" }

func init() {
	Register[CampaignCreated](1)
	Register[CampaignUpdated](1)
	Register[CampaignStatusChanged](1)
	Register[CampaignBudgetDebited](2, upcastCampaignBudgetDebitedV1)
	Register[CampaignBudgetCredited](1)
}
