package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
)

// RewardsName is the name of the rewards read model.
const RewardsName = "rewards"

// Rewards is the read model of end users, balances, actions, transactions,
// token pools and allocation requests. Every row carries partner_id and
// environment and every query filters on both.
type Rewards struct{}

// Name implements Projection.
func (Rewards) Name() string { return RewardsName }

// Setup implements Projection.
func (Rewards) Setup() string {
	return `
CREATE TABLE users (
    partner_id text NOT NULL, environment text NOT NULL, external_id text NOT NULL,
    user_id text NOT NULL, email text NOT NULL DEFAULT '', first_name text NOT NULL DEFAULT '',
    last_name text NOT NULL DEFAULT '', metadata jsonb NOT NULL DEFAULT '{}', auto_created boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
    PRIMARY KEY (partner_id, environment, external_id));
CREATE UNIQUE INDEX users_id ON users (user_id);
CREATE TABLE balances (
    partner_id text NOT NULL, environment text NOT NULL, user_id text NOT NULL, external_id text NOT NULL,
    balance bigint NOT NULL DEFAULT 0, total_earned bigint NOT NULL DEFAULT 0, total_reversed bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (partner_id, environment, user_id));
CREATE TABLE actions (
    action_id text PRIMARY KEY, partner_id text NOT NULL, environment text NOT NULL,
    idempotency_key text NOT NULL, action_type text NOT NULL, amount text NOT NULL, currency text NOT NULL,
    status text NOT NULL, tokens_distributed bigint NOT NULL, tokens_reversed bigint NOT NULL DEFAULT 0,
    pool_id text NOT NULL DEFAULT '', campaign_id text NOT NULL DEFAULT '', stakeholders jsonb NOT NULL,
    transaction_ids jsonb NOT NULL, metadata jsonb NOT NULL DEFAULT '{}', failure_code text NOT NULL DEFAULT '',
    failure_reason text NOT NULL DEFAULT '', reversal_reason text NOT NULL DEFAULT '', attempts int NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, reversed_at timestamptz, position bigint NOT NULL);
` + stakeholderUsersIndexDDL + `
CREATE TABLE transactions (
    transaction_id text PRIMARY KEY, partner_id text NOT NULL, environment text NOT NULL,
    type text NOT NULL, direction text NOT NULL, tokens bigint NOT NULL,
    user_id text NOT NULL DEFAULT '', external_id text NOT NULL DEFAULT '', action_id text NOT NULL DEFAULT '',
    pool_id text NOT NULL DEFAULT '', campaign_id text NOT NULL DEFAULT '', description text NOT NULL DEFAULT '',
    stakeholder_type_code text NOT NULL DEFAULT '', created_at timestamptz NOT NULL, position bigint NOT NULL);
` + listIndexesDDL + `
CREATE TABLE pools (
    pool_id text PRIMARY KEY, partner_id text NOT NULL, environment text NOT NULL, name text NOT NULL DEFAULT '',
    allocated bigint NOT NULL DEFAULT 0, distributed bigint NOT NULL DEFAULT 0, returned bigint NOT NULL DEFAULT 0,
    low_balance_threshold bigint NOT NULL DEFAULT 0, expires_at timestamptz, vesting_days int NOT NULL DEFAULT 0,
    auto_refill boolean NOT NULL DEFAULT false, auto_refill_threshold bigint NOT NULL DEFAULT 0,
    auto_refill_amount bigint NOT NULL DEFAULT 0, low_balance_at timestamptz, provisioned boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE INDEX pools_tenant ON pools (partner_id, environment);
CREATE TABLE allocation_requests (
    request_id text PRIMARY KEY, partner_id text NOT NULL, environment text NOT NULL, pool_id text NOT NULL,
    amount bigint NOT NULL, reason text NOT NULL DEFAULT '', status text NOT NULL, auto boolean NOT NULL DEFAULT false,
    decided_by text NOT NULL DEFAULT '', decision_reason text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL, decided_at timestamptz);
CREATE INDEX allocation_requests_tenant ON allocation_requests (partner_id, environment, created_at DESC);
CREATE TABLE campaigns (
    campaign_id text PRIMARY KEY, partner_id text NOT NULL, environment text NOT NULL, name text NOT NULL,
    description text NOT NULL DEFAULT '', status text NOT NULL, starts_at timestamptz, ends_at timestamptz,
    action_types jsonb NOT NULL, multiplier text NOT NULL, tiers jsonb NOT NULL, splits jsonb NOT NULL,
    token_budget bigint, token_pool_id text NOT NULL DEFAULT '', tokens_spent bigint NOT NULL DEFAULT 0,
    tokens_returned bigint NOT NULL DEFAULT 0, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE INDEX campaigns_tenant ON campaigns (partner_id, environment, created_at DESC);
CREATE INDEX campaigns_due ON campaigns (status, starts_at, ends_at);
CREATE INDEX actions_campaign ON actions (campaign_id) WHERE campaign_id <> '';
`
}

// stakeholderUsers is the array of an action's stakeholders' partnerUserIds:
// ListActions filters on it, and the index below is on this exact
// expression, so the two must stay the same text.
const stakeholderUsers = `jsonb_path_query_array(stakeholders, '$[*].partnerUserId')`

// stakeholderUsersIndexDDL indexes only the partnerUserIds, the one thing
// the user filter looks up. It replaced a jsonb_path_ops index on the whole
// stakeholders array, which took five keys per stakeholder (userId,
// transactionId, tokens, type and partnerUserId) and cost every projected
// action about 4 us more (insert plus pending-list merge) for an index
// eight times larger.
const stakeholderUsersIndexDDL = `CREATE INDEX IF NOT EXISTS actions_stakeholder_users ON actions USING gin ((` + stakeholderUsers + `) jsonb_path_ops);`

// listIndexesDDL are the indexes the newest-first lists read. Each is in
// ascending order and read backwards, so rows, which arrive in that
// order, are added at the high end of their tenant's (or user's) range:
// PostgreSQL then splits a full page leaving it full (and, for the
// tenant whose range ends the index, skips the descent altogether),
// where the descending indexes these replaced took every new row at the
// low end and split pages in half: for 600,000 rows of one tenant the
// tenant index took 5,013 pages instead of 8,956, and a row's two
// transactions index entries 8.0 us instead of 10.0 (PostgreSQL alone).
//
//   - actions: ORDER BY created_at DESC, action_id is the backward scan of
//     (created_at, action_id DESC);
//   - transactions: ORDER BY position DESC (then transaction_id, sorted
//     within a position);
//   - a user's transactions: ListTransactions filters on the partner's
//     external id, which is what this index leads with. The index it
//     replaced led with the internal user id, which no list filters on.
const listIndexesDDL = `CREATE INDEX IF NOT EXISTS actions_by_tenant ON actions (partner_id, environment, created_at, action_id DESC);
CREATE INDEX IF NOT EXISTS transactions_by_tenant ON transactions (partner_id, environment, position);
CREATE INDEX IF NOT EXISTS transactions_by_user ON transactions (partner_id, environment, external_id, position);`

// Upgrade implements Upgrader: a schema from before actions_stakeholder_users
// or the ascending list indexes gets them, built from the rows it has, and
// loses the indexes they replaced.
// The new index is built before the old one is dropped, so a user filter
// running meanwhile always has one of them; the drop's exclusive lock is
// held only from that statement to the commit right after it.
func (Rewards) Upgrade() string {
	return stakeholderUsersIndexDDL + "\nDROP INDEX IF EXISTS actions_stakeholders;\n" +
		listIndexesDDL + "\nDROP INDEX IF EXISTS actions_tenant, transactions_tenant, transactions_user;"
}

var allocNS = uuid.MustParse("0b7c2f4e-8d7a-4a55-b1f3-3c5e9d2a6e10")

func allocationTxnID(e events.Event) string {
	return "txn_" + strings.ReplaceAll(uuid.NewSHA1(allocNS, e.ID[:]).String(), "-", "")
}

func jsonOrEmpty(m json.RawMessage) string {
	if len(m) == 0 {
		return "{}"
	}
	return string(m)
}

// Apply implements Projection: one event at a time, the reference that
// ApplyBatch's set-based statements must reproduce exactly.
func (Rewards) Apply(ctx context.Context, tx pgx.Tx, e events.Event) error {
	if !rewardsUses(e.Type) {
		return nil
	}
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	batch := &pgx.Batch{}
	exec := func(sql string, args ...any) error {
		batch.Queue(sql, args...)
		return nil
	}
	if err := applyRewards(pl, e.PartnerID, e.Environment, e.RecordedAt, e, exec); err != nil || batch.Len() == 0 {
		return err
	}
	return tx.SendBatch(ctx, batch).Close()
}

func applyRewards(pl events.Payload, p, env string, at time.Time, e events.Event, exec func(string, ...any) error) error {
	r := rewardRow{p: p, env: env, at: at, e: e, exec: exec}
	switch v := pl.(type) {
	case events.EndUserCreated:
		return r.endUserCreated(v)
	case events.EndUserUpdated:
		return r.endUserUpdated(v)
	case events.ActionCompleted:
		return r.actionCompleted(v)
	case events.ActionFailed:
		return r.actionFailed(v)
	case events.ActionReversed:
		return r.actionReversed(v)
	case events.PoolProvisioned:
		return r.poolProvisioned(v)
	case events.PoolDebited:
		return exec(`UPDATE pools SET distributed = distributed + $2, updated_at = $3 WHERE pool_id = $1`, v.PoolID, v.Amount, at)
	case events.PoolCredited:
		return exec(`UPDATE pools SET returned = returned + $2, updated_at = $3 WHERE pool_id = $1`, v.PoolID, v.Amount, at)
	case events.PoolLowBalance:
		return exec(`UPDATE pools SET low_balance_at = $2 WHERE pool_id = $1`, v.PoolID, at)
	case events.PoolAllocationRequested:
		return r.poolAllocationRequested(v)
	case events.PoolAllocationApproved:
		return r.poolAllocationApproved(v)
	case events.CampaignCreated:
		return r.campaignCreated(v)
	case events.CampaignUpdated:
		return r.campaignUpdated(v)
	case events.CampaignStatusChanged:
		return exec(`UPDATE campaigns SET status = $2, updated_at = $3 WHERE campaign_id = $1`, v.CampaignID, v.To, at)
	case events.CampaignBudgetDebited:
		return exec(`UPDATE campaigns SET tokens_spent = tokens_spent + $2 WHERE campaign_id = $1`, v.CampaignID, v.Amount)
	case events.CampaignBudgetCredited:
		return exec(`UPDATE campaigns SET tokens_returned = tokens_returned + $2 WHERE campaign_id = $1`, v.CampaignID, v.Amount)
	case events.PoolAllocationRejected:
		return exec(`UPDATE allocation_requests SET status = 'REJECTED', decided_by = $2, decision_reason = $3, decided_at = $4 WHERE request_id = $1`,
			v.RequestID, v.RejectedBy, v.Reason, at)
	}
	return nil
}

// rewardRow is what applying one event to the rewards tables needs: its
// tenant, its time and position, and where statements go.
type rewardRow struct {
	p, env string
	at     time.Time
	e      events.Event
	exec   func(string, ...any) error
}

func (r rewardRow) endUserCreated(v events.EndUserCreated) error {
	p, env, at, exec := r.p, r.env, r.at, r.exec
	if err := exec(`INSERT INTO users (partner_id, environment, external_id, user_id, email, first_name, last_name, metadata, auto_created, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$10)`, p, env, v.ExternalID, v.UserID, v.Email, v.FirstName, v.LastName, jsonOrEmpty(v.Metadata), v.AutoCreated, at); err != nil {
		return err
	}
	return exec(`INSERT INTO balances (partner_id, environment, user_id, external_id, updated_at) VALUES ($1,$2,$3,$4,$5)`, p, env, v.UserID, v.ExternalID, at)
}

func (r rewardRow) endUserUpdated(v events.EndUserUpdated) error {
	p, env, at, exec := r.p, r.env, r.at, r.exec
	var md *string
	if len(v.Metadata) > 0 {
		s := string(v.Metadata)
		md = &s
	}
	return exec(`UPDATE users SET email = coalesce($4, email), first_name = coalesce($5, first_name), last_name = coalesce($6, last_name),
		metadata = coalesce($7::jsonb, metadata), updated_at = $8 WHERE partner_id = $1 AND environment = $2 AND external_id = $3`,
		p, env, v.ExternalID, v.Email, v.FirstName, v.LastName, md, at)
}

func (r rewardRow) actionCompleted(v events.ActionCompleted) error {
	p, env, at, e, exec := r.p, r.env, r.at, r.e, r.exec
	sh, _ := json.Marshal(v.Stakeholders)
	ids, _ := json.Marshal(v.TransactionIDs)
	if err := exec(`INSERT INTO actions (action_id, partner_id, environment, idempotency_key, action_type, amount, currency, status,
		tokens_distributed, pool_id, campaign_id, stakeholders, transaction_ids, metadata, created_at, updated_at, position)
		VALUES ($1,$2,$3,$4,$5,$6,$7,'COMPLETED',$8,$9,$10,$11,$12,$13,$14,$14,$15)
		ON CONFLICT (action_id) DO UPDATE SET status = 'COMPLETED', tokens_distributed = $8, pool_id = $9, campaign_id = $10,
		stakeholders = $11, transaction_ids = $12, failure_code = '', failure_reason = '', attempts = actions.attempts + 1, updated_at = $14`,
		v.ActionID, p, env, v.IdempotencyKey, v.ActionType, v.Amount, v.Currency, v.TokensDistributed, v.PoolID, v.CampaignID,
		string(sh), string(ids), jsonOrEmpty(v.Metadata), at, e.Position); err != nil {
		return err
	}
	for _, r := range v.Stakeholders {
		if r.Tokens == 0 {
			continue
		}
		if err := exec(`INSERT INTO transactions (transaction_id, partner_id, environment, type, direction, tokens, user_id, external_id, action_id, pool_id, campaign_id, description, created_at, position, stakeholder_type_code)
			VALUES ($1,$2,$3,'REWARD','CREDIT',$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)`, r.TransactionID, p, env, r.Tokens, r.UserID, r.PartnerUserID,
			v.ActionID, v.PoolID, v.CampaignID, fmt.Sprintf("%s reward (%s %s)", v.ActionType, v.Amount, v.Currency), at, e.Position, r.StakeholderTypeCode); err != nil {
			return err
		}
		if err := exec(`UPDATE balances SET balance = balance + $4, total_earned = total_earned + $4, updated_at = $5
			WHERE partner_id = $1 AND environment = $2 AND user_id = $3`, p, env, r.UserID, r.Tokens, at); err != nil {
			return err
		}
	}
	return nil
}

func (r rewardRow) actionFailed(v events.ActionFailed) error {
	p, env, at, e, exec := r.p, r.env, r.at, r.e, r.exec
	sh, _ := json.Marshal(v.Stakeholders)
	return exec(`INSERT INTO actions (action_id, partner_id, environment, idempotency_key, action_type, amount, currency, status,
		tokens_distributed, pool_id, campaign_id, stakeholders, transaction_ids, metadata, failure_code, failure_reason, created_at, updated_at, position)
		VALUES ($1,$2,$3,$4,$5,$6,$7,'FAILED',0,$8,$9,$10,'[]',$11,$12,$13,$14,$14,$15)
		ON CONFLICT (action_id) DO UPDATE SET status = 'FAILED', failure_code = $12, failure_reason = $13,
		attempts = actions.attempts + 1, updated_at = $14`,
		v.ActionID, p, env, v.IdempotencyKey, v.ActionType, v.Amount, v.Currency, v.PoolID, v.CampaignID, string(sh),
		jsonOrEmpty(v.Metadata), v.Code, v.Reason, at, e.Position)
}

func (r rewardRow) actionReversed(v events.ActionReversed) error {
	p, env, at, e, exec := r.p, r.env, r.at, r.e, r.exec
	ids, _ := json.Marshal(v.TransactionIDs)
	if err := exec(`UPDATE actions SET status = 'REVERSED', tokens_reversed = $2, reversal_reason = $3, reversed_at = $4, updated_at = $4,
		transaction_ids = transaction_ids || $5::jsonb WHERE action_id = $1`, v.ActionID, v.TokensReversed, v.Reason, at, string(ids)); err != nil {
		return err
	}
	for _, r := range v.Stakeholders {
		if r.Tokens == 0 {
			continue
		}
		if err := exec(`INSERT INTO transactions (transaction_id, partner_id, environment, type, direction, tokens, user_id, external_id, action_id, pool_id, campaign_id, description, created_at, position, stakeholder_type_code)
			VALUES ($1,$2,$3,'REVERSAL','DEBIT',$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)`, r.TransactionID, p, env, r.Tokens, r.UserID, r.PartnerUserID,
			v.ActionID, v.PoolID, v.CampaignID, "reversal: "+v.Reason, at, e.Position, r.StakeholderTypeCode); err != nil {
			return err
		}
		if err := exec(`UPDATE balances SET balance = balance - $4, total_reversed = total_reversed + $4, updated_at = $5
			WHERE partner_id = $1 AND environment = $2 AND user_id = $3`, p, env, r.UserID, r.Tokens, at); err != nil {
			return err
		}
	}
	return nil
}

func (r rewardRow) poolProvisioned(v events.PoolProvisioned) error {
	p, env, at, e, exec := r.p, r.env, r.at, r.e, r.exec
	if err := exec(`INSERT INTO pools (pool_id, partner_id, environment, name, allocated, low_balance_threshold, expires_at, vesting_days,
		auto_refill, auto_refill_threshold, auto_refill_amount, created_at, updated_at, provisioned) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$12,true)
		ON CONFLICT (pool_id) DO UPDATE SET name = $4, allocated = pools.allocated + $5, low_balance_threshold = $6, expires_at = $7,
		vesting_days = $8, auto_refill = $9, auto_refill_threshold = $10, auto_refill_amount = $11, updated_at = $12, provisioned = true`,
		v.PoolID, p, env, v.Name, v.Allocated, v.LowBalanceThreshold, v.ExpiresAt, v.VestingDays, v.AutoRefill,
		v.AutoRefillThreshold, v.AutoRefillAmount, at); err != nil {
		return err
	}
	if v.Allocated > 0 {
		return exec(`INSERT INTO transactions (transaction_id, partner_id, environment, type, direction, tokens, pool_id, description, created_at, position)
			VALUES ($1,$2,$3,'ALLOCATION','CREDIT',$4,$5,'initial pool allocation',$6,$7)`, allocationTxnID(e), p, env, v.Allocated, v.PoolID, at, e.Position)
	}
	return nil
}

func (r rewardRow) poolAllocationRequested(v events.PoolAllocationRequested) error {
	p, env, at, exec := r.p, r.env, r.at, r.exec
	// A pool that does not exist yet (production before its first
	// approval) gets a placeholder row so the request has a home.
	if err := exec(`INSERT INTO pools (pool_id, partner_id, environment, created_at, updated_at) VALUES ($1,$2,$3,$4,$4)
		ON CONFLICT (pool_id) DO NOTHING`, v.PoolID, p, env, at); err != nil {
		return err
	}
	return exec(`INSERT INTO allocation_requests (request_id, partner_id, environment, pool_id, amount, reason, status, auto, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,'PENDING',$7,$8)`, v.RequestID, p, env, v.PoolID, v.Amount, v.Reason, v.Auto, at)
}

func (r rewardRow) poolAllocationApproved(v events.PoolAllocationApproved) error {
	p, env, at, e, exec := r.p, r.env, r.at, r.e, r.exec
	if err := exec(`UPDATE allocation_requests SET status = 'APPROVED', decided_by = $2, decided_at = $3 WHERE request_id = $1`, v.RequestID, v.ApprovedBy, at); err != nil {
		return err
	}
	if err := exec(`UPDATE pools SET allocated = allocated + $2, updated_at = $3 WHERE pool_id = $1`, v.PoolID, v.Amount, at); err != nil {
		return err
	}
	return exec(`INSERT INTO transactions (transaction_id, partner_id, environment, type, direction, tokens, pool_id, description, created_at, position)
		VALUES ($1,$2,$3,'ALLOCATION','CREDIT',$4,$5,$6,$7,$8)`, allocationTxnID(e), p, env, v.Amount, v.PoolID, "allocation request "+v.RequestID, at, e.Position)
}

func (r rewardRow) campaignCreated(v events.CampaignCreated) error {
	p, env, at, exec := r.p, r.env, r.at, r.exec
	c := v.Config
	at2, _ := json.Marshal(c.ActionTypes)
	tiers, _ := json.Marshal(c.Tiers)
	splits, _ := json.Marshal(c.Splits)
	return exec(`INSERT INTO campaigns (campaign_id, partner_id, environment, name, description, status, starts_at, ends_at, action_types,
		multiplier, tiers, splits, token_budget, token_pool_id, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$15)`,
		v.CampaignID, p, env, c.Name, c.Description, v.Status, c.StartsAt, c.EndsAt, string(at2), c.Multiplier, string(tiers), string(splits),
		c.TokenBudget, c.TokenPoolID, at)
}

func (r rewardRow) campaignUpdated(v events.CampaignUpdated) error {
	at, exec := r.at, r.exec
	c := v.Config
	at2, _ := json.Marshal(c.ActionTypes)
	tiers, _ := json.Marshal(c.Tiers)
	splits, _ := json.Marshal(c.Splits)
	return exec(`UPDATE campaigns SET name = $2, description = $3, starts_at = $4, ends_at = $5, action_types = $6, multiplier = $7,
		tiers = $8, splits = $9, token_budget = $10, token_pool_id = $11, updated_at = $12 WHERE campaign_id = $1`,
		v.CampaignID, c.Name, c.Description, c.StartsAt, c.EndsAt, string(at2), c.Multiplier, string(tiers), string(splits), c.TokenBudget, c.TokenPoolID, at)
}
