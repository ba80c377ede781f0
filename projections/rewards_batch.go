package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
)

// ApplyBatch implements BatchApplier. The events a reward submit emits
// (enduser.created, action.completed / action.failed, pool.debited,
// pool.credited, pool.low_balance, campaign.budget_*) are folded in Go
// into one set-based statement per table: rows to insert, and one summed
// change per balance, pool and campaign row however many events touch it
// (a hot pool, a busy user). Every other event type is rare and applies
// through applyRewards, the per-event reference; such an event first
// writes out what was folded before it, so statements keep event order
// wherever two of them could touch the same row.
func (Rewards) ApplyBatch(_ context.Context, _ pgx.Tx, b *Batch) error {
	f := newRewardsFold(b.Queue)
	for _, e := range b.Events {
		if !rewardsUses(e.Type) {
			continue
		}
		// The hot payloads in their plain shape are decoded by hand, as in
		// a rebuild: encoding/json's reflection was most of this fold's Go
		// time (BenchmarkApplyRewards).
		pl, plain := decodeHot(e)
		if !plain {
			var err error
			if pl, err = events.Decode(e); err != nil {
				return fmt.Errorf("position %d: %w", e.Position, err)
			}
		}
		if f.fold(pl, e) {
			continue
		}
		f.flush()
		exec := func(sql string, args ...any) error {
			b.Queue.Queue(sql, args...)
			return nil
		}
		if err := applyRewards(pl, e.PartnerID, e.Environment, e.RecordedAt, e, exec); err != nil {
			return fmt.Errorf("position %d: %w", e.Position, err)
		}
	}
	f.flush()
	return nil
}

// RebuildWithoutIndexes implements BulkRebuilder: every statement finds
// its rows by primary key.
func (Rewards) RebuildWithoutIndexes() bool { return true }

// Skips implements Skipper: a batch with none of the types the rewards
// model reads (donations, webhooks, accounts events).
func (Rewards) Skips(_ int64, evs []events.Event) bool { return noneUsed(evs, rewardsUses) }

// rewardsUses reports whether the rewards model reads events of type t.
func rewardsUses(t string) bool {
	return strings.HasPrefix(t, "enduser.") || strings.HasPrefix(t, "action.") || strings.HasPrefix(t, "pool.") ||
		strings.HasPrefix(t, "campaign.")
}

type balanceKey struct{ partner, env, userID string }

// balanceChange is the net effect of a batch's events on one balance row.
type balanceChange struct {
	// created: an enduser.created in the batch inserts the row; the
	// changes after it are added to the inserted zeros.
	created                   bool
	externalID                string
	balance, earned, reversed int64
	at                        time.Time
}

// poolChange is the net effect of a batch's events on one pool row; nil
// times leave the column as it is.
type poolChange struct {
	distributed, returned int64
	updatedAt, lowAt      *time.Time
}

type campaignChange struct{ spent, returned int64 }

// actionRows are action rows for one multi-row upsert.
type actionRows struct {
	id, partner, env, key, typ, amount, currency, pool, campaign, stakeholders, txids, metadata, code, reason []string
	tokens, position                                                                                          []int64
	at                                                                                                        []time.Time
}

func (r *actionRows) add(id, partner, env, key, typ, amount, currency, pool, campaign, sh, txids, md, code, reason string, tokens, pos int64, at time.Time) {
	r.id, r.partner, r.env, r.key = append(r.id, id), append(r.partner, partner), append(r.env, env), append(r.key, key)
	r.typ, r.amount, r.currency = append(r.typ, typ), append(r.amount, amount), append(r.currency, currency)
	r.pool, r.campaign, r.stakeholders, r.txids = append(r.pool, pool), append(r.campaign, campaign), append(r.stakeholders, sh), append(r.txids, txids)
	r.metadata, r.code, r.reason = append(r.metadata, md), append(r.code, code), append(r.reason, reason)
	r.tokens, r.position, r.at = append(r.tokens, tokens), append(r.position, pos), append(r.at, at)
}

// rewardsFold accumulates the hot events of a stretch of a batch and
// queues them as set-based statements on flush.
type rewardsFold struct {
	q *pgx.Batch

	users struct {
		partner, env, external, userID, email, first, last, metadata []string
		auto                                                         []bool
		at                                                           []time.Time
	}
	rewardSums
	completed actionRows
	failed    actionRows
	// fresh holds the actions whose event is the first of their stream:
	// no row can exist for them, so a plain INSERT writes them, without
	// the upsert's speculative insertion (~5 us a row).
	fresh actionRows
	// actions holds the ids of the pending action rows: a second event for
	// the same action flushes first, since one upsert may not touch a row
	// twice and the second must see the first's attempts.
	actions map[string]bool
	txns    struct {
		id, partner, env, userID, external, action, pool, campaign, description, code []string
		tokens, position                                                              []int64
		at                                                                            []time.Time
	}
}

func newRewardsFold(q *pgx.Batch) *rewardsFold {
	f := &rewardsFold{q: q}
	f.reset()
	return f
}

func (f *rewardsFold) reset() {
	q := f.q
	*f = rewardsFold{q: q, actions: map[string]bool{}}
}

// rewardSums are the changes both rewards folds (the live batch and a
// rebuild's bulk load) sum per row: a hot pool or a busy user is written
// once however many events touched it.
type rewardSums struct {
	balances  sums[balanceKey, balanceChange]
	pools     sums[string, poolChange]
	campaigns sums[string, campaignChange]
}

func (r *rewardSums) balance(k balanceKey) *balanceChange { return r.balances.at(k) }
func (r *rewardSums) pool(id string) *poolChange          { return r.pools.at(id) }
func (r *rewardSums) campaign(id string) *campaignChange  { return r.campaigns.at(id) }

// foldMovement sums a pool or campaign movement recorded at at, and
// reports false for any other payload.
func (r *rewardSums) foldMovement(pl events.Payload, at time.Time) bool {
	switch v := pl.(type) {
	case events.PoolDebited:
		c := r.pool(v.PoolID)
		c.distributed += v.Amount
		c.updatedAt = &at
		return true
	case events.PoolCredited:
		c := r.pool(v.PoolID)
		c.returned += v.Amount
		c.updatedAt = &at
		return true
	case events.PoolLowBalance:
		r.pool(v.PoolID).lowAt = &at
		return true
	case events.CampaignBudgetDebited:
		r.campaign(v.CampaignID).spent += v.Amount
		return true
	case events.CampaignBudgetCredited:
		r.campaign(v.CampaignID).returned += v.Amount
		return true
	}
	return false
}

func (f *rewardsFold) addTxn(id, p, env string, tokens int64, userID, external, action, pool, campaign, description string, at time.Time, pos int64, code string) {
	t := &f.txns
	t.id, t.partner, t.env, t.tokens = append(t.id, id), append(t.partner, p), append(t.env, env), append(t.tokens, tokens)
	t.userID, t.external, t.action = append(t.userID, userID), append(t.external, external), append(t.action, action)
	t.pool, t.campaign, t.description = append(t.pool, pool), append(t.campaign, campaign), append(t.description, description)
	t.at, t.position, t.code = append(t.at, at), append(t.position, pos), append(t.code, code)
}

// fold takes a hot event into the pending statements and reports whether
// it did; a false leaves the event to applyRewards.
func (f *rewardsFold) fold(pl events.Payload, e events.Event) bool {
	p, env, at := e.PartnerID, e.Environment, e.RecordedAt
	switch v := pl.(type) {
	case events.EndUserCreated:
		k := balanceKey{p, env, v.UserID}
		if c := f.balances.get(k); c != nil && c.created {
			f.flush() // a second create: let the insert fail as it would alone
		}
		u := &f.users
		u.partner, u.env, u.external, u.userID = append(u.partner, p), append(u.env, env), append(u.external, v.ExternalID), append(u.userID, v.UserID)
		u.email, u.first, u.last = append(u.email, v.Email), append(u.first, v.FirstName), append(u.last, v.LastName)
		u.metadata, u.auto, u.at = append(u.metadata, jsonOrEmpty(v.Metadata)), append(u.auto, v.AutoCreated), append(u.at, at)
		// Changes folded before the row's creation would have updated no
		// row (had it existed, this insert fails anyway): start from zero.
		c := f.balance(k)
		*c = balanceChange{created: true, externalID: v.ExternalID, at: at}
		return true
	case events.ActionCompleted:
		if f.actions[v.ActionID] {
			f.flush()
		}
		f.actions[v.ActionID] = true
		sh, _ := json.Marshal(v.Stakeholders)
		ids, _ := json.Marshal(v.TransactionIDs)
		rows := &f.completed
		if firstOfAction(e, v.ActionID) {
			rows = &f.fresh
		}
		rows.add(v.ActionID, p, env, v.IdempotencyKey, v.ActionType, v.Amount, v.Currency, v.PoolID, v.CampaignID,
			string(sh), string(ids), jsonOrEmpty(v.Metadata), "", "", v.TokensDistributed, e.Position, at)
		desc := fmt.Sprintf("%s reward (%s %s)", v.ActionType, v.Amount, v.Currency)
		for _, r := range v.Stakeholders {
			if r.Tokens == 0 {
				continue
			}
			f.addTxn(r.TransactionID, p, env, r.Tokens, r.UserID, r.PartnerUserID, v.ActionID, v.PoolID, v.CampaignID, desc, at, e.Position, r.StakeholderTypeCode)
			c := f.balance(balanceKey{p, env, r.UserID})
			c.balance += r.Tokens
			c.earned += r.Tokens
			c.at = at
		}
		return true
	case events.ActionFailed:
		if f.actions[v.ActionID] {
			f.flush()
		}
		f.actions[v.ActionID] = true
		sh, _ := json.Marshal(v.Stakeholders)
		f.failed.add(v.ActionID, p, env, v.IdempotencyKey, v.ActionType, v.Amount, v.Currency, v.PoolID, v.CampaignID,
			string(sh), "[]", jsonOrEmpty(v.Metadata), v.Code, v.Reason, 0, e.Position, at)
		return true
	}
	return f.foldMovement(pl, at)
}

// The statements flush queues. Each names every column the per-event
// statements in applyRewards write, with the same values, so the rows are
// identical whichever path wrote them.
const (
	insertUsersSQL = `INSERT INTO users (partner_id, environment, external_id, user_id, email, first_name, last_name, metadata, auto_created, created_at, updated_at)
	SELECT u.p, u.env, u.ext, u.uid, u.email, u.first, u.last, u.md::jsonb, u.auto, u.at, u.at
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::boolean[], $10::timestamptz[])
		AS u(p, env, ext, uid, email, first, last, md, auto, at)`
	insertBalancesSQL = `INSERT INTO balances (partner_id, environment, user_id, external_id, balance, total_earned, total_reversed, updated_at)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::timestamptz[])`
	updateBalancesSQL = `UPDATE balances b SET balance = b.balance + d.bal, total_earned = b.total_earned + d.earned,
		total_reversed = b.total_reversed + d.rev, updated_at = d.at
	FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::timestamptz[]) AS d(p, env, uid, bal, earned, rev, at)
	WHERE b.partner_id = d.p AND b.environment = d.env AND b.user_id = d.uid`
	actionRowsSQL = `SELECT a.id, a.p, a.env, a.key, a.typ, a.amount, a.cur, %s, a.tokens, a.pool, a.campaign, a.sh::jsonb, a.txids::jsonb,
		a.md::jsonb, a.code, a.reason, a.at, a.at, a.pos
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
		$11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[], $17::timestamptz[])
		AS a(id, p, env, key, typ, amount, cur, pool, campaign, sh, txids, md, code, reason, tokens, pos, at)`
	insertActionsSQL = `INSERT INTO actions (action_id, partner_id, environment, idempotency_key, action_type, amount, currency, status,
		tokens_distributed, pool_id, campaign_id, stakeholders, transaction_ids, metadata, failure_code, failure_reason, created_at, updated_at, position) `
	upsertCompletedSQL = insertActionsSQL + `%s
	ON CONFLICT (action_id) DO UPDATE SET status = 'COMPLETED', tokens_distributed = excluded.tokens_distributed, pool_id = excluded.pool_id,
		campaign_id = excluded.campaign_id, stakeholders = excluded.stakeholders, transaction_ids = excluded.transaction_ids,
		failure_code = '', failure_reason = '', attempts = actions.attempts + 1, updated_at = excluded.updated_at`
	upsertFailedSQL = insertActionsSQL + `%s
	ON CONFLICT (action_id) DO UPDATE SET status = 'FAILED', failure_code = excluded.failure_code, failure_reason = excluded.failure_reason,
		attempts = actions.attempts + 1, updated_at = excluded.updated_at`
	insertTransactionsSQL = `INSERT INTO transactions (transaction_id, partner_id, environment, type, direction, tokens, user_id, external_id,
		action_id, pool_id, campaign_id, description, created_at, position, stakeholder_type_code)
	SELECT t.id, t.p, t.env, 'REWARD', 'CREDIT', t.tokens, t.uid, t.ext, t.action, t.pool, t.campaign, t.descr, t.at, t.pos, t.code
	FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
		$11::timestamptz[], $12::bigint[], $13::text[]) AS t(id, p, env, tokens, uid, ext, action, pool, campaign, descr, at, pos, code)`
	updatePoolsSQL = `UPDATE pools p SET distributed = p.distributed + d.dist, returned = p.returned + d.ret,
		updated_at = coalesce(d.updated, p.updated_at), low_balance_at = coalesce(d.low, p.low_balance_at)
	FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[]) AS d(id, dist, ret, updated, low)
	WHERE p.pool_id = d.id`
	updateCampaignsSQL = `UPDATE campaigns c SET tokens_spent = c.tokens_spent + d.spent, tokens_returned = c.tokens_returned + d.ret
	FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS d(id, spent, ret) WHERE c.campaign_id = d.id`
)

var (
	upsertCompleted = fmt.Sprintf(upsertCompletedSQL, fmt.Sprintf(actionRowsSQL, `'COMPLETED'`))
	insertCompleted = insertActionsSQL + fmt.Sprintf(actionRowsSQL, `'COMPLETED'`)
	upsertFailed    = fmt.Sprintf(upsertFailedSQL, fmt.Sprintf(actionRowsSQL, `'FAILED'`))
)

func (f *rewardsFold) queueActions(sql string, r *actionRows) {
	if len(r.id) == 0 {
		return
	}
	f.q.Queue(sql, r.id, r.partner, r.env, r.key, r.typ, r.amount, r.currency, r.pool, r.campaign, r.stakeholders, r.txids,
		r.metadata, r.code, r.reason, r.tokens, r.position, r.at)
}

// flush queues the pending statements, users before their balances, and
// starts over.
func (f *rewardsFold) flush() {
	if u := &f.users; len(u.userID) > 0 {
		f.q.Queue(insertUsersSQL, u.partner, u.env, u.external, u.userID, u.email, u.first, u.last, u.metadata, u.auto, u.at)
	}
	var ins, upd struct {
		p, env, uid, ext []string
		bal, earned, rev []int64
		at               []time.Time
	}
	for _, k := range f.balances.order {
		c := f.balances.get(k)
		s := &upd
		if c.created {
			s = &ins
			s.ext = append(s.ext, c.externalID)
		}
		s.p, s.env, s.uid = append(s.p, k.partner), append(s.env, k.env), append(s.uid, k.userID)
		s.bal, s.earned, s.rev, s.at = append(s.bal, c.balance), append(s.earned, c.earned), append(s.rev, c.reversed), append(s.at, c.at)
	}
	if len(ins.uid) > 0 {
		f.q.Queue(insertBalancesSQL, ins.p, ins.env, ins.uid, ins.ext, ins.bal, ins.earned, ins.rev, ins.at)
	}
	if len(upd.uid) > 0 {
		f.q.Queue(updateBalancesSQL, upd.p, upd.env, upd.uid, upd.bal, upd.earned, upd.rev, upd.at)
	}
	f.queueActions(insertCompleted, &f.fresh)
	f.queueActions(upsertCompleted, &f.completed)
	f.queueActions(upsertFailed, &f.failed)
	if t := &f.txns; len(t.id) > 0 {
		f.q.Queue(insertTransactionsSQL, t.id, t.partner, t.env, t.tokens, t.userID, t.external, t.action, t.pool, t.campaign,
			t.description, t.at, t.position, t.code)
	}
	if len(f.pools.order) > 0 {
		ids := f.pools.order
		dist, ret := make([]int64, len(ids)), make([]int64, len(ids))
		updated, low := make([]*time.Time, len(ids)), make([]*time.Time, len(ids))
		for i, id := range ids {
			c := f.pools.get(id)
			dist[i], ret[i], updated[i], low[i] = c.distributed, c.returned, c.updatedAt, c.lowAt
		}
		f.q.Queue(updatePoolsSQL, ids, dist, ret, updated, low)
	}
	if len(f.campaigns.order) > 0 {
		ids := f.campaigns.order
		spent, ret := make([]int64, len(ids)), make([]int64, len(ids))
		for i, id := range ids {
			c := f.campaigns.get(id)
			spent[i], ret[i] = c.spent, c.returned
		}
		f.q.Queue(updateCampaignsSQL, ids, spent, ret)
	}
	f.reset()
}

// sums holds one change per key and the order the keys first appeared in,
// so the statements a fold writes from it are the same on every run.
type sums[K comparable, V any] struct {
	byKey map[K]*V
	order []K
}

// at returns k's change, a zero one the first time k is seen.
func (s *sums[K, V]) at(k K) *V {
	if c := s.byKey[k]; c != nil {
		return c
	}
	if s.byKey == nil {
		s.byKey = map[K]*V{}
	}
	c := new(V)
	s.byKey[k] = c
	s.order = append(s.order, k)
	return c
}

// get returns k's change, or nil if k has none.
func (s *sums[K, V]) get(k K) *V { return s.byKey[k] }

// reset forgets every key.
func (s *sums[K, V]) reset() { s.byKey, s.order = nil, nil }
