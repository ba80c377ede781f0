package projections

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// KeyNotice is a key of the tenant that needs its owner's attention.
type KeyNotice struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	ExpiresAt  *time.Time `json:"expiresAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	CreatedAt  time.Time  `json:"createdAt"`
}

// KeysHealth is the state of a tenant's usable keys.
type KeysHealth struct {
	// Active counts keys that authenticate now.
	Active int64 `json:"active"`
	// ExpiringSoon are active keys expiring before the horizon, soonest first.
	ExpiringSoon []KeyNotice `json:"expiringSoon"`
	// NeverUsed are active keys never used to authenticate, oldest first.
	NeverUsed []KeyNotice `json:"neverUsed"`
}

// TenantKeysHealth reports the tenant's active keys that expire before
// horizon or were never used. lastUsedAt is written every few seconds, so
// a key first used moments ago can still show as never used; keys in
// usedNow (the caller's own) count as used.
func TenantKeysHealth(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, now, horizon time.Time, usedNow ...string) (KeysHealth, error) {
	h := KeysHealth{ExpiringSoon: []KeyNotice{}, NeverUsed: []KeyNotice{}}
	used := map[string]bool{}
	for _, k := range usedNow {
		used[k] = true
	}
	rows, err := q.Query(ctx, `SELECT k.key_id, k.name, k.expires_at, u.last_used_at, k.created_at
		FROM proj_accounts.api_keys k LEFT JOIN api_key_usage u ON u.key_id = k.key_id
		WHERE k.partner_id = $1 AND k.environment = $2 AND k.revoked_at IS NULL AND k.is_active
		  AND (k.expires_at IS NULL OR k.expires_at > $3)
		ORDER BY k.created_at, k.key_id`, t.PartnerID, t.Environment, now)
	if err != nil {
		return h, err
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (KeyNotice, error) {
		var k KeyNotice
		err := row.Scan(&k.ID, &k.Name, &k.ExpiresAt, &k.LastUsedAt, &k.CreatedAt)
		k.ExpiresAt, k.LastUsedAt, k.CreatedAt = utc(k.ExpiresAt), utc(k.LastUsedAt), k.CreatedAt.UTC()
		return k, err
	})
	if err != nil {
		return h, err
	}
	h.Active = int64(len(keys))
	for _, k := range keys {
		if k.ExpiresAt != nil && k.ExpiresAt.Before(horizon) {
			h.ExpiringSoon = append(h.ExpiringSoon, k)
		}
		if k.LastUsedAt == nil && !used[k.ID] {
			h.NeverUsed = append(h.NeverUsed, k)
		}
	}
	for i := 1; i < len(h.ExpiringSoon); i++ { // few keys: insertion sort by expiry
		for j := i; j > 0 && h.ExpiringSoon[j].ExpiresAt.Before(*h.ExpiringSoon[j-1].ExpiresAt); j-- {
			h.ExpiringSoon[j], h.ExpiringSoon[j-1] = h.ExpiringSoon[j-1], h.ExpiringSoon[j]
		}
	}
	return h, nil
}

// PoolNotice is a pool of the tenant that needs attention.
type PoolNotice struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Status    string     `json:"status"` // ACTIVE, DEPLETED or EXPIRED
	Available int64      `json:"available"`
	Threshold int64      `json:"lowBalanceThreshold"`
	ExpiresAt *time.Time `json:"expiresAt"`
	// LowBalance: available is under the pool's low-balance threshold.
	LowBalance bool `json:"lowBalance"`
	// ExpiringSoon: the pool expires before the horizon.
	ExpiringSoon bool `json:"expiringSoon"`
}

// PoolsHealth is the state of a tenant's provisioned pools.
type PoolsHealth struct {
	Total int64 `json:"total"`
	// Usable counts pools that can pay a reward now (not expired, tokens left).
	Usable int64 `json:"usable"`
	// Attention lists pools under their threshold, depleted, expired or
	// expiring before the horizon, oldest first.
	Attention []PoolNotice `json:"attention"`
}

// TenantPoolsHealth reports the tenant's pools that are low, depleted,
// expired or expire before horizon.
func TenantPoolsHealth(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, now, horizon time.Time) (PoolsHealth, error) {
	h := PoolsHealth{Attention: []PoolNotice{}}
	rows, err := q.Query(ctx, `SELECT pool_id, name, allocated - distributed + returned, low_balance_threshold, expires_at
		FROM `+Table(RewardsName, "pools")+` WHERE partner_id = $1 AND environment = $2 AND provisioned
		ORDER BY created_at, pool_id`, t.PartnerID, t.Environment)
	if err != nil {
		return h, err
	}
	pools, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (PoolNotice, error) {
		var p PoolNotice
		err := row.Scan(&p.ID, &p.Name, &p.Available, &p.Threshold, &p.ExpiresAt)
		p.ExpiresAt = utc(p.ExpiresAt)
		return p, err
	})
	if err != nil {
		return h, err
	}
	h.Total = int64(len(pools))
	for _, p := range pools {
		expired := p.ExpiresAt != nil && !p.ExpiresAt.After(now)
		switch {
		case expired:
			p.Status = "EXPIRED"
		case p.Available <= 0:
			p.Status = "DEPLETED"
		default:
			p.Status = "ACTIVE"
			h.Usable++
		}
		p.LowBalance = p.Threshold > 0 && p.Available < p.Threshold
		p.ExpiringSoon = !expired && p.ExpiresAt != nil && p.ExpiresAt.Before(horizon)
		if p.Status != "ACTIVE" || p.LowBalance || p.ExpiringSoon {
			h.Attention = append(h.Attention, p)
		}
	}
	return h, nil
}
