package events

import "time"

// PoolProvisioned creates a token pool with its first allocation. A pool
// belongs to the partner and environment of the event's scope.
type PoolProvisioned struct {
	PoolID              string     `json:"poolId"`
	Name                string     `json:"name"`
	Environment         string     `json:"environment"`
	Allocated           int64      `json:"allocated"`
	LowBalanceThreshold int64      `json:"lowBalanceThreshold"`
	ExpiresAt           *time.Time `json:"expiresAt,omitempty"`
	// VestingDays is a restriction carried for partners' information.
	VestingDays int `json:"vestingDays,omitempty"`
	// AutoRefill, when enabled, files an allocation request of AutoRefillAmount
	// once available tokens fall under AutoRefillThreshold.
	AutoRefill          bool  `json:"autoRefill,omitempty"`
	AutoRefillThreshold int64 `json:"autoRefillThreshold,omitempty"`
	AutoRefillAmount    int64 `json:"autoRefillAmount,omitempty"`
}

// EventType implements Payload.
func (PoolProvisioned) EventType() string { return "pool.provisioned" }

// PoolDebited takes tokens out of a pool for a rewarded action (or a
// campaign's share of one).
type PoolDebited struct {
	PoolID   string `json:"poolId"`
	ActionID string `json:"actionId"`
	Amount   int64  `json:"amount"`
}

// EventType implements Payload.
func (PoolDebited) EventType() string { return "pool.debited" }

// PoolCredited returns tokens to a pool (a reversal).
type PoolCredited struct {
	PoolID   string `json:"poolId"`
	ActionID string `json:"actionId"`
	Amount   int64  `json:"amount"`
	Reason   string `json:"reason"`
}

// EventType implements Payload.
func (PoolCredited) EventType() string { return "pool.credited" }

// PoolLowBalance says a pool's available tokens fell under its threshold.
// It is emitted once per crossing and is partner-facing (webhook data).
type PoolLowBalance struct {
	PoolID    string `json:"poolId"`
	Available int64  `json:"available"`
	Threshold int64  `json:"threshold"`
}

// EventType implements Payload.
func (PoolLowBalance) EventType() string { return "pool.low_balance" }

// PoolAllocationRequested files a request for more tokens in a pool.
type PoolAllocationRequested struct {
	RequestID string `json:"requestId"`
	PoolID    string `json:"poolId"`
	Amount    int64  `json:"amount"`
	Reason    string `json:"reason"`
	// Auto is true for requests filed by auto-refill.
	Auto bool `json:"auto,omitempty"`
}

// EventType implements Payload.
func (PoolAllocationRequested) EventType() string { return "pool.allocation_requested" }

// PoolAllocationApproved grants a request: the pool's allocation grows by Amount.
type PoolAllocationApproved struct {
	RequestID  string `json:"requestId"`
	PoolID     string `json:"poolId"`
	Amount     int64  `json:"amount"`
	ApprovedBy string `json:"approvedBy"`
}

// EventType implements Payload.
func (PoolAllocationApproved) EventType() string { return "pool.allocation_approved" }

// PoolAllocationRejected refuses a request.
type PoolAllocationRejected struct {
	RequestID  string `json:"requestId"`
	PoolID     string `json:"poolId"`
	Reason     string `json:"reason"`
	RejectedBy string `json:"rejectedBy"`
}

// EventType implements Payload.
func (PoolAllocationRejected) EventType() string { return "pool.allocation_rejected" }

func init() {
	Register[PoolProvisioned](1)
	Register[PoolDebited](1)
	Register[PoolCredited](1)
	Register[PoolLowBalance](1)
	Register[PoolAllocationRequested](1)
	Register[PoolAllocationApproved](1)
	Register[PoolAllocationRejected](1)
}
