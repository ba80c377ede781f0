package events

import "encoding/json"

// EndUserCreated registers one of a partner's end users, identified by the
// partner's own external id.
type EndUserCreated struct {
	UserID     string          `json:"userId"`
	ExternalID string          `json:"externalId"`
	Email      string          `json:"email,omitempty"`
	FirstName  string          `json:"firstName,omitempty"`
	LastName   string          `json:"lastName,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
	// AutoCreated is true when an action created the user.
	AutoCreated bool `json:"autoCreated,omitempty"`
}

// EventType implements Payload.
func (EndUserCreated) EventType() string { return "enduser.created" }

// EndUserUpdated changes an end user's profile; nil fields are unchanged.
type EndUserUpdated struct {
	UserID     string          `json:"userId"`
	ExternalID string          `json:"externalId"`
	Email      *string         `json:"email,omitempty"`
	FirstName  *string         `json:"firstName,omitempty"`
	LastName   *string         `json:"lastName,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

// EventType implements Payload.
func (EndUserUpdated) EventType() string { return "enduser.updated" }

// ActionReward is one stakeholder's share of an action.
type ActionReward struct {
	StakeholderTypeCode string `json:"stakeholderTypeCode"`
	PartnerUserID       string `json:"partnerUserId"`
	UserID              string `json:"userId"`
	Tokens              int64  `json:"tokens"`
	TransactionID       string `json:"transactionId,omitempty"`
}

// ActionCompleted records a rewarded action. Partner-facing: it is the
// `data` of the action.completed webhook.
type ActionCompleted struct {
	ActionID          string          `json:"actionId"`
	IdempotencyKey    string          `json:"idempotencyKey"`
	ActionType        string          `json:"actionType"`
	Amount            string          `json:"amount"`
	Currency          string          `json:"currency"`
	Status            string          `json:"status"`
	TokensDistributed int64           `json:"tokensDistributed"`
	TransactionIDs    []string        `json:"transactionIds"`
	Stakeholders      []ActionReward  `json:"stakeholders"`
	PoolID            string          `json:"poolId"`
	CampaignID        string          `json:"campaignId,omitempty"`
	Metadata          json.RawMessage `json:"metadata,omitempty"`
	// RequestHash fingerprints the request so a reused key with another
	// body is told apart from a retry.
	RequestHash string `json:"requestHash"`
}

// EventType implements Payload.
func (ActionCompleted) EventType() string { return "action.completed" }

// ActionFailed records an action that could not be rewarded (empty pool,
// expired pool, exhausted campaign budget). Partner-facing.
type ActionFailed struct {
	ActionID          string          `json:"actionId"`
	IdempotencyKey    string          `json:"idempotencyKey"`
	ActionType        string          `json:"actionType"`
	Amount            string          `json:"amount"`
	Currency          string          `json:"currency"`
	Status            string          `json:"status"`
	TokensDistributed int64           `json:"tokensDistributed"`
	TransactionIDs    []string        `json:"transactionIds"`
	Stakeholders      []ActionReward  `json:"stakeholders"`
	PoolID            string          `json:"poolId,omitempty"`
	CampaignID        string          `json:"campaignId,omitempty"`
	Metadata          json.RawMessage `json:"metadata,omitempty"`
	Code              string          `json:"code"`
	Reason            string          `json:"reason"`
	RequestHash       string          `json:"requestHash"`
}

// EventType implements Payload.
func (ActionFailed) EventType() string { return "action.failed" }

// ActionReversed takes a completed action's tokens back from its
// stakeholders and returns them to the pool. Partner-facing.
type ActionReversed struct {
	ActionID          string         `json:"actionId"`
	IdempotencyKey    string         `json:"idempotencyKey"`
	ActionType        string         `json:"actionType"`
	Amount            string         `json:"amount"`
	Currency          string         `json:"currency"`
	Status            string         `json:"status"`
	TokensDistributed int64          `json:"tokensDistributed"`
	TokensReversed    int64          `json:"tokensReversed"`
	TransactionIDs    []string       `json:"transactionIds"`
	Stakeholders      []ActionReward `json:"stakeholders"`
	PoolID            string         `json:"poolId"`
	CampaignID        string         `json:"campaignId,omitempty"`
	Reason            string         `json:"reason"`
}

// EventType implements Payload.
func (ActionReversed) EventType() string { return "action.reversed" }

func init() {
	Register[EndUserCreated](1)
	Register[EndUserUpdated](1)
	Register[ActionCompleted](1)
	Register[ActionFailed](1)
	Register[ActionReversed](1)
}
