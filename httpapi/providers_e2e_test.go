package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/internal/testkit/stripemock"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

const stripeWebhookSecret = "whsec_test_0123456789abcdef"

// stripeEvent is a Stripe event as Stripe sends it to a webhook endpoint.
func stripeEvent(typ string, object map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"id": "evt_" + fmt.Sprint(time.Now().UnixNano()), "object": "event", "type": typ,
		"api_version": "2025-07-30.basil", "created": time.Now().Unix(), "livemode": false, "data": map[string]any{"object": object}})
	return b
}

// postStripe sends payload to the provider webhook signed with secret, as
// Stripe signs (t=…,v1=HMAC-SHA256 of "t.payload"); an empty secret sends
// no signature.
func postStripe(t *testing.T, srv *apptest.Server, payload []byte, secret string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/providers/stripe/webhook", bytes.NewReader(payload))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: time.Now()})
		req.Header.Set("Stripe-Signature", signed.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// donationEvents is how many events of type typ the donation's stream holds.
func donationEvents(t *testing.T, srv *apptest.Server, donationID, typ string) int {
	t.Helper()
	var n int
	require.NoError(t, srv.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = $2`,
		ledger.DonationStream(donationID), typ).Scan(&n))
	return n
}

func status(t *testing.T, p *apptest.Partner, id string) statusAnswer {
	t.Helper()
	var st statusAnswer
	require.Equal(t, http.StatusOK, widgetJSON(t, p, http.MethodGet, "/v1/partner/donations/status/"+id, nil, &st))
	return st
}

// Stripe Checkout against stripe-mock (Stripe's own API mock, built from
// its Go module) for the session, and Stripe-signed notifications for
// completion, a repeat, forgeries and a refund.
func TestStripeDonations(t *testing.T) {
	t.Parallel()
	mock := stripemock.Start(t)
	srv := apptest.Start(t, withDevNonprofits, func(c *app.Config) {
		c.Donations.StripeSecretKey, c.Donations.StripeWebhookSecret, c.Donations.StripeAPIURL = "sk_test_123", stripeWebhookSecret, mock
	})
	p := srv.NewPartner(t, "sandbox")
	hooks := newHookReceiver(t)
	subscribe(t, p, hooks)

	var link linkAnswer
	on, pct := true, int64(10)
	_, err := srv.Ledger.ConfigurePartner(context.Background(), events.Metadata{Actor: "test"}, p.PartnerID, ledger.WidgetConfigPatch{TipEnabled: &on, TipDefaultPercent: &pct})
	require.NoError(t, err)
	body := donationBody("stripe", 2500)
	body["tipPercent"] = 10
	require.Equal(t, http.StatusCreated, widgetJSON(t, p, http.MethodPost, "/v1/partner/donations/create-link", body, &link))
	require.Equal(t, "stripe", link.Provider)
	require.Equal(t, int64(250), link.TipAmount)
	u, err := url.Parse(link.DonationLink)
	require.NoError(t, err)
	require.Equal(t, "https", u.Scheme, "the Checkout Session's url: %s", link.DonationLink)
	require.Equal(t, "PENDING", status(t, p, link.PartnerDonationID).Status) // and the read model has it
	var ref string
	require.NoError(t, srv.Pool.QueryRow(context.Background(), `SELECT provider_ref FROM proj_donations.donations WHERE donation_id = $1`, link.PartnerDonationID).Scan(&ref))
	require.True(t, strings.HasPrefix(ref, "cs_"), "the session id is recorded: %q", ref)

	session := map[string]any{"id": ref, "object": "checkout.session", "client_reference_id": link.PartnerDonationID,
		"metadata":       map[string]string{"partnerDonationId": link.PartnerDonationID, "partnerId": p.PartnerID},
		"payment_status": "paid", "payment_intent": "pi_donation_1"}
	completed := stripeEvent("checkout.session.completed", session)

	// Forged: a wrong secret, no signature, a signature over other bytes.
	code, out := postStripe(t, srv, completed, "whsec_not_ours")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "INVALID_SIGNATURE", out["code"])
	code, _ = postStripe(t, srv, completed, "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "PENDING", status(t, p, link.PartnerDonationID).Status)

	// Verified completion, then Stripe's retry of the same event.
	code, out = postStripe(t, srv, completed, stripeWebhookSecret)
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.Equal(t, float64(1), out["recorded"])
	code, out = postStripe(t, srv, completed, stripeWebhookSecret)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, float64(0), out["recorded"])
	st := status(t, p, link.PartnerDonationID)
	require.Equal(t, "COMPLETED", st.Status)
	require.Equal(t, int64(25), st.TokensRewarded, "the tip earns nothing")
	require.Equal(t, 1, donationEvents(t, srv, link.PartnerDonationID, "donation.completed"))
	require.Equal(t, float64(25), hooks.waitFor(t, "donation.completed", link.PartnerDonationID)["tokensRewarded"])

	// Authentic, but about no donation of ours.
	unknown := map[string]any{"id": "cs_x", "object": "checkout.session", "payment_status": "paid", "payment_intent": "pi_x",
		"metadata": map[string]string{"partnerDonationId": "don_00000000000000000000000000000000"}}
	code, out = postStripe(t, srv, stripeEvent("checkout.session.completed", unknown), stripeWebhookSecret)
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, "DONATION_NOT_FOUND", out["code"])

	// A refund names the PaymentIntent only: the reward is reversed, once.
	refund := stripeEvent("charge.refunded", map[string]any{"id": "ch_1", "object": "charge", "payment_intent": "pi_donation_1", "refunded": true})
	code, out = postStripe(t, srv, refund, stripeWebhookSecret)
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.Equal(t, float64(1), out["recorded"])
	code, out = postStripe(t, srv, refund, stripeWebhookSecret)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, float64(0), out["recorded"])
	st = status(t, p, link.PartnerDonationID)
	require.Equal(t, "REFUNDED", st.Status)
	require.Equal(t, int64(25), st.TokensReversed)
	require.Equal(t, float64(25), hooks.waitFor(t, "donation.refunded", link.PartnerDonationID)["tokensReversed"])
	var bal map[string]any
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodGet, "/v1/partner/users/ada@example.com/balance", nil, &bal))
	require.EqualValues(t, 0, bal["balance"], "%v", bal)

	// A monthly donation opens a subscription-mode session.
	monthly := donationBody("stripe", 1500)
	monthly["frequency"] = "monthly"
	require.Equal(t, http.StatusCreated, widgetJSON(t, p, http.MethodPost, "/v1/partner/donations/create-link", monthly, &link))
	require.Equal(t, "stripe", link.Provider)
}

// fakeEveryOrg plays Every.org for the tests: given a donate link, it
// reads the documented link parameters from the fragment as Every.org's
// page does, and, when the donor pays, posts the partner webhook to the
// URL registered for the link's partner_webhook_token.
type fakeEveryOrg struct {
	*httptest.Server
	hooks map[string]string // partner_webhook_token → registered URL
}

func (f *fakeEveryOrg) donate(t *testing.T, link string) (slug string, params url.Values, notice []byte) {
	t.Helper()
	u, err := url.Parse(link)
	require.NoError(t, err)
	require.Equal(t, f.URL, u.Scheme+"://"+u.Host)
	require.True(t, strings.HasPrefix(u.Fragment, "/donate?"), u.Fragment)
	params, err = url.ParseQuery(strings.TrimPrefix(u.EscapedFragment(), "/donate?"))
	require.NoError(t, err)
	slug = strings.Trim(u.Path, "/")
	notice, _ = json.Marshal(map[string]any{
		"chargeId": "ch_every_" + params.Get("partner_donation_id"), "partnerDonationId": params.Get("partner_donation_id"),
		"partnerMetadata": params.Get("partner_metadata"), "firstName": params.Get("first_name"), "lastName": params.Get("last_name"),
		"email": params.Get("email"), "toNonprofit": map[string]string{"slug": slug, "name": "American National Red Cross", "ein": "530196605"},
		"amount": params.Get("amount"), "netAmount": params.Get("amount"), "currency": "USD", "frequency": "One-time",
		"donationDate": time.Now().UTC().Format(time.RFC3339), "paymentMethod": "Card",
	})
	return slug, params, notice
}

func (f *fakeEveryOrg) notify(t *testing.T, token string, body []byte) (int, map[string]any) {
	t.Helper()
	target, ok := f.hooks[token]
	require.True(t, ok, "the link names a webhook token Every.org knows")
	resp, err := http.Post(target, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// Every.org donate links against a local fake of Every.org: the link's
// parameters, a verified completion, a repeat, forgeries (wrong token,
// another partner's donation, another nonprofit), and a refund recorded
// by the operator (Every.org notifies completions only).
func TestEveryOrgDonations(t *testing.T) {
	t.Parallel()
	const secret = "everyorg-secret-0123456789"
	fake := &fakeEveryOrg{Server: httptest.NewServer(http.NotFoundHandler()), hooks: map[string]string{}}
	t.Cleanup(fake.Close)
	srv := apptest.Start(t, withDevNonprofits, func(c *app.Config) {
		c.Donations.EveryOrgDonateURL, c.Donations.EveryOrgWebhookToken = fake.URL, "tok_sirgiving"
		c.Donations.EveryOrgWebhookSecret, c.Donations.EveryOrgEnvironment = secret, "sandbox"
	})
	fake.hooks["tok_sirgiving"] = srv.URL + "/providers/every.org/webhook?token=" + secret
	p := srv.NewPartner(t, "sandbox")
	hooks := newHookReceiver(t)
	subscribe(t, p, hooks)

	var link linkAnswer
	require.Equal(t, http.StatusCreated, widgetJSON(t, p, http.MethodPost, "/v1/partner/donations/create-link", donationBody("every.org", 2500), &link))
	require.Equal(t, "every.org", link.Provider)
	slug, params, notice := fake.donate(t, link.DonationLink)
	require.Equal(t, "american-red-cross", slug)
	require.Equal(t, "25.00", params.Get("amount"))
	require.Equal(t, "ONCE", params.Get("frequency"))
	require.Equal(t, link.PartnerDonationID, params.Get("partner_donation_id"))
	require.Equal(t, "ada@example.com", params.Get("email"))
	// Every.org takes USD only, and asks for its own tip.
	eur := donationBody("every.org", 2500)
	eur["currency"] = "EUR"
	errBody(t, p.Widget(t, http.MethodPost, "/v1/partner/donations/create-link", eur), 400, "VALIDATION_ERROR")

	// Forged: the wrong token.
	forged := fake.hooks["tok_sirgiving"]
	fake.hooks["tok_forged"] = strings.Replace(forged, secret, "guessed-0123456789abcdef", 1)
	code, out := fake.notify(t, "tok_forged", notice)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "INVALID_SIGNATURE", out["code"])
	require.Equal(t, "PENDING", status(t, p, link.PartnerDonationID).Status)

	// Verified completion, then a repeat.
	code, out = fake.notify(t, "tok_sirgiving", notice)
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.Equal(t, float64(1), out["recorded"])
	code, out = fake.notify(t, "tok_sirgiving", notice)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, float64(0), out["recorded"])
	st := status(t, p, link.PartnerDonationID)
	require.Equal(t, "COMPLETED", st.Status)
	require.Equal(t, int64(25), st.TokensRewarded)
	require.Equal(t, 1, donationEvents(t, srv, link.PartnerDonationID, "donation.completed"))
	hooks.waitFor(t, "donation.completed", link.PartnerDonationID)

	// Another partner's donation through the sandbox checkout: an
	// Every.org notice naming it is refused, and changes nothing.
	other := srv.NewPartner(t, "sandbox")
	var theirs linkAnswer
	require.Equal(t, http.StatusCreated, widgetJSON(t, other, http.MethodPost, "/v1/partner/donations/create-link", donationBody("sandbox", 2500), &theirs))
	steal := bytes.Replace(notice, []byte(link.PartnerDonationID), []byte(theirs.PartnerDonationID), -1)
	code, out = fake.notify(t, "tok_sirgiving", steal)
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, "DONATION_NOT_FOUND", out["code"])
	require.Equal(t, "PENDING", status(t, other, theirs.PartnerDonationID).Status)

	// A notice paying another nonprofit than the link's.
	var link2 linkAnswer
	require.Equal(t, http.StatusCreated, widgetJSON(t, p, http.MethodPost, "/v1/partner/donations/create-link", donationBody("every.org", 1000), &link2))
	_, _, notice2 := fake.donate(t, link2.DonationLink)
	code, out = fake.notify(t, "tok_sirgiving", bytes.Replace(notice2, []byte(`"slug":"american-red-cross"`), []byte(`"slug":"feeding-america"`), 1))
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Equal(t, "NOTICE_MISMATCH", out["code"])

	// Refund, as `ledgerctl donations refund` records it.
	sc := eventstore.Tenant{PartnerID: p.PartnerID, Environment: "sandbox"}
	res, err := srv.Ledger.RecordDonationNotice(context.Background(), sc, events.Metadata{Actor: "test"},
		ledger.DonationNotice{DonationID: link.PartnerDonationID, Provider: "every.org", Kind: ledger.NoticeRefunded, Reason: "refunded by Every.org"})
	require.NoError(t, err)
	require.True(t, res.Recorded)
	st = status(t, p, link.PartnerDonationID)
	require.Equal(t, "REFUNDED", st.Status)
	require.Equal(t, int64(25), st.TokensReversed)
	hooks.waitFor(t, "donation.refunded", link.PartnerDonationID)
}

// The upstream directory (Every.org's nonprofit API, here a local fake):
// a slug the directory does not list is looked up once and listed, so
// later lookups and donation links never leave the server; an unknown
// slug is NONPROFIT_NOT_FOUND and asked about once for a while.
func TestUpstreamNonprofitDirectory(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := map[string]int{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slug := strings.TrimPrefix(r.URL.Path, "/v0.2/nonprofit/")
		mu.Lock()
		calls[slug]++
		mu.Unlock()
		if r.URL.Query().Get("apiKey") != "pk_every" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch slug {
		case "givedirectly":
			_, _ = io.WriteString(w, `{"data":{"nonprofit":{"name":"GiveDirectly","primarySlug":"givedirectly","ein":"271661997",
				"description":"Sends money directly to people living in poverty.","websiteUrl":"https://www.givedirectly.org",
				"logoUrl":"https://res.cloudinary.com/everydotorg/image/upload/givedirectly.png","locationAddress":"New York, NY, USA"},
				"nonprofitTags":[{"tagName":"poverty"}]}}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(api.Close)
	srv := apptest.Start(t, func(c *app.Config) { c.Donations.EveryOrgAPIKey, c.Donations.EveryOrgAPIURL = "pk_every", api.URL })
	p := srv.NewPartner(t, "sandbox")

	for range 2 {
		var org map[string]any
		require.Equal(t, http.StatusOK, widgetJSON(t, p, http.MethodGet, "/v1/partner/organizations/givedirectly", nil, &org))
		require.Equal(t, "GiveDirectly", org["name"])
		require.Equal(t, "27-1661997", org["ein"])
		require.Equal(t, map[string]any{"city": "New York", "state": "NY", "country": "US"}, org["location"])
		require.Equal(t, []any{"poverty"}, org["categories"])
	}
	for range 2 {
		errBody(t, p.Widget(t, http.MethodGet, "/v1/partner/organizations/no-such-org", nil), 404, "NONPROFIT_NOT_FOUND")
	}
	var link linkAnswer
	b := donationBody("sandbox", 1000)
	b["nonprofitSlug"] = "givedirectly"
	require.Equal(t, http.StatusCreated, widgetJSON(t, p, http.MethodPost, "/v1/partner/donations/create-link", b, &link))
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"givedirectly": 1, "no-such-org": 1}, calls)
}
