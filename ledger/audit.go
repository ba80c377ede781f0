package ledger

import (
	"context"
	"fmt"
	"sort"

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
// one debit after the last of them, and a reversal's pool.credited follows
// its action.reversed, so when asOf falls inside a commit the checks leave
// out that commit's movements whose pool side lies past asOf (the
// balances still show them); nothing outside that commit is excused.
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
	// pending holds the token movements whose pool side has not been
	// folded yet: rewarded actions no pool.debited has named (a commit
	// pays for its actions with one debit after the last of them), and
	// reversed actions whose pool.credited (the next event of the same
	// command) has not come. A cut inside a commit (asOf, or a read
	// model's checkpoint) can leave that commit's movements pending; any
	// other pending movement is a problem.
	type movement struct {
		poolID   string
		tenant   tenantKey
		tokens   int64
		position int64
	}
	unpaid, uncredited := map[string]movement{}, map[string]movement{}
	_, err := eventstore.Export(ctx, q, f, func(e events.Event) error {
		rep.Events++
		rep.AsOf = e.Position
		switch e.Type {
		case "pool.debited", "pool.credited":
			pl, err := events.Decode(e)
			if err != nil {
				return err
			}
			switch v := pl.(type) {
			case events.PoolDebited:
				for _, id := range v.ActionIDs {
					delete(unpaid, id)
				}
			case events.PoolCredited:
				delete(uncredited, v.ActionID)
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
				unpaid[v.ActionID] = movement{v.PoolID, tenantKey{e.PartnerID, e.Environment}, v.TokensDistributed, e.Position}
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
			if v.TokensReversed > 0 {
				uncredited[v.ActionID] = movement{v.PoolID, tenantKey{e.PartnerID, e.Environment}, v.TokensReversed, e.Position}
			}
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
	// Movements of the commit the cut falls in are completed on the pool's
	// side past the cut: the checks below leave them out, the balances do
	// not. Only positions from the start of that commit to the cut are
	// excused.
	var commitFrom int64
	inside := false
	if asOf > 0 {
		if commitFrom, inside, err = eventstore.InsideCommit(ctx, q, asOf); err != nil {
			return rep, err
		}
	}
	cut := func(m movement) bool { return inside && m.position >= commitFrom }
	cutPaid, cutCredited := map[string]int64{}, map[string]int64{}
	cutTenant := map[tenantKey]int64{} // what the users' side is ahead of the pools' by
	for id, m := range unpaid {
		if cut(m) {
			cutPaid[m.poolID] += m.tokens
			cutTenant[m.tenant] += m.tokens
			continue
		}
		problem("action %s at position %d: rewarded %d tokens from pool %s, but no pool.debited pays for it", id, m.position, m.tokens, m.poolID)
	}
	for id, m := range uncredited {
		if cut(m) {
			cutCredited[m.poolID] += m.tokens
			cutTenant[m.tenant] -= m.tokens
			continue
		}
		problem("action %s at position %d: reversed %d tokens, but no pool.credited returns them to pool %s", id, m.position, m.tokens, m.poolID)
	}
	perTenantPools := map[tenantKey]int64{}
	for _, t := range poolTotals {
		if t.Distributed != t.RewardedByActions-cutPaid[t.PoolID] {
			problem("pool %s: distributed %d but its actions rewarded %d", t.PoolID, t.Distributed, t.RewardedByActions)
		}
		if t.Returned != t.ReversedByActions-cutCredited[t.PoolID] {
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
