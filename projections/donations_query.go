package projections

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// NonprofitRecord is a directory entry.
type NonprofitRecord struct {
	Slug        string
	Name        string
	EIN         string
	Description string
	WebsiteURL  string
	LogoURL     string
	City        string
	State       string
	Country     string
	Categories  []string
	UpdatedAt   time.Time
}

// NonprofitBySlug returns a directory entry; nil when unknown.
func NonprofitBySlug(ctx context.Context, q eventstore.Querier, slug string) (*NonprofitRecord, error) {
	var n NonprofitRecord
	err := q.QueryRow(ctx, `SELECT slug, name, ein, description, website_url, logo_url, city, state, country, categories, updated_at
		FROM proj_donations.nonprofits WHERE slug = $1`, slug).
		Scan(&n.Slug, &n.Name, &n.EIN, &n.Description, &n.WebsiteURL, &n.LogoURL, &n.City, &n.State, &n.Country, &n.Categories, &n.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	n.UpdatedAt = n.UpdatedAt.UTC()
	return &n, nil
}

// CountNonprofits is the size of the directory.
func CountNonprofits(ctx context.Context, q eventstore.Querier) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT count(*) FROM proj_donations.nonprofits`).Scan(&n)
	return n, err
}

// DonationRecord is a donation as the read model holds it.
type DonationRecord struct {
	DonationID     string
	Tenant         eventstore.Tenant
	NonprofitSlug  string
	NonprofitName  string
	Amount         int64
	TipAmount      int64
	Currency       string
	Frequency      string
	Provider       string
	ProviderRef    string
	PaymentRef     string
	CheckoutURL    string
	ReturnURL      string
	PartnerUserID  string
	Status         string
	TokensRewarded int64
	TokensReversed int64
	ActionID       string
	RewardStatus   string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	CompletedAt    *time.Time
}

const selectDonation = `SELECT donation_id, partner_id, environment, nonprofit_slug, nonprofit_name, amount, tip_amount, currency,
	frequency, provider, provider_ref, payment_ref, checkout_url, return_url, partner_user_id, status, tokens_rewarded,
	tokens_reversed, action_id, reward_status, created_at, updated_at, completed_at FROM proj_donations.donations `

func scanDonation(row pgx.Row) (*DonationRecord, error) {
	var d DonationRecord
	err := row.Scan(&d.DonationID, &d.Tenant.PartnerID, &d.Tenant.Environment, &d.NonprofitSlug, &d.NonprofitName, &d.Amount,
		&d.TipAmount, &d.Currency, &d.Frequency, &d.Provider, &d.ProviderRef, &d.PaymentRef, &d.CheckoutURL, &d.ReturnURL,
		&d.PartnerUserID, &d.Status, &d.TokensRewarded, &d.TokensReversed, &d.ActionID, &d.RewardStatus, &d.CreatedAt,
		&d.UpdatedAt, &d.CompletedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	if d.CompletedAt != nil {
		c := d.CompletedAt.UTC()
		d.CompletedAt = &c
	}
	return &d, nil
}

// DonationByID returns one of the tenant's donations; nil when unknown or
// another tenant's.
func DonationByID(ctx context.Context, q eventstore.Querier, t eventstore.Tenant, donationID string) (*DonationRecord, error) {
	return scanDonation(q.QueryRow(ctx, selectDonation+`WHERE donation_id = $1 AND partner_id = $2 AND environment = $3`,
		donationID, t.PartnerID, t.Environment))
}

// DonationForCheckout returns a donation whoever owns it, for the hosted
// sandbox checkout page, which is reached by the donation id alone; nil
// when unknown.
func DonationForCheckout(ctx context.Context, q eventstore.Querier, donationID string) (*DonationRecord, error) {
	return scanDonation(q.QueryRow(ctx, selectDonation+`WHERE donation_id = $1`, donationID))
}

// DonationByPaymentRef finds the donation whose completion carried the
// provider's payment reference (a Stripe PaymentIntent id); nil when none.
func DonationByPaymentRef(ctx context.Context, q eventstore.Querier, provider, ref string) (*DonationRecord, error) {
	if ref == "" {
		return nil, nil
	}
	return scanDonation(q.QueryRow(ctx, selectDonation+`WHERE provider = $1 AND payment_ref = $2`, provider, ref))
}

// StreamTenant returns the partner and environment a stream's events
// belong to, read from the event store itself (never lagging): how a
// provider's notification, which names only a donation, finds its tenant.
// ok is false when the stream has no events.
func StreamTenant(ctx context.Context, q eventstore.Querier, streamID string) (eventstore.Tenant, bool, error) {
	var t eventstore.Tenant
	err := q.QueryRow(ctx, `SELECT partner_id, environment FROM events WHERE stream_id = $1 AND stream_version = 1`, streamID).
		Scan(&t.PartnerID, &t.Environment)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, false, nil
	}
	return t, err == nil, err
}
