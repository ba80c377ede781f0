package projections

import (
	"encoding/json"
	"fmt"

	"github.com/sirgiving/ledger/events"
)

// The public webhook payloads (CONTRACT §6): the `data` member of each
// webhook envelope. They are the partners' types, not the ledger's: each is
// mapped from its event field by field, so an internal event can evolve — a
// member added, renamed or bookkeeping like the idempotency fingerprint —
// without changing a byte a receiver gets (TestWebhookBodiesArePinned).
// Member order is part of what receivers have always seen:
// action.completed, action.failed and transaction.completed list members
// alphabetically; the others in event order.

// RewardShareData is one stakeholder's share of an action.
type RewardShareData struct {
	StakeholderTypeCode string `json:"stakeholderTypeCode"`
	PartnerUserID       string `json:"partnerUserId"`
	UserID              string `json:"userId"`
	Tokens              int64  `json:"tokens"`
	TransactionID       string `json:"transactionId,omitempty"`
}

// ActionCompletedData is the data of action.completed, and, with
// TransactionID set, of each transaction.completed it produces.
type ActionCompletedData struct {
	ActionID          string            `json:"actionId"`
	ActionType        string            `json:"actionType"`
	Amount            string            `json:"amount"`
	CampaignID        string            `json:"campaignId,omitempty"`
	Currency          string            `json:"currency"`
	IdempotencyKey    string            `json:"idempotencyKey"`
	Metadata          json.RawMessage   `json:"metadata,omitempty"`
	PoolID            string            `json:"poolId"`
	Stakeholders      []RewardShareData `json:"stakeholders"`
	Status            string            `json:"status"`
	TokensDistributed int64             `json:"tokensDistributed"`
	// TransactionID is set in transaction.completed only: the one
	// transaction of the action that webhook is about.
	TransactionID  string   `json:"transactionId,omitempty"`
	TransactionIDs []string `json:"transactionIds"`
}

// ActionFailedData is the data of action.failed.
type ActionFailedData struct {
	ActionID          string            `json:"actionId"`
	ActionType        string            `json:"actionType"`
	Amount            string            `json:"amount"`
	CampaignID        string            `json:"campaignId,omitempty"`
	Code              string            `json:"code"`
	Currency          string            `json:"currency"`
	IdempotencyKey    string            `json:"idempotencyKey"`
	Metadata          json.RawMessage   `json:"metadata,omitempty"`
	PoolID            string            `json:"poolId,omitempty"`
	Reason            string            `json:"reason"`
	Stakeholders      []RewardShareData `json:"stakeholders"`
	Status            string            `json:"status"`
	TokensDistributed int64             `json:"tokensDistributed"`
	TransactionIDs    []string          `json:"transactionIds"`
}

// ActionReversedData is the data of action.reversed.
type ActionReversedData struct {
	ActionID          string            `json:"actionId"`
	IdempotencyKey    string            `json:"idempotencyKey"`
	ActionType        string            `json:"actionType"`
	Amount            string            `json:"amount"`
	Currency          string            `json:"currency"`
	Status            string            `json:"status"`
	TokensDistributed int64             `json:"tokensDistributed"`
	TokensReversed    int64             `json:"tokensReversed"`
	TransactionIDs    []string          `json:"transactionIds"`
	Stakeholders      []RewardShareData `json:"stakeholders"`
	PoolID            string            `json:"poolId"`
	CampaignID        string            `json:"campaignId,omitempty"`
	Reason            string            `json:"reason"`
}

// PoolLowBalanceData is the data of token_pool.low_balance.
type PoolLowBalanceData struct {
	PoolID    string `json:"poolId"`
	Available int64  `json:"available"`
	Threshold int64  `json:"threshold"`
}

// CampaignStatusChangedData is the data of campaign.status_changed.
type CampaignStatusChangedData struct {
	CampaignID string `json:"campaignId"`
	From       string `json:"from"`
	To         string `json:"to"`
	Reason     string `json:"reason,omitempty"`
}

// WebhookTestData is the data of webhook.test.
type WebhookTestData struct {
	Message   string `json:"message"`
	WebhookID string `json:"webhookId"`
}

// DonationCompletedData is the data of donation.completed: the payment
// and the reward it earned. Amounts are integer cents, as in create-link.
type DonationCompletedData struct {
	PartnerDonationID string `json:"partnerDonationId"`
	Status            string `json:"status"`
	Provider          string `json:"provider"`
	NonprofitSlug     string `json:"nonprofitSlug"`
	Amount            int64  `json:"amount"`
	TipAmount         int64  `json:"tipAmount"`
	Currency          string `json:"currency"`
	PartnerUserID     string `json:"partnerUserId"`
	ActionID          string `json:"actionId,omitempty"`
	TokensRewarded    int64  `json:"tokensRewarded"`
}

// DonationFailedData is the data of donation.failed.
type DonationFailedData struct {
	PartnerDonationID string `json:"partnerDonationId"`
	Status            string `json:"status"`
	Provider          string `json:"provider"`
	NonprofitSlug     string `json:"nonprofitSlug"`
	Amount            int64  `json:"amount"`
	Currency          string `json:"currency"`
	Reason            string `json:"reason,omitempty"`
}

// DonationRefundedData is the data of donation.refunded.
type DonationRefundedData struct {
	PartnerDonationID string `json:"partnerDonationId"`
	Status            string `json:"status"`
	Provider          string `json:"provider"`
	NonprofitSlug     string `json:"nonprofitSlug"`
	Amount            int64  `json:"amount"`
	Currency          string `json:"currency"`
	ActionID          string `json:"actionId,omitempty"`
	TokensReversed    int64  `json:"tokensReversed"`
	Reason            string `json:"reason,omitempty"`
}

// webhookTestMessage is the text of every webhook.test.
const webhookTestMessage = "This is a test webhook from SIR Giving."

func shares(rs []events.ActionReward) []RewardShareData {
	if rs == nil {
		return nil
	}
	out := make([]RewardShareData, len(rs))
	for i, r := range rs {
		out[i] = RewardShareData(r)
	}
	return out
}

// webhookData maps a partner-facing event to its webhook type and data;
// ok is false for events partners are not told about. transactionIDs are
// the transactions an action.completed also announces one by one.
func webhookData(e events.Event) (typ string, data any, transactionIDs []string, ok bool, err error) {
	typ, ok = webhookTypeOf[e.Type]
	if !ok {
		return "", nil, nil, false, nil
	}
	p, err := events.Decode(e)
	if err != nil {
		return "", nil, nil, false, fmt.Errorf("webhooks: decode %s: %w", e.Type, err)
	}
	switch v := p.(type) {
	case events.ActionCompleted:
		return typ, ActionCompletedData{
			ActionID: v.ActionID, ActionType: v.ActionType, Amount: v.Amount, CampaignID: v.CampaignID, Currency: v.Currency,
			IdempotencyKey: v.IdempotencyKey, Metadata: v.Metadata, PoolID: v.PoolID, Stakeholders: shares(v.Stakeholders),
			Status: v.Status, TokensDistributed: v.TokensDistributed, TransactionIDs: v.TransactionIDs,
		}, v.TransactionIDs, true, nil
	case events.ActionFailed:
		return typ, ActionFailedData{
			ActionID: v.ActionID, ActionType: v.ActionType, Amount: v.Amount, CampaignID: v.CampaignID, Code: v.Code,
			Currency: v.Currency, IdempotencyKey: v.IdempotencyKey, Metadata: v.Metadata, PoolID: v.PoolID, Reason: v.Reason,
			Stakeholders: shares(v.Stakeholders), Status: v.Status, TokensDistributed: v.TokensDistributed, TransactionIDs: v.TransactionIDs,
		}, nil, true, nil
	case events.ActionReversed:
		return typ, ActionReversedData{
			ActionID: v.ActionID, IdempotencyKey: v.IdempotencyKey, ActionType: v.ActionType, Amount: v.Amount, Currency: v.Currency,
			Status: v.Status, TokensDistributed: v.TokensDistributed, TokensReversed: v.TokensReversed, TransactionIDs: v.TransactionIDs,
			Stakeholders: shares(v.Stakeholders), PoolID: v.PoolID, CampaignID: v.CampaignID, Reason: v.Reason,
		}, nil, true, nil
	case events.PoolLowBalance:
		return typ, PoolLowBalanceData(v), nil, true, nil
	case events.CampaignStatusChanged:
		return typ, CampaignStatusChangedData(v), nil, true, nil
	case events.DonationCompleted:
		return typ, DonationCompletedData{PartnerDonationID: v.DonationID, Status: "COMPLETED", Provider: v.Provider,
			NonprofitSlug: v.NonprofitSlug, Amount: v.Amount, TipAmount: v.TipAmount, Currency: v.Currency,
			PartnerUserID: v.PartnerUserID, ActionID: v.ActionID, TokensRewarded: v.TokensRewarded}, nil, true, nil
	case events.DonationFailed:
		return typ, DonationFailedData{PartnerDonationID: v.DonationID, Status: "FAILED", Provider: v.Provider,
			NonprofitSlug: v.NonprofitSlug, Amount: v.Amount, Currency: v.Currency, Reason: v.Reason}, nil, true, nil
	case events.DonationRefunded:
		return typ, DonationRefundedData{PartnerDonationID: v.DonationID, Status: "REFUNDED", Provider: v.Provider,
			NonprofitSlug: v.NonprofitSlug, Amount: v.Amount, Currency: v.Currency, ActionID: v.ActionID,
			TokensReversed: v.TokensReversed, Reason: v.Reason}, nil, true, nil
	}
	return "", nil, nil, false, fmt.Errorf("webhooks: %s has no public payload", e.Type)
}
