// Package checkout holds the donation checkout providers behind one small
// interface: the sandbox checkout ledgerd serves itself, Stripe Checkout,
// and Every.org donate links. A provider opens a checkout for a donation
// and verifies the notifications it later sends about it; what a verified
// notification means for the ledger is the domain's decision
// (ledger.Service.RecordDonationNotice), never the provider's.
package checkout

import (
	"context"
	"net/http"
	"net/url"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Provider is one checkout provider.
type Provider interface {
	// Name is the provider's name in create-link's `provider`.
	Name() string
	// Environment is the one environment whose donations it takes
	// ("sandbox" for test accounts, "production" for live ones).
	Environment() string
	// Open creates the checkout the donor is sent to.
	Open(ctx context.Context, d ledger.DonationDraft) (ledger.CheckoutLink, error)
	// Notices authenticates a notification the provider sent to
	// /providers/{name}/webhook and says what it reports: nothing for an
	// authentic notification about something that is not a donation of
	// ours, ErrForged when it is not authentic.
	Notices(r *http.Request, body []byte) ([]Notice, error)
}

// Notice is what one verified notification reports about a donation.
type Notice struct {
	ledger.DonationNotice
	// PaymentRef names the payment when the notification does not name
	// the donation (a Stripe refund names its PaymentIntent): the donation
	// is the one whose completion recorded that reference.
	PaymentRef string
}

// ErrForged answers a notification whose signature or token is wrong.
var ErrForged = eventstore.Errorf(eventstore.KindUnauthorized, "INVALID_SIGNATURE", "the notification is not signed by the provider")

// Registry is every configured provider; it implements ledger.Checkout.
// Donations of sandbox keys whose provider is not configured for the
// sandbox environment go to the sandbox checkout, so a partner can try the
// whole flow before any provider account exists; production donations
// need their provider configured.
type Registry struct {
	sandbox   *Sandbox
	providers map[string]Provider
}

// NewRegistry returns the providers, with the sandbox checkout served at
// baseURL (ledgerd's public URL).
func NewRegistry(baseURL string, providers ...Provider) *Registry {
	r := &Registry{sandbox: &Sandbox{BaseURL: baseURL}, providers: map[string]Provider{}}
	for _, p := range providers {
		r.providers[p.Name()] = p
	}
	return r
}

// Provider returns the named provider (the sandbox checkout included).
func (r *Registry) Provider(name string) (Provider, bool) {
	if name == ledger.ProviderSandbox {
		return r.sandbox, true
	}
	p, ok := r.providers[name]
	return p, ok
}

// Sandbox is the registry's sandbox checkout.
func (r *Registry) Sandbox() *Sandbox { return r.sandbox }

// Open implements ledger.Checkout.
func (r *Registry) Open(ctx context.Context, d ledger.DonationDraft) (ledger.CheckoutLink, error) {
	env := d.Tenant.Environment
	if p, ok := r.providers[d.Provider]; ok && p.Environment() == env {
		return p.Open(ctx, d)
	}
	if env == ledger.EnvSandbox {
		return r.sandbox.Open(ctx, d)
	}
	return ledger.CheckoutLink{}, ledger.ErrProviderNotConfigured(d.Provider, env)
}

// ReturnURL is where a provider sends the donor back: the partner's page
// with the donation id and outcome added to its query, or, without one,
// the sandbox checkout's own receipt page.
func ReturnURL(baseURL string, d ledger.DonationDraft, outcome string) string {
	if d.ReturnURL == "" {
		return baseURL + "/checkout/" + d.ID + "?result=" + outcome
	}
	u, err := url.Parse(d.ReturnURL)
	if err != nil {
		return d.ReturnURL
	}
	q := u.Query()
	q.Set("sirDonationId", d.ID)
	q.Set("sirCheckout", outcome)
	u.RawQuery = q.Encode()
	return u.String()
}

// Available lists the providers create-link accepts in env: in the
// sandbox every provider (those not configured there are served by the
// sandbox checkout) and the sandbox checkout itself; in production the
// configured ones.
func (r *Registry) Available(env string) []string {
	if env == ledger.EnvSandbox {
		return []string{ledger.ProviderEveryOrg, ledger.ProviderSandbox, ledger.ProviderStripe}
	}
	out := []string{}
	for _, name := range []string{ledger.ProviderEveryOrg, ledger.ProviderStripe} {
		if p, ok := r.providers[name]; ok && p.Environment() == env {
			out = append(out, name)
		}
	}
	return out
}
