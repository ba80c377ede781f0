package app

import (
	"context"
	"fmt"

	"github.com/sirgiving/ledger/checkout"
	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/nonprofits"
)

// checkoutProviders builds the providers the configuration enables: Stripe
// when STRIPE_SECRET_KEY is set, Every.org when EVERYORG_WEBHOOK_TOKEN is;
// the sandbox checkout always.
func checkoutProviders(cfg Config) (*checkout.Registry, error) {
	d := cfg.Donations
	var ps []checkout.Provider
	if d.StripeSecretKey != "" {
		s, err := checkout.NewStripe(checkout.StripeConfig{SecretKey: d.StripeSecretKey, WebhookSecret: d.StripeWebhookSecret,
			APIURL: d.StripeAPIURL, BaseURL: cfg.PublicURL})
		if err != nil {
			return nil, err
		}
		ps = append(ps, s)
	}
	if d.EveryOrgWebhookToken != "" {
		e, err := checkout.NewEveryOrg(checkout.EveryOrgConfig{DonateURL: d.EveryOrgDonateURL, WebhookToken: d.EveryOrgWebhookToken,
			WebhookSecret: d.EveryOrgWebhookSecret, Environment: d.EveryOrgEnvironment, BaseURL: cfg.PublicURL})
		if err != nil {
			return nil, err
		}
		ps = append(ps, e)
	}
	return checkout.NewRegistry(cfg.PublicURL, ps...), nil
}

// ensureDevNonprofits lists the development set of nonprofits; listing it
// again records nothing, so every start may do it.
func (a *App) ensureDevNonprofits(ctx context.Context) error {
	n, _, err := a.Ledger.ListNonprofits(ctx, events.Metadata{Actor: "system:dev-nonprofits"}, "development set", nonprofits.DevSet())
	if err != nil {
		return fmt.Errorf("listing the development nonprofits: %w", err)
	}
	if n > 0 {
		a.Log.Info("listed the development set of nonprofits", "changed", n)
	}
	return nil
}
