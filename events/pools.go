package events

import (
	"encoding/json"
	"time"
)

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

// PoolDebited takes tokens out of a pool for rewarded actions: Amount is
// the sum of what the actions in ActionIDs were paid, in the order they
// were decided. One event pays for every action that debited the pool in
// one group commit with no other event of the pool between them (see
// Coalesce), so under load a hot pool gets one debit per commit instead of
// one per action; each action's own share is its action.completed's
// tokensDistributed.
//
// Schema version 2. Version 1 named one action (actionId) and is upcast
// to a list of one.
type PoolDebited struct {
	PoolID    string   `json:"poolId"`
	ActionIDs []string `json:"actionIds"`
	Amount    int64    `json:"amount"`

	merged bool // built by Coalesce: ActionIDs is its own (joinActionIDs)
}

// EventType implements Payload.
func (PoolDebited) EventType() string { return "pool.debited" }

// MaxDebitActions bounds how many actions one pool.debited pays for, so a
// bulk commit on a hot pool cannot grow one event without limit.
const MaxDebitActions = 1000

// Coalesce merges next, a debit of the same pool decided right after d in
// the same group commit, into one debit. Folding the result is folding
// both: every reader of pool.debited sums Amount. It refuses anything
// else, and a merge past MaxDebitActions.
func (d PoolDebited) Coalesce(next Payload) (Payload, bool) {
	n, ok := next.(PoolDebited)
	if !ok || n.PoolID != d.PoolID {
		return nil, false
	}
	ids, ok := joinActionIDs(d.ActionIDs, d.merged, n.ActionIDs)
	return PoolDebited{PoolID: d.PoolID, ActionIDs: ids, Amount: d.Amount + n.Amount, merged: true}, ok
}

// joinActionIDs is the action list of two merged debits, in order; ok is
// false past MaxDebitActions. Neither part's elements change. When a is
// the list of an earlier merge (own), the result may extend a's array in
// place: the committer merges a value at most once and then drops it
// (eventstore.Coalescer), so a group commit's chain of n merges copies
// each id about once, where copying both parts every time copied n²/2
// ids and allocated as many bytes (8 MB for a hot pool's 1,000 actions).
// A list that is not own (an emitted debit's) is never written to.
func joinActionIDs(a []string, own bool, b []string) ([]string, bool) {
	n := len(a) + len(b)
	if n > MaxDebitActions {
		return nil, false
	}
	if !own || cap(a) < n {
		grown := make([]string, len(a), min(MaxDebitActions, max(2*n, 16)))
		copy(grown, a)
		a = grown
	}
	return append(a, b...), true
}

// oneAction is a version-1 debit: one actionId.
type oneAction struct {
	ActionID string `json:"actionId"`
	Amount   int64  `json:"amount"`
}

// upcastPoolDebitedV1 turns {"poolId","actionId","amount"} into
// {"poolId","actionIds":[actionId],"amount"}.
func upcastPoolDebitedV1(old json.RawMessage) (json.RawMessage, error) {
	var v1 struct {
		PoolID string `json:"poolId"`
		oneAction
	}
	if err := json.Unmarshal(old, &v1); err != nil {
		return nil, err
	}
	return json.Marshal(PoolDebited{PoolID: v1.PoolID, ActionIDs: []string{v1.ActionID}, Amount: v1.Amount})
}

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
	Register[PoolDebited](2, upcastPoolDebitedV1)
	Register[PoolCredited](1)
	Register[PoolLowBalance](1)
	Register[PoolAllocationRequested](1)
	Register[PoolAllocationApproved](1)
	Register[PoolAllocationRejected](1)
}
