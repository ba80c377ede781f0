package projections

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
)

// DonationsName is the name of the donations read model: the nonprofit
// directory and every donation link with its status and reward.
const DonationsName = "donations"

// Donations is the donations projection. The nonprofit directory is shared
// by every partner; each donation row carries partner_id and environment
// and every donation query filters on both.
type Donations struct{}

// Name implements Projection.
func (Donations) Name() string { return DonationsName }

// Setup implements Projection.
func (Donations) Setup() string {
	return `
CREATE TABLE nonprofits (
    slug text PRIMARY KEY, name text NOT NULL, ein text NOT NULL DEFAULT '', description text NOT NULL DEFAULT '',
    website_url text NOT NULL DEFAULT '', logo_url text NOT NULL DEFAULT '', city text NOT NULL DEFAULT '',
    state text NOT NULL DEFAULT '', country text NOT NULL DEFAULT '', categories jsonb NOT NULL DEFAULT '[]',
    source text NOT NULL DEFAULT '', updated_at timestamptz NOT NULL);
CREATE TABLE donations (
    donation_id text PRIMARY KEY, partner_id text NOT NULL, environment text NOT NULL,
    nonprofit_slug text NOT NULL, nonprofit_name text NOT NULL, amount bigint NOT NULL, tip_amount bigint NOT NULL,
    currency text NOT NULL, frequency text NOT NULL, provider text NOT NULL, provider_ref text NOT NULL DEFAULT '',
    payment_ref text NOT NULL DEFAULT '', checkout_url text NOT NULL, return_url text NOT NULL DEFAULT '',
    partner_user_id text NOT NULL, status text NOT NULL, tokens_rewarded bigint NOT NULL DEFAULT 0,
    tokens_reversed bigint NOT NULL DEFAULT 0, action_id text NOT NULL DEFAULT '', reward_status text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '', created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
    completed_at timestamptz);
CREATE INDEX donations_tenant ON donations (partner_id, environment, created_at DESC);
CREATE INDEX donations_payment ON donations (provider, payment_ref) WHERE payment_ref <> '';
`
}

// donationsUses reports whether the donations model reads events of type
// t; Apply and Skips both ask it.
func donationsUses(t string) bool {
	switch t {
	case "nonprofit.listed", "donation.link_created", "donation.completed", "donation.cancelled", "donation.failed", "donation.refunded":
		return true
	}
	return false
}

// Skips implements Skipper: a batch with none of the types Apply reads.
func (Donations) Skips(_ int64, evs []events.Event) bool { return noneUsed(evs, donationsUses) }

// Apply implements Projection.
func (Donations) Apply(ctx context.Context, tx pgx.Tx, e events.Event) error {
	if !donationsUses(e.Type) {
		return nil
	}
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	at := e.RecordedAt
	switch v := pl.(type) {
	case events.NonprofitListed:
		cats := v.Categories
		if cats == nil {
			cats = []string{}
		}
		_, err = tx.Exec(ctx, `INSERT INTO nonprofits (slug, name, ein, description, website_url, logo_url, city, state, country, categories, source, updated_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
			ON CONFLICT (slug) DO UPDATE SET name = excluded.name, ein = excluded.ein, description = excluded.description,
			website_url = excluded.website_url, logo_url = excluded.logo_url, city = excluded.city, state = excluded.state,
			country = excluded.country, categories = excluded.categories, source = excluded.source, updated_at = excluded.updated_at`,
			v.Slug, v.Name, v.EIN, v.Description, v.WebsiteURL, v.LogoURL, v.City, v.State, v.Country, cats, v.Source, at)
	case events.DonationLinkCreated:
		_, err = tx.Exec(ctx, `INSERT INTO donations (donation_id, partner_id, environment, nonprofit_slug, nonprofit_name, amount,
			tip_amount, currency, frequency, provider, provider_ref, checkout_url, return_url, partner_user_id, status, created_at, updated_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,'PENDING',$15,$15) ON CONFLICT (donation_id) DO NOTHING`,
			v.DonationID, e.PartnerID, e.Environment, v.NonprofitSlug, v.NonprofitName, v.Amount, v.TipAmount, v.Currency,
			v.Frequency, v.Provider, v.ProviderRef, v.CheckoutURL, v.ReturnURL, v.PartnerUserID, at)
	case events.DonationCompleted:
		_, err = tx.Exec(ctx, `UPDATE donations SET status = 'COMPLETED', payment_ref = $2, action_id = $3, tokens_rewarded = $4,
			reward_status = $5, reason = $6, completed_at = $7, updated_at = $7 WHERE donation_id = $1`,
			v.DonationID, v.ProviderRef, v.ActionID, v.TokensRewarded, v.RewardStatus, v.RewardCode, at)
	case events.DonationCancelled:
		_, err = tx.Exec(ctx, `UPDATE donations SET status = 'CANCELLED', reason = $2, updated_at = $3 WHERE donation_id = $1`, v.DonationID, v.Reason, at)
	case events.DonationFailed:
		_, err = tx.Exec(ctx, `UPDATE donations SET status = 'FAILED', reason = $2, updated_at = $3 WHERE donation_id = $1`, v.DonationID, v.Reason, at)
	case events.DonationRefunded:
		_, err = tx.Exec(ctx, `UPDATE donations SET status = 'REFUNDED', tokens_reversed = $2, reason = $3, updated_at = $4 WHERE donation_id = $1`,
			v.DonationID, v.TokensReversed, v.Reason, at)
	}
	return err
}
