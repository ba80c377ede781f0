package ledger

import (
	"github.com/shopspring/decimal"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// rewardPlan is the arithmetic of one action: how many tokens in total,
// each stakeholder's part, and which pool and campaign pay.
type rewardPlan struct {
	total       int64
	parts       []int64
	poolID      string
	campaignID  string
	budgetShort *eventstore.Error
	emitBudget  func(ss *eventstore.Session, actionID string)
}

// planReward decides the reward of an action (docs/rewards.md):
//   - the campaign is the one named by campaignId (it must be ACTIVE and
//     cover the action type), else the tenant's ACTIVE campaign if it covers
//     the action type, else none;
//   - tokens = amount × multiplier rounded half up to a whole token, where
//     the multiplier is 1 without a campaign, else the campaign's (or its
//     highest tier reached by the amount);
//   - parts follow the campaign's splits by stakeholder type, else equal
//     shares; either way leftover tokens go one each to the first
//     stakeholders in request order, so the parts add up to the total.
func planReward(ss *eventstore.Session, sc eventstore.Tenant, n normalizedAction, rewards []events.ActionReward) (rewardPlan, *eventstore.Error) {
	plan := rewardPlan{emitBudget: func(*eventstore.Session, string) {}}
	st, err := ss.Load(CampaignsStream(sc))
	if err != nil {
		return plan, eventstore.AsError(err)
	}
	cs := st.State.(*Campaigns)
	var c *CampaignState
	now := ss.Now()
	if id := n.in.CampaignID; id != "" {
		c = cs.ByID[id]
		if c == nil {
			e := eventstore.Errorf(eventstore.KindNotFound, "CAMPAIGN_NOT_FOUND", "no campaign %s", id)
			e.Details = []eventstore.FieldIssue{{Field: "campaignId", Issue: "unknown campaign"}}
			return plan, e
		}
		if !c.applies(n.in.ActionType, now) {
			return plan, eventstore.Errorf(eventstore.KindUnprocessable, "CAMPAIGN_NOT_ACTIVE", "campaign %s is %s or does not reward %s actions now", id, c.Status, n.in.ActionType)
		}
	} else if a := cs.ByID[cs.Active]; a != nil && a.applies(n.in.ActionType, now) {
		c = a
	}
	mult := decimal.NewFromInt(1)
	var weights []decimal.Decimal
	if c != nil {
		mult, weights = c.multiplierFor(n.amount), c.weights(rewards)
		plan.campaignID, plan.poolID = c.ID, c.Config.TokenPoolID
	}
	plan.total = RewardTokens(n.amount, mult)
	if weights != nil {
		plan.parts = SplitWeighted(plan.total, weights)
	} else {
		plan.parts = SplitEqual(plan.total, len(rewards))
	}
	if c != nil {
		if b := c.Config.TokenBudget; b != nil && c.Net()+plan.total > *b {
			plan.budgetShort = eventstore.Errorf(eventstore.KindInsufficient, "CAMPAIGN_BUDGET_EXHAUSTED",
				"campaign %s has %d tokens of budget left; this action needs %d", c.ID, *b-c.Net(), plan.total)
		}
		id, total := c.ID, plan.total
		plan.emitBudget = func(ss *eventstore.Session, actionID string) {
			ss.EmitCoalescing(CampaignsStream(sc), events.CampaignBudgetDebited{CampaignID: id, ActionIDs: []string{actionID}, Amount: total})
		}
	}
	return plan, nil
}

// creditCampaign returns a reversed action's tokens to its campaign budget.
func creditCampaign(ss *eventstore.Session, sc eventstore.Tenant, c *events.ActionCompleted) error {
	if c.CampaignID == "" {
		return nil
	}
	ss.Emit(CampaignsStream(sc), events.CampaignBudgetCredited{CampaignID: c.CampaignID, ActionID: c.ActionID, Amount: c.TokensDistributed})
	return nil
}
