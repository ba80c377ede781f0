package ledger

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// PoolTotals is one pool's ledger as folded from the event store.
type PoolTotals struct {
	PartnerID, Environment, PoolID   string
	Allocated, Distributed, Returned int64
	// RewardedByActions and ReversedByActions are what the action events
	// say moved through this pool; they must equal Distributed and Returned.
	RewardedByActions, ReversedByActions int64
}

// Available is allocated − distributed + returned.
func (p PoolTotals) Available() int64 { return p.Allocated - p.Distributed + p.Returned }

// UserTotals is one end user's balance as folded from the event store.
type UserTotals struct {
	PartnerID, Environment, UserID, ExternalID string
	Earned, Reversed                           int64
}

// Balance is earned − reversed.
func (u UserTotals) Balance() int64 { return u.Earned - u.Reversed }

// AuditReport is the token ledger as of one position, and every
// inconsistency found while folding it.
type AuditReport struct {
	AsOf     int64
	Events   int64
	Pools    []PoolTotals
	Users    []UserTotals
	Problems []string
}

// OK reports whether the fold found no inconsistency.
func (r AuditReport) OK() bool { return len(r.Problems) == 0 }

type tenantKey struct{ partner, env string }

// AuditBalances folds the event store up to position asOf (0: the head)
// into pool and user balances, optionally for one tenant, and checks what
// must hold for an auditor: no pool is ever overdrawn and no user ever
// negative at any position; each pool's distributed and returned tokens
// equal what its actions rewarded and reversed; every rewarded action is
// named by a pool.debited; and per tenant the users' balances add up to
// the pools' distributed − returned. A commit pays for its actions with
// one debit after the last of them, so when asOf falls inside a commit the
// checks leave out that commit's actions whose debit lies past asOf (the
// balances still show them).
func AuditBalances(ctx context.Context, q eventstore.Querier, f eventstore.Filter, asOf int64) (AuditReport, error) {
	f.ToPosition, f.StreamID = asOf, ""
	rep := AuditReport{AsOf: asOf}
	pools := map[string]*Pool{}
	poolTotals := map[string]*PoolTotals{}
	users := map[string]*UserTotals{}
	problem := func(format string, args ...any) {
		if len(rep.Problems) < 100 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
	}
	totalsFor := func(poolID string, e events.Event) *PoolTotals {
		t := poolTotals[poolID]
		if t == nil {
			t = &PoolTotals{PartnerID: e.PartnerID, Environment: e.Environment, PoolID: poolID}
			poolTotals[poolID] = t
		}
		return t
	}
	userFor := func(e events.Event, r events.ActionReward) *UserTotals {
		u := users[r.UserID]
		if u == nil {
			u = &UserTotals{PartnerID: e.PartnerID, Environment: e.Environment, UserID: r.UserID, ExternalID: r.PartnerUserID}
			users[r.UserID] = u
		}
		return u
	}
	// unpaid holds the rewarded actions no pool.debited has named yet. A
	// commit pays for its actions with one debit after the last of them,
	// so a cut inside a commit (asOf, or a read model's checkpoint) can
	// leave that commit's actions unpaid; any other unpaid action is a
	// problem.
	type unpaidAction struct {
		poolID     string
		tenant     tenantKey
		tokens     int64
		position   int64
		recordedAt time.Time
	}
	unpaid := map[string]unpaidAction{}
	_, err := eventstore.Export(ctx, q, f, func(e events.Event) error {
		rep.Events++
		rep.AsOf = e.Position
		if e.Type == "pool.debited" {
			pl, err := events.Decode(e)
			if err != nil {
				return err
			}
			for _, id := range pl.(events.PoolDebited).ActionIDs {
				delete(unpaid, id)
			}
		}
		if len(e.StreamID) > 5 && e.StreamID[:5] == "pool-" {
			p := pools[e.StreamID]
			if p == nil {
				p = &Pool{}
				pools[e.StreamID] = p
			}
			if err := p.Apply(e); err != nil {
				return err
			}
			if p.Available() < 0 {
				problem("pool %s overdrawn at position %d: available %d", p.ID, e.Position, p.Available())
			}
			t := totalsFor(p.ID, e)
			t.Allocated, t.Distributed, t.Returned = p.Allocated, p.Distributed, p.Returned
			return nil
		}
		switch e.Type {
		case "action.completed", "action.reversed":
		default:
			return nil
		}
		pl, err := events.Decode(e)
		if err != nil {
			return err
		}
		switch v := pl.(type) {
		case events.ActionCompleted:
			totalsFor(v.PoolID, e).RewardedByActions += v.TokensDistributed
			if v.TokensDistributed > 0 {
				unpaid[v.ActionID] = unpaidAction{poolID: v.PoolID, tenant: tenantKey{e.PartnerID, e.Environment},
					tokens: v.TokensDistributed, position: e.Position, recordedAt: e.RecordedAt}
			}
			var sum int64
			for _, r := range v.Stakeholders {
				userFor(e, r).Earned += r.Tokens
				sum += r.Tokens
			}
			if sum != v.TokensDistributed {
				problem("action %s at position %d: stakeholder shares %d do not add up to %d", v.ActionID, e.Position, sum, v.TokensDistributed)
			}
		case events.ActionReversed:
			totalsFor(v.PoolID, e).ReversedByActions += v.TokensReversed
			for _, r := range v.Stakeholders {
				u := userFor(e, r)
				u.Reversed += r.Tokens
				if u.Balance() < 0 {
					problem("user %s negative at position %d: %d", u.UserID, e.Position, u.Balance())
				}
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	// Actions of the commit the cut falls in are paid by a debit past the
	// cut: the checks below leave them out, the balances do not. A cut is
	// inside a commit when the next event was appended with it (one
	// append records all its events at one time).
	var inside bool
	var commitAt time.Time
	if asOf > 0 {
		if commitAt, inside, err = eventstore.InsideCommit(ctx, q, asOf); err != nil {
			return rep, err
		}
	}
	cutPool, cutTenant := map[string]int64{}, map[tenantKey]int64{}
	for id, u := range unpaid {
		if inside && u.recordedAt.Equal(commitAt) {
			cutPool[u.poolID] += u.tokens
			cutTenant[u.tenant] += u.tokens
			continue
		}
		problem("action %s at position %d: rewarded %d tokens from pool %s, but no pool.debited pays for it", id, u.position, u.tokens, u.poolID)
	}
	perTenantPools := map[tenantKey]int64{}
	for _, t := range poolTotals {
		if t.Distributed != t.RewardedByActions-cutPool[t.PoolID] {
			problem("pool %s: distributed %d but its actions rewarded %d", t.PoolID, t.Distributed, t.RewardedByActions)
		}
		if t.Returned != t.ReversedByActions {
			problem("pool %s: returned %d but its actions reversed %d", t.PoolID, t.Returned, t.ReversedByActions)
		}
		perTenantPools[tenantKey{t.PartnerID, t.Environment}] += t.Distributed - t.Returned
		rep.Pools = append(rep.Pools, *t)
	}
	perTenantUsers := map[tenantKey]int64{}
	for _, u := range users {
		perTenantUsers[tenantKey{u.PartnerID, u.Environment}] += u.Balance()
		rep.Users = append(rep.Users, *u)
	}
	for k, v := range perTenantPools {
		if perTenantUsers[k]-cutTenant[k] != v {
			problem("tenant %s/%s: users hold %d but pools paid out %d net", k.partner, k.env, perTenantUsers[k], v)
		}
	}
	sort.Slice(rep.Pools, func(i, j int) bool { return rep.Pools[i].PoolID < rep.Pools[j].PoolID })
	sort.Slice(rep.Users, func(i, j int) bool { return rep.Users[i].UserID < rep.Users[j].UserID })
	return rep, nil
}
