package events

import "time"

// PoolProvisioned creates a token pool with an initial allocation. It is
// written on pool-pool_<hex> with scope {PartnerID, Environment}. Fields are
// partner-facing camelCase.
type PoolProvisioned struct {
	PoolID      string `json:"poolId"`
	Name        string `json:"name"`
	Environment string `json:"environment"`
	// Allocated is the number of tokens put in the pool.
	Allocated int64 `json:"allocated"`
	// LowBalanceThreshold triggers pool.low_balance; 10% of Allocated by default.
	LowBalanceThreshold int64      `json:"lowBalanceThreshold"`
	ExpiresAt           *time.Time `json:"expiresAt,omitempty"`
}

// EventType implements Payload.
func (PoolProvisioned) EventType() string { return "pool.provisioned" }

func init() { Register[PoolProvisioned](1) }
