package checkout

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// EveryOrgConfig configures Every.org donate links.
type EveryOrgConfig struct {
	// DonateURL is Every.org's site (https://www.every.org; its staging
	// site for tests of real money flows; a local fake in ours).
	DonateURL string
	// WebhookToken is the partner webhook token Every.org issued: put in
	// each link (partner_webhook_token), it tells Every.org to notify us.
	WebhookToken string
	// WebhookSecret is the secret part of the notification URL registered
	// with Every.org (/providers/every.org/webhook?token=…). Every.org
	// does not sign its partner webhook, so this secret, compared in
	// constant time, is what authenticates a notification.
	WebhookSecret string
	// Environment is the one environment these links serve (default
	// production: Every.org takes real money).
	Environment string
	// BaseURL is ledgerd's public URL, for the return page when the
	// partner gave none.
	BaseURL string
}

// EveryOrg opens Every.org donate links and verifies its partner webhook.
type EveryOrg struct{ cfg EveryOrgConfig }

// NewEveryOrg returns the Every.org provider.
func NewEveryOrg(cfg EveryOrgConfig) (*EveryOrg, error) {
	if cfg.DonateURL == "" {
		cfg.DonateURL = "https://www.every.org"
	}
	if cfg.Environment == "" {
		cfg.Environment = ledger.EnvProduction
	}
	if cfg.Environment != ledger.EnvSandbox && cfg.Environment != ledger.EnvProduction {
		return nil, errors.New("EVERYORG_ENVIRONMENT must be sandbox or production")
	}
	if cfg.WebhookToken == "" || len(cfg.WebhookSecret) < 16 {
		return nil, errors.New("Every.org needs EVERYORG_WEBHOOK_TOKEN and an EVERYORG_WEBHOOK_SECRET of at least 16 characters")
	}
	cfg.DonateURL = strings.TrimRight(cfg.DonateURL, "/")
	return &EveryOrg{cfg: cfg}, nil
}

// Name implements Provider.
func (*EveryOrg) Name() string { return ledger.ProviderEveryOrg }

// Environment implements Provider.
func (e *EveryOrg) Environment() string { return e.cfg.Environment }

// everyOrgMetadata is what the link's partner_metadata carries back to us
// in the webhook.
type everyOrgMetadata struct {
	PartnerDonationID string `json:"partnerDonationId"`
	PartnerID         string `json:"partnerId"`
}

// Open implements Provider: Every.org's documented donate-link parameters,
// with the donation id as partner_donation_id. Every.org takes US dollars
// and adds its own optional tip, so a partner tip is refused.
func (e *EveryOrg) Open(_ context.Context, d ledger.DonationDraft) (ledger.CheckoutLink, error) {
	if d.Currency != "USD" {
		return ledger.CheckoutLink{}, eventstore.Invalid("every.org takes USD only", eventstore.FieldIssue{Field: "currency", Issue: "every.org takes USD only"})
	}
	if d.TipAmount > 0 {
		return ledger.CheckoutLink{}, eventstore.Invalid("every.org takes no partner tip", eventstore.FieldIssue{Field: "tipAmount", Issue: "every.org asks the donor for its own tip; send no tip"})
	}
	meta, _ := json.Marshal(everyOrgMetadata{PartnerDonationID: d.ID, PartnerID: d.Tenant.PartnerID})
	freq := "ONCE"
	if d.Frequency == ledger.FrequencyMonthly {
		freq = "MONTHLY"
	}
	q := url.Values{}
	q.Set("amount", decimal.New(d.Amount, -2).StringFixed(2))
	q.Set("min_value", decimal.New(d.Amount, -2).StringFixed(2))
	q.Set("frequency", freq)
	q.Set("email", d.DonorEmail)
	if d.FirstName != "" {
		q.Set("first_name", d.FirstName)
	}
	if d.LastName != "" {
		q.Set("last_name", d.LastName)
	}
	q.Set("partner_donation_id", d.ID)
	q.Set("partner_webhook_token", e.cfg.WebhookToken)
	q.Set("partner_metadata", base64.StdEncoding.EncodeToString(meta))
	q.Set("success_url", ReturnURL(e.cfg.BaseURL, d, "success"))
	q.Set("exit_url", ReturnURL(e.cfg.BaseURL, d, "cancel"))
	u := e.cfg.DonateURL + "/" + url.PathEscape(d.NonprofitSlug) + "#/donate?" + q.Encode()
	return ledger.CheckoutLink{Provider: ledger.ProviderEveryOrg, URL: u}, nil
}

// EveryOrgNotification is the body of Every.org's partner webhook, as far
// as it is read: one completed donation.
type EveryOrgNotification struct {
	ChargeID          string `json:"chargeId"`
	PartnerDonationID string `json:"partnerDonationId"`
	PartnerMetadata   any    `json:"partnerMetadata,omitempty"`
	ToNonprofit       struct {
		Slug string `json:"slug"`
		EIN  string `json:"ein,omitempty"`
		Name string `json:"name,omitempty"`
	} `json:"toNonprofit"`
	Amount       string `json:"amount"`
	NetAmount    string `json:"netAmount,omitempty"`
	Currency     string `json:"currency"`
	Frequency    string `json:"frequency,omitempty"`
	DonationDate string `json:"donationDate,omitempty"`
	Email        string `json:"email,omitempty"`
	FirstName    string `json:"firstName,omitempty"`
	LastName     string `json:"lastName,omitempty"`
}

// Notices implements Provider: the URL's token must be the configured
// secret, and the notification must name a donation (partnerDonationId),
// the nonprofit paid and a positive USD amount. Every.org notifies
// completed donations only.
func (e *EveryOrg) Notices(r *http.Request, body []byte) ([]Notice, error) {
	token := r.URL.Query().Get("token")
	if subtle.ConstantTimeCompare([]byte(token), []byte(e.cfg.WebhookSecret)) != 1 {
		return nil, ErrForged
	}
	var n EveryOrgNotification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, eventstore.Invalid("not an Every.org notification", eventstore.FieldIssue{Field: "body", Issue: "not JSON"})
	}
	if n.PartnerDonationID == "" {
		return nil, nil // a donation made without our link
	}
	amount, err := decimal.NewFromString(n.Amount)
	if err != nil || !amount.IsPositive() || !strings.EqualFold(n.Currency, "USD") || n.ToNonprofit.Slug == "" {
		return nil, eventstore.Invalid("incomplete Every.org notification", eventstore.FieldIssue{Field: "body", Issue: "needs amount, currency USD and toNonprofit.slug"})
	}
	return []Notice{{DonationNotice: ledger.DonationNotice{DonationID: n.PartnerDonationID, Provider: ledger.ProviderEveryOrg,
		Kind: ledger.NoticeCompleted, Ref: n.ChargeID, NonprofitSlug: n.ToNonprofit.Slug}}}, nil
}
