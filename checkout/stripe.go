package checkout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// StripeConfig configures Stripe Checkout.
type StripeConfig struct {
	// SecretKey is the Stripe account's secret key; its mode decides the
	// environment it serves: sk_test_/rk_test_ sandbox, sk_live_/rk_live_
	// production.
	SecretKey string
	// WebhookSecret (whsec_…) verifies the Stripe-Signature of the
	// notifications Stripe sends to /providers/stripe/webhook.
	WebhookSecret string
	// APIURL replaces https://api.stripe.com (stripe-mock in tests).
	APIURL string
	// BaseURL is ledgerd's public URL, for the return page when the
	// partner gave none.
	BaseURL string
	// HTTPClient, if set, is the client API calls go through.
	HTTPClient *http.Client
}

// Metadata keys a Stripe Checkout Session (and its PaymentIntent or
// Subscription) carries, so every notification names its donation.
const (
	StripeMetaDonation = "partnerDonationId"
	StripeMetaPartner  = "partnerId"
)

// Stripe opens Stripe Checkout Sessions and verifies Stripe's webhooks.
type Stripe struct {
	cfg    StripeConfig
	env    string
	client *stripe.Client
}

// NewStripe returns the Stripe provider.
func NewStripe(cfg StripeConfig) (*Stripe, error) {
	env := ""
	switch {
	case strings.HasPrefix(cfg.SecretKey, "sk_test_"), strings.HasPrefix(cfg.SecretKey, "rk_test_"):
		env = ledger.EnvSandbox
	case strings.HasPrefix(cfg.SecretKey, "sk_live_"), strings.HasPrefix(cfg.SecretKey, "rk_live_"):
		env = ledger.EnvProduction
	default:
		return nil, errors.New("STRIPE_SECRET_KEY must be a Stripe secret or restricted key (sk_test_…, sk_live_…)")
	}
	if !strings.HasPrefix(cfg.WebhookSecret, "whsec_") {
		return nil, errors.New("STRIPE_WEBHOOK_SECRET must be the endpoint's signing secret (whsec_…)")
	}
	bc := &stripe.BackendConfig{
		HTTPClient:    cfg.HTTPClient,
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		// The donor is waiting on create-link: fail fast, the partner's
		// page may retry.
		MaxNetworkRetries: stripe.Int64(1),
	}
	if cfg.APIURL != "" {
		bc.URL = stripe.String(cfg.APIURL)
	}
	return &Stripe{cfg: cfg, env: env, client: stripe.NewClient(cfg.SecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))}, nil
}

// Name implements Provider.
func (*Stripe) Name() string { return ledger.ProviderStripe }

// Environment implements Provider.
func (s *Stripe) Environment() string { return s.env }

// Open implements Provider: one Checkout Session, a line for the donation
// and one for the tip, in payment mode (subscription mode, monthly, for a
// monthly donation), with the donation id in the metadata of the session
// and of the PaymentIntent or Subscription it creates.
func (s *Stripe) Open(ctx context.Context, d ledger.DonationDraft) (ledger.CheckoutLink, error) {
	meta := map[string]string{StripeMetaDonation: d.ID, StripeMetaPartner: d.Tenant.PartnerID}
	line := func(name string, cents int64) *stripe.CheckoutSessionCreateLineItemParams {
		pd := &stripe.CheckoutSessionCreateLineItemPriceDataParams{
			Currency: stripe.String(strings.ToLower(d.Currency)), UnitAmount: stripe.Int64(cents),
			ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String(name)},
		}
		if d.Frequency == ledger.FrequencyMonthly {
			pd.Recurring = &stripe.CheckoutSessionCreateLineItemPriceDataRecurringParams{Interval: stripe.String("month")}
		}
		return &stripe.CheckoutSessionCreateLineItemParams{PriceData: pd, Quantity: stripe.Int64(1)}
	}
	p := &stripe.CheckoutSessionCreateParams{
		SuccessURL:        stripe.String(ReturnURL(s.cfg.BaseURL, d, "success")),
		CancelURL:         stripe.String(ReturnURL(s.cfg.BaseURL, d, "cancel")),
		CustomerEmail:     stripe.String(d.DonorEmail),
		ClientReferenceID: stripe.String(d.ID),
		Metadata:          meta,
		LineItems:         []*stripe.CheckoutSessionCreateLineItemParams{line("Donation to "+d.NonprofitName, d.Amount)},
	}
	if d.TipAmount > 0 {
		p.LineItems = append(p.LineItems, line("Tip", d.TipAmount))
	}
	if d.Frequency == ledger.FrequencyMonthly {
		p.Mode = stripe.String(string(stripe.CheckoutSessionModeSubscription))
		p.SubscriptionData = &stripe.CheckoutSessionCreateSubscriptionDataParams{Metadata: meta}
	} else {
		p.Mode = stripe.String(string(stripe.CheckoutSessionModePayment))
		p.PaymentIntentData = &stripe.CheckoutSessionCreatePaymentIntentDataParams{Metadata: meta}
	}
	p.Context = ctx
	p.SetIdempotencyKey("sir-" + d.ID)
	sess, err := s.client.V1CheckoutSessions.Create(ctx, p)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500 {
			return ledger.CheckoutLink{}, &eventstore.Error{Kind: eventstore.KindUnprocessable, Code: "PROVIDER_REFUSED",
				Message: "Stripe refused the checkout: " + se.Msg, Err: err}
		}
		return ledger.CheckoutLink{}, &eventstore.Error{Kind: eventstore.KindUnavailable, Code: "PROVIDER_UNAVAILABLE",
			Message: "Stripe could not be reached; retry shortly", Err: err}
	}
	return ledger.CheckoutLink{Provider: ledger.ProviderStripe, URL: sess.URL, Ref: sess.ID}, nil
}

// stripeObject is the part of an event's data.object the notices read:
// a Checkout Session or a Charge.
type stripeObject struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	Metadata          map[string]string `json:"metadata"`
	ClientReferenceID string            `json:"client_reference_id"`
	PaymentStatus     string            `json:"payment_status"`
	PaymentIntent     json.RawMessage   `json:"payment_intent"`
	Subscription      json.RawMessage   `json:"subscription"`
	FailureMessage    string            `json:"failure_message"`
}

// idOf reads an expandable field: an id string or an object with an id.
func idOf(raw json.RawMessage) string {
	if id, ok := stripe.ParseID(raw); ok {
		return id
	}
	var o struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.ID
}

// Notices implements Provider: the Stripe-Signature header is checked
// against the webhook secret (and the timestamp tolerance) before anything
// is read.
func (s *Stripe) Notices(r *http.Request, body []byte) ([]Notice, error) {
	ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), s.cfg.WebhookSecret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}) // only fields every version has are read
	if err != nil {
		if errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrNoValidSignature) || errors.Is(err, webhook.ErrInvalidHeader) || errors.Is(err, webhook.ErrTooOld) {
			return nil, ErrForged
		}
		return nil, eventstore.Invalid("not a Stripe event", eventstore.FieldIssue{Field: "body", Issue: err.Error()})
	}
	if ev.Data == nil {
		return nil, nil
	}
	var o stripeObject
	if err := json.Unmarshal(ev.Data.Raw, &o); err != nil {
		return nil, eventstore.Invalid("not a Stripe event", eventstore.FieldIssue{Field: "data.object", Issue: "unreadable"})
	}
	donation := o.Metadata[StripeMetaDonation]
	if donation == "" && o.Object == "checkout.session" {
		donation = o.ClientReferenceID
	}
	payment := idOf(o.PaymentIntent)
	if payment == "" {
		payment = idOf(o.Subscription)
	}
	n := Notice{DonationNotice: ledger.DonationNotice{DonationID: donation, Provider: ledger.ProviderStripe, Ref: payment}}
	switch ev.Type {
	case "checkout.session.completed":
		if o.PaymentStatus == "unpaid" {
			return nil, nil // a delayed payment method: async_payment_succeeded follows
		}
		n.Kind = ledger.NoticeCompleted
	case "checkout.session.async_payment_succeeded":
		n.Kind = ledger.NoticeCompleted
	case "checkout.session.async_payment_failed":
		n.Kind, n.Reason = ledger.NoticeFailed, "the payment failed"
	case "checkout.session.expired":
		n.Kind, n.Reason = ledger.NoticeCancelled, "the checkout expired"
	case "charge.refunded":
		n.Kind, n.Reason, n.PaymentRef = ledger.NoticeRefunded, "refunded in Stripe", payment
	default:
		return nil, nil
	}
	if n.DonationID == "" && n.PaymentRef == "" {
		return nil, nil // not one of our checkouts
	}
	if n.Kind != ledger.NoticeRefunded && n.DonationID == "" {
		return nil, fmt.Errorf("stripe %s %s names no donation", ev.Type, o.ID)
	}
	return []Notice{n}, nil
}
