package projections

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// The partner's widget configuration lives in the accounts read model
// (table partner_configs), beside the partner it configures. A database
// whose accounts schema predates the table gets it, empty, at start-up
// (Accounts.Upgrade).

func applyWidgetConfigured(ctx context.Context, tx pgx.Tx, v events.WidgetConfigured, at time.Time) error {
	features := v.EnabledFeatures
	if features == nil {
		features = []string{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO partner_configs (partner_id, enabled_features, tip_enabled, tip_default_percent, updated_at)
		VALUES ($1,$2,$3,$4,$5) ON CONFLICT (partner_id) DO UPDATE SET enabled_features = excluded.enabled_features,
		tip_enabled = excluded.tip_enabled, tip_default_percent = excluded.tip_default_percent, updated_at = excluded.updated_at`,
		v.PartnerID, features, v.TipEnabled, v.TipDefaultPercent, at)
	return err
}

// PartnerConfigRecord is a partner's widget configuration.
type PartnerConfigRecord struct {
	// Configured is false for a partner an operator never configured: the
	// other fields are then the caller's defaults to fill in.
	Configured        bool
	EnabledFeatures   []string
	TipEnabled        bool
	TipDefaultPercent int64
}

// PartnerConfig returns the partner's widget configuration.
func PartnerConfig(ctx context.Context, q eventstore.Querier, partnerID string) (PartnerConfigRecord, error) {
	c := PartnerConfigRecord{Configured: true}
	err := q.QueryRow(ctx, `SELECT enabled_features, tip_enabled, tip_default_percent FROM proj_accounts.partner_configs WHERE partner_id = $1`,
		partnerID).Scan(&c.EnabledFeatures, &c.TipEnabled, &c.TipDefaultPercent)
	if errors.Is(err, pgx.ErrNoRows) {
		return PartnerConfigRecord{}, nil
	}
	return c, err
}
