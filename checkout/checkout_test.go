package checkout_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/sirgiving/ledger/checkout"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func draft(env, provider string) ledger.DonationDraft {
	return ledger.DonationDraft{ID: "don_0123456789abcdef0123456789abcdef", Tenant: eventstore.Tenant{PartnerID: "ptr_1", Environment: env},
		NonprofitSlug: "american-red-cross", NonprofitName: "American National Red Cross", Amount: 2500, Currency: "USD",
		Frequency: "once", Provider: provider, DonorEmail: "ada@example.com", ReturnURL: "https://partner.example/give?x=1"}
}

func code(err error) string { return eventstore.AsError(err).Code }

// Sandbox keys get the sandbox checkout for any provider not configured
// for the sandbox; production gets only what is configured for it.
func TestRegistryChoosesTheProvider(t *testing.T) {
	t.Parallel()
	every, err := checkout.NewEveryOrg(checkout.EveryOrgConfig{WebhookToken: "tok", WebhookSecret: "0123456789abcdef0", Environment: "production"})
	require.NoError(t, err)
	r := checkout.NewRegistry("https://api.example", every)
	l, err := r.Open(context.Background(), draft("sandbox", "every.org"))
	require.NoError(t, err)
	require.Equal(t, ledger.CheckoutLink{Provider: "sandbox", URL: "https://api.example/checkout/don_0123456789abcdef0123456789abcdef"}, l)
	l, err = r.Open(context.Background(), draft("production", "every.org"))
	require.NoError(t, err)
	require.Equal(t, "every.org", l.Provider)
	_, err = r.Open(context.Background(), draft("production", "stripe"))
	require.Equal(t, "PROVIDER_NOT_CONFIGURED", code(err))
	_, err = r.Open(context.Background(), draft("production", "sandbox"))
	require.Equal(t, "PROVIDER_NOT_CONFIGURED", code(err))
	require.Equal(t, []string{"every.org"}, r.Available("production"))
	require.Equal(t, []string{"every.org", "sandbox", "stripe"}, r.Available("sandbox"))
}

func TestEveryOrgLinkAndNotices(t *testing.T) {
	t.Parallel()
	e, err := checkout.NewEveryOrg(checkout.EveryOrgConfig{DonateURL: "https://staging.every.org/", WebhookToken: "tok", WebhookSecret: "0123456789abcdef0", Environment: "sandbox"})
	require.NoError(t, err)
	d := draft("sandbox", "every.org")
	d.Frequency = "monthly"
	l, err := e.Open(context.Background(), d)
	require.NoError(t, err)
	u, err := url.Parse(l.URL)
	require.NoError(t, err)
	require.Equal(t, "staging.every.org", u.Host)
	require.Equal(t, "/american-red-cross", u.Path)
	q, err := url.ParseQuery(strings.TrimPrefix(u.EscapedFragment(), "/donate?"))
	require.NoError(t, err)
	require.Equal(t, "25.00", q.Get("amount"))
	require.Equal(t, "MONTHLY", q.Get("frequency"))
	require.Equal(t, d.ID, q.Get("partner_donation_id"))
	require.Equal(t, "tok", q.Get("partner_webhook_token"))
	require.Equal(t, "https://partner.example/give?sirCheckout=success&sirDonationId="+d.ID+"&x=1", q.Get("success_url"))
	d.TipAmount = 100
	_, err = e.Open(context.Background(), d)
	require.Equal(t, "VALIDATION_ERROR", code(err))

	body := []byte(`{"chargeId":"ch_1","partnerDonationId":"` + d.ID + `","toNonprofit":{"slug":"american-red-cross"},"amount":"25.00","currency":"USD"}`)
	req := httptest.NewRequest(http.MethodPost, "/providers/every.org/webhook?token=wrong-0123456789", nil)
	_, err = e.Notices(req, body)
	require.ErrorIs(t, err, checkout.ErrForged)
	req = httptest.NewRequest(http.MethodPost, "/providers/every.org/webhook?token=0123456789abcdef0", nil)
	ns, err := e.Notices(req, body)
	require.NoError(t, err)
	require.Equal(t, []checkout.Notice{{DonationNotice: ledger.DonationNotice{DonationID: d.ID, Provider: "every.org", Kind: "completed",
		Ref: "ch_1", NonprofitSlug: "american-red-cross"}}}, ns)
}

func TestStripeKeysAndSignatures(t *testing.T) {
	t.Parallel()
	_, err := checkout.NewStripe(checkout.StripeConfig{SecretKey: "pk_test_1", WebhookSecret: "whsec_1"})
	require.Error(t, err)
	live, err := checkout.NewStripe(checkout.StripeConfig{SecretKey: "sk_live_1", WebhookSecret: "whsec_1"})
	require.NoError(t, err)
	require.Equal(t, "production", live.Environment())
	s, err := checkout.NewStripe(checkout.StripeConfig{SecretKey: "sk_test_1", WebhookSecret: "whsec_1"})
	require.NoError(t, err)
	require.Equal(t, "sandbox", s.Environment())

	payload := []byte(`{"id":"evt_1","object":"event","type":"checkout.session.expired","api_version":"2020-08-27",
		"data":{"object":{"id":"cs_1","object":"checkout.session","client_reference_id":"don_1"}}}`)
	sign := func(secret string, at time.Time) *http.Request {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at})
		req := httptest.NewRequest(http.MethodPost, "/providers/stripe/webhook", nil)
		req.Header.Set("Stripe-Signature", sp.Header)
		return req
	}
	_, err = s.Notices(sign("whsec_2", time.Now()), payload)
	require.ErrorIs(t, err, checkout.ErrForged)
	_, err = s.Notices(sign("whsec_1", time.Now().Add(-time.Hour)), payload) // a replay outside the tolerance
	require.ErrorIs(t, err, checkout.ErrForged)
	ns, err := s.Notices(sign("whsec_1", time.Now()), payload)
	require.NoError(t, err)
	require.Equal(t, []checkout.Notice{{DonationNotice: ledger.DonationNotice{DonationID: "don_1", Provider: "stripe", Kind: "cancelled",
		Reason: "the checkout expired"}}}, ns)
}
