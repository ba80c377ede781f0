package ledger

import (
	"github.com/shopspring/decimal"

	"github.com/sirgiving/ledger/events"
)

// rewardPlan is the arithmetic of one action: how many tokens in total,
// each stakeholder's part, and which pool and campaign pay.
type rewardPlan struct {
	total       int64
	parts       []int64
	poolID      string
	campaignID  string
	budgetShort *Error
	emitBudget  func(ss *Session, actionID string)
}

// planReward applies the default rule (one token per currency unit, equal
// split); campaigns override it.
func planReward(ss *Session, sc Scope, n normalizedAction, rewards []events.ActionReward) (rewardPlan, *Error) {
	total := RewardTokens(n.amount, decimal.NewFromInt(1))
	return rewardPlan{total: total, parts: SplitEqual(total, len(rewards)), emitBudget: func(*Session, string) {}}, nil
}

func creditCampaign(ss *Session, sc Scope, c *events.ActionCompleted) error { return nil }
