package projections

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// DashboardSummary is the tenant's pools, activity and users at a glance.
type DashboardSummary struct {
	Environment string `json:"environment"`
	Pools       struct {
		Count       int64 `json:"count"`
		Allocated   int64 `json:"allocated"`
		Distributed int64 `json:"distributed"`
		Returned    int64 `json:"returned"`
		Available   int64 `json:"available"`
	} `json:"pools"`
	Activity struct {
		TotalActions      int64 `json:"totalActions"`
		Completed         int64 `json:"completed"`
		Failed            int64 `json:"failed"`
		Reversed          int64 `json:"reversed"`
		TokensDistributed int64 `json:"tokensDistributed"`
		Last24h           int64 `json:"last24h"`
		Last30d           int64 `json:"last30d"`
	} `json:"activity"`
	Users struct {
		Total      int64 `json:"total"`
		Rewarded   int64 `json:"rewarded"`
		NewLast30d int64 `json:"newLast30d"`
	} `json:"users"`
	ActiveCampaign *CampaignSummary `json:"activeCampaign"`
	GeneratedAt    time.Time        `json:"generatedAt"`
}

// CampaignSummary is the public face of a campaign.
type CampaignSummary struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Multiplier string     `json:"multiplier"`
	EndsAt     *time.Time `json:"endsAt"`
}

// Summary computes the dashboard summary as of now.
func Summary(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, now time.Time) (DashboardSummary, error) {
	var s DashboardSummary
	s.Environment, s.GeneratedAt = t.Environment, now.UTC()
	args := []any{t.PartnerID, t.Environment}
	const where = ` WHERE partner_id = $1 AND environment = $2`
	if err := q.QueryRow(ctx, `SELECT count(*), coalesce(sum(allocated), 0), coalesce(sum(distributed), 0), coalesce(sum(returned), 0)
		FROM `+Table(RewardsName, "pools")+where+` AND provisioned`, args...).
		Scan(&s.Pools.Count, &s.Pools.Allocated, &s.Pools.Distributed, &s.Pools.Returned); err != nil {
		return s, err
	}
	s.Pools.Available = s.Pools.Allocated - s.Pools.Distributed + s.Pools.Returned
	a := &s.Activity
	if err := q.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'COMPLETED'), count(*) FILTER (WHERE status = 'FAILED'),
		count(*) FILTER (WHERE status = 'REVERSED'), coalesce(sum(tokens_distributed - tokens_reversed), 0),
		count(*) FILTER (WHERE created_at > $3::timestamptz - interval '24 hours'), count(*) FILTER (WHERE created_at > $3::timestamptz - interval '30 days')
		FROM `+Table(RewardsName, "actions")+where, t.PartnerID, t.Environment, now).
		Scan(&a.TotalActions, &a.Completed, &a.Failed, &a.Reversed, &a.TokensDistributed, &a.Last24h, &a.Last30d); err != nil {
		return s, err
	}
	if err := q.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE b.total_earned > 0), count(*) FILTER (WHERE u.created_at > $3::timestamptz - interval '30 days')
		FROM `+usersFrom()+` WHERE u.partner_id = $1 AND u.environment = $2`, t.PartnerID, t.Environment, now).
		Scan(&s.Users.Total, &s.Users.Rewarded, &s.Users.NewLast30d); err != nil {
		return s, err
	}
	c, err := ActiveCampaign(ctx, q, t)
	if err == nil {
		s.ActiveCampaign = &CampaignSummary{ID: c.ID, Name: c.Name, Multiplier: c.Multiplier, EndsAt: c.EndsAt}
	} else if le := (*eventstore.Error)(nil); !errors.As(err, &le) || le.Code != "NO_ACTIVE_CAMPAIGN" {
		return s, err
	}
	return s, nil
}

// TrendPoint is one UTC day of the tenant's activity.
type TrendPoint struct {
	Date              string `json:"date"`
	Actions           int64  `json:"actions"`
	Completed         int64  `json:"completed"`
	Failed            int64  `json:"failed"`
	Reversed          int64  `json:"reversed"`
	TokensDistributed int64  `json:"tokensDistributed"`
	TokensReversed    int64  `json:"tokensReversed"`
	NewUsers          int64  `json:"newUsers"`
}

// Trends is daily activity over the last days UTC days, today included.
type Trends struct {
	From   string       `json:"from"`
	To     string       `json:"to"`
	Series []TrendPoint `json:"series"`
}

// DailyTrends computes one point per day, zeros included.
func DailyTrends(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, days int, now time.Time) (Trends, error) {
	to := now.UTC().Truncate(24 * time.Hour)
	from := to.AddDate(0, 0, -(days - 1))
	tr := Trends{From: from.Format("2006-01-02"), To: to.Format("2006-01-02")}
	acts, txns, users := Table(RewardsName, "actions"), Table(RewardsName, "transactions"), Table(RewardsName, "users")
	rows, err := q.Query(ctx, `WITH d AS (SELECT generate_series($3::date, $4::date, interval '1 day')::date AS day)
		SELECT to_char(d.day, 'YYYY-MM-DD'),
		  (SELECT count(*) FROM `+acts+` a WHERE a.partner_id = $1 AND a.environment = $2 AND (a.created_at AT TIME ZONE 'UTC')::date = d.day),
		  (SELECT count(*) FROM `+acts+` a WHERE a.partner_id = $1 AND a.environment = $2 AND (a.created_at AT TIME ZONE 'UTC')::date = d.day AND a.status <> 'FAILED'),
		  (SELECT count(*) FROM `+acts+` a WHERE a.partner_id = $1 AND a.environment = $2 AND (a.created_at AT TIME ZONE 'UTC')::date = d.day AND a.status = 'FAILED'),
		  (SELECT count(*) FROM `+acts+` a WHERE a.partner_id = $1 AND a.environment = $2 AND (a.reversed_at AT TIME ZONE 'UTC')::date = d.day),
		  (SELECT coalesce(sum(tokens), 0) FROM `+txns+` x WHERE x.partner_id = $1 AND x.environment = $2 AND x.type = 'REWARD' AND (x.created_at AT TIME ZONE 'UTC')::date = d.day),
		  (SELECT coalesce(sum(tokens), 0) FROM `+txns+` x WHERE x.partner_id = $1 AND x.environment = $2 AND x.type = 'REVERSAL' AND (x.created_at AT TIME ZONE 'UTC')::date = d.day),
		  (SELECT count(*) FROM `+users+` u WHERE u.partner_id = $1 AND u.environment = $2 AND (u.created_at AT TIME ZONE 'UTC')::date = d.day)
		FROM d ORDER BY d.day`, t.PartnerID, t.Environment, from, to)
	if err != nil {
		return tr, err
	}
	tr.Series, err = pgx.CollectRows(rows, pgx.RowToStructByPos[TrendPoint])
	if tr.Series == nil {
		tr.Series = []TrendPoint{}
	}
	return tr, err
}

// TopEarner is one user in the top-earners list.
type TopEarner struct {
	Rank          int    `json:"rank"`
	PartnerUserID string `json:"partnerUserId"`
	TokensEarned  int64  `json:"tokensEarned"`
	Actions       int64  `json:"actions"`
	Balance       int64  `json:"balance"`
}

// TopEarners ranks users by tokens earned net of reversals, in the last
// days UTC days (all time when days is 0).
func TopEarners(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, limit, days int, now time.Time) ([]TopEarner, error) {
	var since *time.Time
	if days > 0 {
		s := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(days - 1))
		since = &s
	}
	rows, err := q.Query(ctx, `SELECT x.external_id,
		  sum(CASE WHEN x.type = 'REVERSAL' THEN -x.tokens ELSE x.tokens END) AS earned,
		  count(DISTINCT x.action_id) FILTER (WHERE x.type = 'REWARD'), max(b.balance)
		FROM `+Table(RewardsName, "transactions")+` x JOIN `+Table(RewardsName, "balances")+` b
		  ON b.partner_id = x.partner_id AND b.environment = x.environment AND b.user_id = x.user_id
		WHERE x.partner_id = $1 AND x.environment = $2 AND x.type IN ('REWARD', 'REVERSAL') AND ($3::timestamptz IS NULL OR x.created_at >= $3)
		GROUP BY x.external_id HAVING sum(CASE WHEN x.type = 'REVERSAL' THEN -x.tokens ELSE x.tokens END) > 0
		ORDER BY earned DESC, x.external_id LIMIT $4`, t.PartnerID, t.Environment, since, limit)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TopEarner, error) {
		var e TopEarner
		err := row.Scan(&e.PartnerUserID, &e.TokensEarned, &e.Actions, &e.Balance)
		return e, err
	})
	for i := range out {
		out[i].Rank = i + 1
	}
	if out == nil {
		out = []TopEarner{}
	}
	return out, err
}
