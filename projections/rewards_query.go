package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// WaitTenant is read-your-writes for one tenant: it waits, at most wait,
// until the rewards read model has applied the tenant's last committed
// event. Every read endpoint calls it before querying.
func WaitTenant(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, wait time.Duration, names ...string) error {
	var pos int64
	if err := q.QueryRow(ctx, `SELECT coalesce(max(position), 0) FROM events WHERE partner_id = $1 AND environment = $2`,
		t.PartnerID, t.Environment).Scan(&pos); err != nil {
		return err
	}
	if len(names) == 0 {
		names = []string{RewardsName}
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return WaitFor(wctx, q, pos, names...)
}

// WaitPosition waits, at most wait, until the named read models (rewards
// by default) have applied position.
func WaitPosition(ctx context.Context, q eventstore.Querier, pos int64, wait time.Duration, names ...string) error {
	if len(names) == 0 {
		names = []string{RewardsName}
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return WaitFor(wctx, q, pos, names...)
}

// Window is a page of a list: Limit rows after Offset.
type Window struct {
	Limit  int
	Offset int
}

// where accumulates SQL conditions with numbered arguments.
type where struct {
	conds []string
	args  []any
}

func newWhere(t eventstore.Tenant) *where {
	return &where{conds: []string{"partner_id = $1", "environment = $2"}, args: []any{t.PartnerID, t.Environment}}
}

func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(w.args))))
}

func (w *where) sql() string { return " WHERE " + strings.Join(w.conds, " AND ") }

func (w *where) page(win Window) string {
	w.args = append(w.args, win.Limit, win.Offset)
	return fmt.Sprintf(" LIMIT $%d OFFSET $%d", len(w.args)-1, len(w.args))
}

func count(ctx context.Context, q eventstore.Querier, table string, w *where) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT count(*) FROM `+table+w.sql(), w.args...).Scan(&n)
	return n, err
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// UserView is an end user as the API shows it (OpenAPI EndUser).
type UserView struct {
	ID            string          `json:"id"`
	PartnerUserID string          `json:"partnerUserId"`
	Email         *string         `json:"email"`
	FirstName     *string         `json:"firstName"`
	LastName      *string         `json:"lastName"`
	Metadata      json.RawMessage `json:"metadata"`
	CreatedAt     time.Time       `json:"createdAt"`
	UpdatedAt     time.Time       `json:"updatedAt"`
}

const userCols = `u.user_id, u.external_id, nullif(u.email, ''), nullif(u.first_name, ''), nullif(u.last_name, ''), u.metadata::text, u.created_at, u.updated_at`

func scanEndUser(row pgx.CollectableRow) (UserView, error) {
	var v UserView
	var md string
	err := row.Scan(&v.ID, &v.PartnerUserID, &v.Email, &v.FirstName, &v.LastName, &md, &v.CreatedAt, &v.UpdatedAt)
	v.Metadata, v.CreatedAt, v.UpdatedAt = json.RawMessage(md), v.CreatedAt.UTC(), v.UpdatedAt.UTC()
	return v, err
}

func usersFrom() string {
	return Table(RewardsName, "users") + ` u JOIN ` + Table(RewardsName, "balances") + ` b USING (partner_id, environment, user_id)`
}

// ListUsers lists a tenant's end users, newest first; search matches the
// email or external id (case-insensitive substring).
func ListUsers(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, search string, win Window) ([]UserView, int64, error) {
	w := &where{conds: []string{"u.partner_id = $1", "u.environment = $2"}, args: []any{t.PartnerID, t.Environment}}
	if search != "" {
		w.add(`(u.email ILIKE ? OR u.external_id ILIKE `+fmt.Sprintf("$%d", len(w.args)+1)+`)`, "%"+likeEscape(search)+"%")
	}
	var total int64
	if err := q.QueryRow(ctx, `SELECT count(*) FROM `+usersFrom()+w.sql(), w.args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := q.Query(ctx, `SELECT `+userCols+` FROM `+usersFrom()+w.sql()+` ORDER BY u.created_at DESC, u.external_id`+w.page(win), w.args...)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scanEndUser)
	return out, total, err
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

var errUserNotFound = func(id string) error {
	return eventstore.Errorf(eventstore.KindNotFound, "USER_NOT_FOUND", "no user with externalId %q", id)
}

// GetUser returns one end user by the partner's external id.
func GetUser(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, externalID string) (UserView, error) {
	rows, err := q.Query(ctx, `SELECT `+userCols+` FROM `+usersFrom()+` WHERE u.partner_id = $1 AND u.environment = $2 AND u.external_id = $3`,
		t.PartnerID, t.Environment, externalID)
	if err != nil {
		return UserView{}, err
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanEndUser)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, errUserNotFound(externalID)
	}
	return v, err
}

// BalanceView is a user's token balance (OpenAPI UserBalance).
type BalanceView struct {
	PartnerUserID string    `json:"partnerUserId"`
	Balance       int64     `json:"balance"`
	TotalEarned   int64     `json:"totalEarned"`
	TotalReversed int64     `json:"totalReversed"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// GetBalance returns a user's balance.
func GetBalance(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, externalID string) (BalanceView, error) {
	var v BalanceView
	err := q.QueryRow(ctx, `SELECT external_id, balance, total_earned, total_reversed, updated_at FROM `+Table(RewardsName, "balances")+`
		WHERE partner_id = $1 AND environment = $2 AND external_id = $3`, t.PartnerID, t.Environment, externalID).
		Scan(&v.PartnerUserID, &v.Balance, &v.TotalEarned, &v.TotalReversed, &v.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, errUserNotFound(externalID)
	}
	v.UpdatedAt = v.UpdatedAt.UTC()
	return v, err
}

// ActionFailure says why a FAILED action failed.
type ActionFailure struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// StakeholderShare is one stakeholder's share of an action.
type StakeholderShare struct {
	StakeholderTypeCode string `json:"stakeholderTypeCode"`
	PartnerUserID       string `json:"partnerUserId"`
	Tokens              int64  `json:"tokens"`
}

// ActionReversal says how an action was reversed.
type ActionReversal struct {
	Reason         *string   `json:"reason"`
	TokensReversed int64     `json:"tokensReversed"`
	ReversedAt     time.Time `json:"reversedAt"`
}

// ActionView is an action as the API shows it (OpenAPI Action).
type ActionView struct {
	ActionID          string             `json:"actionId"`
	IdempotencyKey    string             `json:"idempotencyKey"`
	ActionType        string             `json:"actionType"`
	Amount            string             `json:"amount"`
	Currency          string             `json:"currency"`
	Status            string             `json:"status"`
	TokensDistributed int64              `json:"tokensDistributed"`
	TransactionIDs    []string           `json:"transactionIds"`
	Stakeholders      []StakeholderShare `json:"stakeholders"`
	CampaignID        *string            `json:"campaignId"`
	TokenPoolID       *string            `json:"tokenPoolId"`
	Metadata          json.RawMessage    `json:"metadata"`
	Failure           *ActionFailure     `json:"failure"`
	Reversal          *ActionReversal    `json:"reversal"`
	CreatedAt         time.Time          `json:"createdAt"`
}

const actionCols = `action_id, idempotency_key, action_type, amount, currency, status, tokens_distributed, tokens_reversed,
	transaction_ids::text, stakeholders::text, nullif(pool_id, ''), nullif(campaign_id, ''), metadata::text, failure_code, failure_reason,
	nullif(reversal_reason, ''), created_at, reversed_at`

func scanAction(row pgx.CollectableRow) (ActionView, error) {
	var v ActionView
	var ids, sh, md, fcode, freason string
	var reversed int64
	var reason *string
	var reversedAt *time.Time
	err := row.Scan(&v.ActionID, &v.IdempotencyKey, &v.ActionType, &v.Amount, &v.Currency, &v.Status, &v.TokensDistributed, &reversed,
		&ids, &sh, &v.TokenPoolID, &v.CampaignID, &md, &fcode, &freason, &reason, &v.CreatedAt, &reversedAt)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal([]byte(ids), &v.TransactionIDs); err != nil {
		return v, err
	}
	var rewards []events.ActionReward
	if err := json.Unmarshal([]byte(sh), &rewards); err != nil {
		return v, err
	}
	v.Stakeholders = make([]StakeholderShare, len(rewards))
	for i, r := range rewards {
		v.Stakeholders[i] = StakeholderShare{StakeholderTypeCode: r.StakeholderTypeCode, PartnerUserID: r.PartnerUserID, Tokens: r.Tokens}
	}
	if v.TransactionIDs == nil {
		v.TransactionIDs = []string{}
	}
	v.Metadata = json.RawMessage(md)
	if fcode != "" && v.Status == "FAILED" {
		v.Failure = &ActionFailure{Code: fcode, Reason: freason}
	}
	if reversedAt != nil {
		v.Reversal = &ActionReversal{Reason: reason, TokensReversed: reversed, ReversedAt: reversedAt.UTC()}
	}
	v.CreatedAt = v.CreatedAt.UTC()
	return v, nil
}

// ActionFilter narrows ListActions; zero fields do not filter.
type ActionFilter struct {
	Status     string
	ActionType string
	UserID     string // the partner's external id of a stakeholder
	CampaignID string
	From, To   *time.Time
}

// ListActions lists a tenant's actions, newest first.
func ListActions(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, f ActionFilter, win Window) ([]ActionView, int64, error) {
	w := newWhere(t)
	if f.Status != "" {
		w.add("status = ?", f.Status)
	}
	if f.ActionType != "" {
		w.add("action_type = ?", f.ActionType)
	}
	if f.CampaignID != "" {
		w.add("campaign_id = ?", f.CampaignID)
	}
	if f.UserID != "" {
		b, _ := json.Marshal([]string{f.UserID})
		w.add(stakeholderUsers+" @> ?::jsonb", string(b))
	}
	if f.From != nil {
		w.add("created_at >= ?", *f.From)
	}
	if f.To != nil {
		w.add("created_at < ?", *f.To)
	}
	table := Table(RewardsName, "actions")
	total, err := count(ctx, q, table, w)
	if err != nil {
		return nil, 0, err
	}
	rows, err := q.Query(ctx, `SELECT `+actionCols+` FROM `+table+w.sql()+` ORDER BY created_at DESC, action_id`+w.page(win), w.args...)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scanAction)
	return out, total, err
}

// GetAction returns one action of the tenant.
func GetAction(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, actionID string) (ActionView, error) {
	rows, err := q.Query(ctx, `SELECT `+actionCols+` FROM `+Table(RewardsName, "actions")+` WHERE partner_id = $1 AND environment = $2 AND action_id = $3`,
		t.PartnerID, t.Environment, actionID)
	if err != nil {
		return ActionView{}, err
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanAction)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, eventstore.Errorf(eventstore.KindNotFound, "ACTION_NOT_FOUND", "no action %s", actionID)
	}
	return v, err
}

// TransactionView is one token movement (OpenAPI Transaction): REWARD
// credits a user (+tokens), REVERSAL debits one (−tokens), ALLOCATION
// credits a pool (+tokens); a user's transactions add up to their balance.
type TransactionView struct {
	ID                  string    `json:"id"`
	Type                string    `json:"type"`
	Tokens              int64     `json:"tokens"`
	PartnerUserID       *string   `json:"partnerUserId"`
	ActionID            *string   `json:"actionId"`
	PoolID              string    `json:"poolId"`
	StakeholderTypeCode *string   `json:"stakeholderTypeCode"`
	CampaignID          *string   `json:"campaignId"`
	CreatedAt           time.Time `json:"createdAt"`
}

const txnCols = `transaction_id, type, CASE WHEN direction = 'DEBIT' THEN -tokens ELSE tokens END, nullif(external_id, ''),
	nullif(action_id, ''), pool_id, nullif(stakeholder_type_code, ''), nullif(campaign_id, ''), created_at`

func scanTxn(row pgx.CollectableRow) (TransactionView, error) {
	var v TransactionView
	err := row.Scan(&v.ID, &v.Type, &v.Tokens, &v.PartnerUserID, &v.ActionID, &v.PoolID, &v.StakeholderTypeCode, &v.CampaignID, &v.CreatedAt)
	v.CreatedAt = v.CreatedAt.UTC()
	return v, err
}

// TransactionFilter narrows ListTransactions; zero fields do not filter.
type TransactionFilter struct {
	Type     string
	UserID   string // external id
	ActionID string
	PoolID   string
	From, To *time.Time
}

// ListTransactions lists a tenant's transactions, newest first.
func ListTransactions(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, f TransactionFilter, win Window) ([]TransactionView, int64, error) {
	w := newWhere(t)
	if f.Type != "" {
		w.add("type = ?", f.Type)
	}
	if f.UserID != "" {
		w.add("external_id = ?", f.UserID)
	}
	if f.ActionID != "" {
		w.add("action_id = ?", f.ActionID)
	}
	if f.PoolID != "" {
		w.add("pool_id = ?", f.PoolID)
	}
	if f.From != nil {
		w.add("created_at >= ?", *f.From)
	}
	if f.To != nil {
		w.add("created_at < ?", *f.To)
	}
	table := Table(RewardsName, "transactions")
	total, err := count(ctx, q, table, w)
	if err != nil {
		return nil, 0, err
	}
	rows, err := q.Query(ctx, `SELECT `+txnCols+` FROM `+table+w.sql()+` ORDER BY position DESC, transaction_id`+w.page(win), w.args...)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scanTxn)
	return out, total, err
}

// GetTransaction returns one transaction of the tenant.
func GetTransaction(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, id string) (TransactionView, error) {
	rows, err := q.Query(ctx, `SELECT `+txnCols+` FROM `+Table(RewardsName, "transactions")+` WHERE partner_id = $1 AND environment = $2 AND transaction_id = $3`,
		t.PartnerID, t.Environment, id)
	if err != nil {
		return TransactionView{}, err
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanTxn)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, eventstore.Errorf(eventstore.KindNotFound, "TRANSACTION_NOT_FOUND", "no transaction %s", id)
	}
	return v, err
}

// PoolRestrictions are a pool's limits.
type PoolRestrictions struct {
	ExpiresAt   *time.Time `json:"expiresAt"`
	VestingDays int        `json:"vestingDays"`
}

// PoolAutoRefill is a pool's auto-refill setting.
type PoolAutoRefill struct {
	Enabled   bool  `json:"enabled"`
	Threshold int64 `json:"threshold"`
	Amount    int64 `json:"amount"`
}

// PoolView is a token pool as the API shows it (OpenAPI TokenPool).
// Allocated = Available + Distributed − Returned always holds.
type PoolView struct {
	ID                  string           `json:"id"`
	Name                string           `json:"name"`
	Environment         string           `json:"environment"`
	Allocated           int64            `json:"allocated"`
	Distributed         int64            `json:"distributed"`
	Returned            int64            `json:"returned"`
	Available           int64            `json:"available"`
	Status              string           `json:"status"`
	LowBalanceThreshold int64            `json:"-"`
	Restrictions        PoolRestrictions `json:"restrictions"`
	AutoRefill          PoolAutoRefill   `json:"autoRefill"`
	CreatedAt           time.Time        `json:"createdAt"`
	UpdatedAt           time.Time        `json:"-"`
}

// PoolBalance is a pool's balance (OpenAPI PoolBalance).
type PoolBalance struct {
	PoolID      string    `json:"poolId"`
	Allocated   int64     `json:"allocated"`
	Distributed int64     `json:"distributed"`
	Returned    int64     `json:"returned"`
	Available   int64     `json:"available"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// Balance is the pool's balance view.
func (p PoolView) Balance() PoolBalance {
	return PoolBalance{PoolID: p.ID, Allocated: p.Allocated, Distributed: p.Distributed, Returned: p.Returned, Available: p.Available, UpdatedAt: p.UpdatedAt}
}

// poolCols computes status at query time: EXPIRED depends on the clock.
const poolCols = `pool_id, name, environment, allocated, distributed, returned, low_balance_threshold, expires_at, vesting_days,
	auto_refill, auto_refill_threshold, auto_refill_amount, created_at, updated_at,
	CASE WHEN expires_at IS NOT NULL AND expires_at <= now() THEN 'EXPIRED'
	     WHEN allocated - distributed + returned <= 0 THEN 'DEPLETED' ELSE 'ACTIVE' END`

func scanPool(row pgx.CollectableRow) (PoolView, error) {
	var v PoolView
	err := row.Scan(&v.ID, &v.Name, &v.Environment, &v.Allocated, &v.Distributed, &v.Returned, &v.LowBalanceThreshold,
		&v.Restrictions.ExpiresAt, &v.Restrictions.VestingDays, &v.AutoRefill.Enabled, &v.AutoRefill.Threshold, &v.AutoRefill.Amount,
		&v.CreatedAt, &v.UpdatedAt, &v.Status)
	v.Available = v.Allocated - v.Distributed + v.Returned
	v.Restrictions.ExpiresAt, v.CreatedAt, v.UpdatedAt = utc(v.Restrictions.ExpiresAt), v.CreatedAt.UTC(), v.UpdatedAt.UTC()
	return v, err
}

// ListPools lists a tenant's provisioned token pools, oldest first.
func ListPools(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, win Window) ([]PoolView, int64, error) {
	w := newWhere(t)
	w.conds = append(w.conds, "provisioned")
	table := Table(RewardsName, "pools")
	total, err := count(ctx, q, table, w)
	if err != nil {
		return nil, 0, err
	}
	rows, err := q.Query(ctx, `SELECT `+poolCols+` FROM `+table+w.sql()+` ORDER BY created_at, pool_id`+w.page(win), w.args...)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scanPool)
	return out, total, err
}

// GetPool returns one pool of the tenant.
func GetPool(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, poolID string) (PoolView, error) {
	rows, err := q.Query(ctx, `SELECT `+poolCols+` FROM `+Table(RewardsName, "pools")+` WHERE partner_id = $1 AND environment = $2 AND pool_id = $3 AND provisioned`,
		t.PartnerID, t.Environment, poolID)
	if err != nil {
		return PoolView{}, err
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanPool)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, eventstore.Errorf(eventstore.KindNotFound, "POOL_NOT_FOUND", "no token pool %s", poolID)
	}
	return v, err
}

// AllocationRequestView is one allocation request (OpenAPI AllocationRequest).
type AllocationRequestView struct {
	ID           string     `json:"id"`
	PoolID       *string    `json:"poolId"`
	Environment  string     `json:"environment"`
	Amount       int64      `json:"amount"`
	Reason       *string    `json:"reason"`
	Status       string     `json:"status"`
	DecisionNote *string    `json:"decisionNote"`
	CreatedAt    time.Time  `json:"createdAt"`
	DecidedAt    *time.Time `json:"decidedAt"`
}

// ListAllocationRequests lists a tenant's allocation requests, newest first.
func ListAllocationRequests(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, status string, win Window) ([]AllocationRequestView, int64, error) {
	w := newWhere(t)
	if status != "" {
		w.add("status = ?", status)
	}
	table := Table(RewardsName, "allocation_requests")
	total, err := count(ctx, q, table, w)
	if err != nil {
		return nil, 0, err
	}
	rows, err := q.Query(ctx, `SELECT `+requestCols+` FROM `+table+w.sql()+` ORDER BY created_at DESC, request_id`+w.page(win), w.args...)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scanRequest)
	return out, total, err
}

const requestCols = `request_id, pool_id, environment, amount, nullif(reason, ''), status, nullif(decision_reason, ''), created_at, decided_at`

func scanRequest(row pgx.CollectableRow) (AllocationRequestView, error) {
	var v AllocationRequestView
	err := row.Scan(&v.ID, &v.PoolID, &v.Environment, &v.Amount, &v.Reason, &v.Status, &v.DecisionNote, &v.CreatedAt, &v.DecidedAt)
	v.CreatedAt, v.DecidedAt = v.CreatedAt.UTC(), utc(v.DecidedAt)
	return v, err
}

// GetAllocationRequest returns one allocation request of the tenant.
func GetAllocationRequest(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, id string) (AllocationRequestView, error) {
	rows, err := q.Query(ctx, `SELECT `+requestCols+` FROM `+Table(RewardsName, "allocation_requests")+
		` WHERE partner_id = $1 AND environment = $2 AND request_id = $3`, t.PartnerID, t.Environment, id)
	if err != nil {
		return AllocationRequestView{}, err
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanRequest)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, eventstore.Errorf(eventstore.KindNotFound, "REQUEST_NOT_FOUND", "no allocation request %s", id)
	}
	return v, err
}

// LedgerTotals is the rewards read model's view of every pool and user
// balance, for reconciliation against a fold of the event store.
type LedgerTotals struct {
	Position int64
	Pools    map[string][3]int64 // pool id → allocated, distributed, returned
	Users    map[string][2]int64 // user id → earned, reversed
}

// ReadLedgerTotals reads pools and balances (optionally for one tenant)
// in one snapshot, with the checkpoint they correspond to.
func ReadLedgerTotals(ctx context.Context, pool *pgxpool.Pool, partnerID, environment string) (LedgerTotals, error) {
	out := LedgerTotals{Pools: map[string][3]int64{}, Users: map[string][2]int64{}}
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT position FROM projection_checkpoints WHERE name = $1`, RewardsName).Scan(&out.Position); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT pool_id, allocated, distributed, returned FROM `+Table(RewardsName, "pools")+`
			WHERE ($1 = '' OR partner_id = $1) AND ($2 = '' OR environment = $2)`, partnerID, environment)
		if err != nil {
			return err
		}
		var id string
		var a, d, r int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &a, &d, &r}, func() error {
			out.Pools[id] = [3]int64{a, d, r}
			return nil
		}); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT user_id, total_earned, total_reversed FROM `+Table(RewardsName, "balances")+`
			WHERE ($1 = '' OR partner_id = $1) AND ($2 = '' OR environment = $2)`, partnerID, environment)
		if err != nil {
			return err
		}
		_, err = pgx.ForEachRow(rows, []any{&id, &a, &d}, func() error {
			out.Users[id] = [2]int64{a, d}
			return nil
		})
		return err
	})
	return out, err
}
