package projections

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// CampaignSplitView gives a stakeholder role its percentage.
type CampaignSplitView struct {
	StakeholderTypeCode string `json:"stakeholderTypeCode"`
	Percent             string `json:"percent"`
}

// CampaignBudget is a campaign's token budget; Used is net of reversals.
type CampaignBudget struct {
	Total     int64 `json:"total"`
	Used      int64 `json:"used"`
	Remaining int64 `json:"remaining"`
}

// CampaignView is a campaign as the API shows it (OpenAPI Campaign).
// Budget is null for a campaign without a token budget.
type CampaignView struct {
	ID          string                `json:"id"`
	Name        string                `json:"name"`
	Description *string               `json:"description"`
	Status      string                `json:"status"`
	StartsAt    *time.Time            `json:"startsAt"`
	EndsAt      *time.Time            `json:"endsAt"`
	ActionTypes []string              `json:"actionTypes"`
	Multiplier  string                `json:"multiplier"`
	Tiers       []events.CampaignTier `json:"tiers"`
	Splits      []CampaignSplitView   `json:"splits"`
	Budget      *CampaignBudget       `json:"budget"`
	TokenPoolID *string               `json:"tokenPoolId"`
	CreatedAt   time.Time             `json:"createdAt"`
	UpdatedAt   time.Time             `json:"updatedAt"`

	// TokensDistributed is what the campaign paid, net of reversals.
	TokensDistributed int64 `json:"-"`
}

const campaignCols = `campaign_id, name, nullif(description, ''), status, starts_at, ends_at, action_types::text, multiplier, tiers::text, splits::text,
	token_budget, tokens_spent - tokens_returned, nullif(token_pool_id, ''), created_at, updated_at`

func scanCampaign(row pgx.CollectableRow) (CampaignView, error) {
	var v CampaignView
	var at, tiers, splits string
	var budget *int64
	if err := row.Scan(&v.ID, &v.Name, &v.Description, &v.Status, &v.StartsAt, &v.EndsAt, &at, &v.Multiplier, &tiers, &splits,
		&budget, &v.TokensDistributed, &v.TokenPoolID, &v.CreatedAt, &v.UpdatedAt); err != nil {
		return v, err
	}
	var sp []events.CampaignSplit
	for _, f := range []struct {
		raw string
		dst any
	}{{at, &v.ActionTypes}, {tiers, &v.Tiers}, {splits, &sp}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return v, err
		}
	}
	v.Splits = make([]CampaignSplitView, len(sp))
	for i, x := range sp {
		v.Splits[i] = CampaignSplitView{StakeholderTypeCode: x.StakeholderTypeCode, Percent: x.Percentage}
	}
	if budget != nil {
		v.Budget = &CampaignBudget{Total: *budget, Used: v.TokensDistributed, Remaining: *budget - v.TokensDistributed}
	}
	v.StartsAt, v.EndsAt, v.CreatedAt, v.UpdatedAt = utc(v.StartsAt), utc(v.EndsAt), v.CreatedAt.UTC(), v.UpdatedAt.UTC()
	return v, nil
}

// ListCampaigns lists a tenant's campaigns, newest first.
func ListCampaigns(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, status string, win Window) ([]CampaignView, int64, error) {
	w := newWhere(t)
	if status != "" {
		w.add("status = ?", status)
	}
	table := Table(RewardsName, "campaigns")
	total, err := count(ctx, q, table, w)
	if err != nil {
		return nil, 0, err
	}
	rows, err := q.Query(ctx, `SELECT `+campaignCols+` FROM `+table+w.sql()+` ORDER BY created_at DESC, campaign_id`+w.page(win), w.args...)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scanCampaign)
	return out, total, err
}

// GetCampaign returns one campaign of the tenant.
func GetCampaign(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, id string) (CampaignView, error) {
	rows, err := q.Query(ctx, `SELECT `+campaignCols+` FROM `+Table(RewardsName, "campaigns")+` WHERE partner_id = $1 AND environment = $2 AND campaign_id = $3`,
		t.PartnerID, t.Environment, id)
	if err != nil {
		return CampaignView{}, err
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanCampaign)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, eventstore.Errorf(eventstore.KindNotFound, "CAMPAIGN_NOT_FOUND", "no campaign %s", id)
	}
	return v, err
}

// ActiveCampaign returns the tenant's ACTIVE campaign.
func ActiveCampaign(ctx context.Context, q eventstore.Querier, t eventstore.Tenant) (CampaignView, error) {
	rows, err := q.Query(ctx, `SELECT `+campaignCols+` FROM `+Table(RewardsName, "campaigns")+` WHERE partner_id = $1 AND environment = $2 AND status = 'ACTIVE'`,
		t.PartnerID, t.Environment)
	if err != nil {
		return CampaignView{}, err
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanCampaign)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, eventstore.Errorf(eventstore.KindNotFound, "NO_ACTIVE_CAMPAIGN", "no campaign is active in this environment")
	}
	return v, err
}

// CampaignAnalytics is a campaign's performance.
type CampaignAnalytics struct {
	CampaignID        string          `json:"campaignId"`
	Name              string          `json:"name"`
	Status            string          `json:"status"`
	From              *time.Time      `json:"from"`
	To                *time.Time      `json:"to"`
	Actions           ActionCounts    `json:"actions"`
	TokensDistributed int64           `json:"tokensDistributed"`
	TokensReversed    int64           `json:"tokensReversed"`
	UniqueUsers       int64           `json:"uniqueUsers"`
	Budget            *CampaignBudget `json:"budget"`
	ByActionType      []TypeBreakdown `json:"byActionType"`
	Daily             []DailyPoint    `json:"daily"`
}

// ActionCounts counts actions by status.
type ActionCounts struct {
	Total     int64 `json:"total"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	Reversed  int64 `json:"reversed"`
}

// TypeBreakdown is activity for one action type.
type TypeBreakdown struct {
	ActionType string `json:"actionType"`
	Actions    int64  `json:"actions"`
	Tokens     int64  `json:"tokens"`
}

// DailyPoint is one UTC day of activity.
type DailyPoint struct {
	Date              string `json:"date"`
	Actions           int64  `json:"actions"`
	TokensDistributed int64  `json:"tokensDistributed"`
}

// GetCampaignAnalytics computes a campaign's performance from the read
// model: over its whole life, or over the actions recorded in [from, to)
// when either bound is given (reversals count with the action they undo).
// The budget is always the campaign's current one.
func GetCampaignAnalytics(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, id string, from, to *time.Time) (CampaignAnalytics, error) {
	c, err := GetCampaign(ctx, q, t, id)
	if err != nil {
		return CampaignAnalytics{}, err
	}
	a := CampaignAnalytics{CampaignID: id, Name: c.Name, Status: c.Status, Budget: c.Budget,
		From: utc(from), To: utc(to), ByActionType: []TypeBreakdown{}, Daily: []DailyPoint{}}
	actions := Table(RewardsName, "actions")
	args := []any{t.PartnerID, t.Environment, id, from, to}
	const where = ` WHERE partner_id = $1 AND environment = $2 AND campaign_id = $3
		AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)`
	if err := q.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'COMPLETED'), count(*) FILTER (WHERE status = 'FAILED'),
		count(*) FILTER (WHERE status = 'REVERSED'), coalesce(sum(tokens_distributed), 0), coalesce(sum(tokens_reversed), 0)
		FROM `+actions+where, args...).Scan(&a.Actions.Total, &a.Actions.Completed, &a.Actions.Failed, &a.Actions.Reversed,
		&a.TokensDistributed, &a.TokensReversed); err != nil {
		return a, err
	}
	if err := q.QueryRow(ctx, `SELECT count(DISTINCT s->>'userId') FROM `+actions+`, jsonb_array_elements(stakeholders) s`+where+` AND status <> 'FAILED'`,
		args...).Scan(&a.UniqueUsers); err != nil {
		return a, err
	}
	rows, err := q.Query(ctx, `SELECT action_type, count(*), coalesce(sum(tokens_distributed - tokens_reversed), 0) FROM `+actions+where+
		` AND status <> 'FAILED' GROUP BY action_type ORDER BY action_type`, args...)
	if err != nil {
		return a, err
	}
	if a.ByActionType, err = pgx.CollectRows(rows, pgx.RowToStructByPos[TypeBreakdown]); err != nil {
		return a, err
	}
	rows, err = q.Query(ctx, `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*), coalesce(sum(tokens_distributed - tokens_reversed), 0)
		FROM `+actions+where+` AND status <> 'FAILED' GROUP BY 1 ORDER BY 1`, args...)
	if err != nil {
		return a, err
	}
	a.Daily, err = pgx.CollectRows(rows, pgx.RowToStructByPos[DailyPoint])
	if a.Daily == nil {
		a.Daily = []DailyPoint{}
	}
	if a.ByActionType == nil {
		a.ByActionType = []TypeBreakdown{}
	}
	return a, err
}

// DueCampaign is a campaign whose schedule says its status should change.
type DueCampaign struct {
	Tenant     eventstore.Tenant
	CampaignID string
}

// DueCampaigns lists, across tenants, SCHEDULED campaigns whose start has
// come and live campaigns whose end has passed, for the scheduler.
//
// A SCHEDULED campaign that cannot start because its tenant already has an
// ACTIVE one is left out (until its end passes): advancing it changes
// nothing, so it would stay at the head of the list, and a hundred of them
// (one partner can make them) would starve every other tenant's schedule.
func DueCampaigns(ctx context.Context, q eventstore.Querier, now time.Time, limit int) ([]DueCampaign, error) {
	table := Table(RewardsName, "campaigns")
	rows, err := q.Query(ctx, `SELECT c.partner_id, c.environment, c.campaign_id FROM `+table+` c
		WHERE (c.status IN ('SCHEDULED','ACTIVE','PAUSED') AND c.ends_at <= $1)
		   OR (c.status = 'SCHEDULED' AND c.starts_at <= $1 AND NOT EXISTS (
				SELECT 1 FROM `+table+` a WHERE a.partner_id = c.partner_id AND a.environment = c.environment AND a.status = 'ACTIVE'))
		ORDER BY coalesce(c.ends_at, c.starts_at), c.campaign_id LIMIT $2`, now, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (DueCampaign, error) {
		var d DueCampaign
		err := row.Scan(&d.Tenant.PartnerID, &d.Tenant.Environment, &d.CampaignID)
		return d, err
	})
}
