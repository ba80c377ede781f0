package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

// withDevNonprofits lists the development set of nonprofits at start.
func withDevNonprofits(c *app.Config) { c.Donations.DevNonprofits = true }

// hookReceiver collects the webhook envelopes a partner receives.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var b map[string]any
		if json.Unmarshal(raw, &b) == nil {
			h.mu.Lock()
			h.bodies = append(h.bodies, b)
			h.mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.Close)
	return h
}

// waitFor returns the data of the first webhook of type typ about the
// donation, waiting (with a deadline) for it to arrive.
func (h *hookReceiver) waitFor(t *testing.T, typ, donationID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		for _, b := range h.bodies {
			if d, _ := b["data"].(map[string]any); b["type"] == typ && d["partnerDonationId"] == donationID {
				h.mu.Unlock()
				return d
			}
		}
		h.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	require.FailNow(t, "no webhook arrived", "%s for %s", typ, donationID)
	return nil
}

// count is how many webhooks of type typ arrived about the donation.
func (h *hookReceiver) count(typ, donationID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, b := range h.bodies {
		if d, _ := b["data"].(map[string]any); b["type"] == typ && d["partnerDonationId"] == donationID {
			n++
		}
	}
	return n
}

// subscribe registers the receiver for the donation webhooks.
func subscribe(t *testing.T, p *apptest.Partner, h *hookReceiver) {
	t.Helper()
	code := p.JSON(t, http.MethodPost, "/v1/partner/webhooks", map[string]any{"url": h.URL + "/hook",
		"eventTypes": []string{"donation.completed", "donation.failed", "donation.refunded"}}, nil)
	require.Equal(t, http.StatusCreated, code)
}

func widgetJSON(t *testing.T, p *apptest.Partner, method, path string, body any, out any) int {
	t.Helper()
	resp := p.Widget(t, method, path, body)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out), "%s", raw)
	}
	return resp.StatusCode
}

type linkAnswer struct {
	PartnerDonationID string    `json:"partnerDonationId"`
	DonationLink      string    `json:"donationLink"`
	Provider          string    `json:"provider"`
	Status            string    `json:"status"`
	Amount            int64     `json:"amount"`
	TipAmount         int64     `json:"tipAmount"`
	CreatedAt         time.Time `json:"createdAt"`
}

type statusAnswer struct {
	PartnerDonationID string    `json:"partnerDonationId"`
	Status            string    `json:"status"`
	Amount            int64     `json:"amount"`
	Currency          string    `json:"currency"`
	TokensRewarded    int64     `json:"tokensRewarded"`
	TokensReversed    int64     `json:"tokensReversed"`
	ActionID          *string   `json:"actionId"`
	CreatedAt         time.Time `json:"createdAt"`
	Nonprofit         struct {
		Slug string `json:"slug"`
		Name string `json:"name"`
	} `json:"nonprofit"`
}

func donationBody(provider string, amount any) map[string]any {
	return map[string]any{"nonprofitSlug": "american-red-cross", "amount": amount, "currency": "USD", "frequency": "once",
		"provider": provider, "donorEmail": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"}
}

func noRedirects() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// The sandbox flow over plain HTTP: config, organization, create-link,
// the hosted checkout's Pay, status and webhook, each refusal clear.
func TestSandboxDonationFlow(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, withDevNonprofits)
	p := srv.NewPartner(t, "sandbox")
	hooks := newHookReceiver(t)
	subscribe(t, p, hooks)

	var cfg map[string]any
	require.Equal(t, http.StatusOK, widgetJSON(t, p, http.MethodGet, "/v1/partner/config", nil, &cfg))
	require.Equal(t, p.PartnerID, cfg["id"])
	require.Equal(t, []any{"ACTIONS", "DONATIONS"}, cfg["enabledFeatures"])
	require.Equal(t, true, cfg["isActive"])
	require.Equal(t, hooks.URL+"/hook", cfg["webhookUrl"])
	require.Equal(t, map[string]any{"enabled": false, "defaultPercent": float64(0)}, cfg["tipConfig"])
	require.Positive(t, cfg["rateLimit"])

	var org map[string]any
	require.Equal(t, http.StatusOK, widgetJSON(t, p, http.MethodGet, "/v1/partner/organizations/american-red-cross", nil, &org))
	require.Equal(t, "American National Red Cross", org["name"])
	require.Equal(t, "53-0196605", org["ein"])
	errBody(t, p.Widget(t, http.MethodGet, "/v1/partner/organizations/no-such-org", nil), 404, "NONPROFIT_NOT_FOUND")

	// A secret key never belongs in a browser.
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/partner/config", nil)
	require.NoError(t, err)
	req.Header.Set("X-Partner-Key", p.SecretKey)
	errBody(t, send(t, req), 403, "PUBLISHABLE_KEY_REQUIRED")

	// Bad input: each a 4xx naming the field, nothing recorded.
	for _, bad := range []struct {
		mut  func(map[string]any)
		code int
		err  string
	}{
		{func(b map[string]any) { b["amount"] = 99 }, 400, "VALIDATION_ERROR"},
		{func(b map[string]any) { b["amount"] = 25.5 }, 400, "VALIDATION_ERROR"},
		{func(b map[string]any) { b["currency"] = "XYZ" }, 400, "VALIDATION_ERROR"},
		{func(b map[string]any) { b["frequency"] = "weekly" }, 400, "VALIDATION_ERROR"},
		{func(b map[string]any) { b["provider"] = "paypal" }, 400, "VALIDATION_ERROR"},
		{func(b map[string]any) { b["donorEmail"] = "nope" }, 400, "VALIDATION_ERROR"},
		{func(b map[string]any) { b["nonprofitSlug"] = "no-such-org" }, 404, "NONPROFIT_NOT_FOUND"},
		{func(b map[string]any) { b["tipAmount"] = 100 }, 422, "TIPS_DISABLED"},
	} {
		b := donationBody("stripe", 2500)
		bad.mut(b)
		errBody(t, p.Widget(t, http.MethodPost, "/v1/partner/donations/create-link", b), bad.code, bad.err)
	}

	// Stripe is not configured on this server: sandbox keys get the
	// sandbox checkout in its place.
	var link linkAnswer
	require.Equal(t, http.StatusCreated, widgetJSON(t, p, http.MethodPost, "/v1/partner/donations/create-link", donationBody("stripe", 2500), &link))
	require.Equal(t, "sandbox", link.Provider)
	require.Equal(t, "PENDING", link.Status)
	require.Equal(t, srv.URL+"/checkout/"+link.PartnerDonationID, link.DonationLink)

	page, err := http.Get(link.DonationLink)
	require.NoError(t, err)
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	require.Equal(t, http.StatusOK, page.StatusCode)
	require.Contains(t, string(html), "American National Red Cross")
	require.Contains(t, string(html), "25.00 USD")
	require.Contains(t, page.Header.Get("Content-Security-Policy"), "default-src 'none'")

	var st statusAnswer
	require.Equal(t, http.StatusOK, widgetJSON(t, p, http.MethodGet, "/v1/partner/donations/status/"+link.PartnerDonationID, nil, &st))
	require.Equal(t, "PENDING", st.Status)
	require.Nil(t, st.ActionID)
	require.True(t, link.CreatedAt.Equal(st.CreatedAt), "%s vs %s", link.CreatedAt, st.CreatedAt)

	pay := func() *http.Response {
		resp, err := noRedirects().PostForm(link.DonationLink+"/pay", url.Values{"card": {"4242 4242 4242 4242"}})
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	resp := pay()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/checkout/"+link.PartnerDonationID+"?result=success", resp.Header.Get("Location"))

	require.Equal(t, http.StatusOK, widgetJSON(t, p, http.MethodGet, "/v1/partner/donations/status/"+link.PartnerDonationID, nil, &st))
	require.Equal(t, "COMPLETED", st.Status)
	require.Equal(t, int64(25), st.TokensRewarded)
	require.NotNil(t, st.ActionID)
	require.Equal(t, "american-red-cross", st.Nonprofit.Slug)

	hook := hooks.waitFor(t, "donation.completed", link.PartnerDonationID)
	require.Equal(t, float64(25), hook["tokensRewarded"])
	require.Equal(t, *st.ActionID, hook["actionId"])

	// Paying again records nothing more.
	require.Equal(t, http.StatusSeeOther, pay().StatusCode)
	require.Equal(t, http.StatusOK, widgetJSON(t, p, http.MethodGet, "/v1/partner/donations/status/"+link.PartnerDonationID, nil, &st))
	require.Equal(t, int64(25), st.TokensRewarded)
	var bal map[string]any
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodGet, "/v1/partner/users/ada@example.com/balance", nil, &bal))
	require.EqualValues(t, 25, bal["balance"], "%v", bal)

	// Sealed: another partner, and this partner's production, see nothing.
	other := srv.NewPartner(t, "sandbox")
	errBody(t, other.Widget(t, http.MethodGet, "/v1/partner/donations/status/"+link.PartnerDonationID, nil), 404, "DONATION_NOT_FOUND")
	prod := p.InEnvironment(t, "production")
	errBody(t, prod.Widget(t, http.MethodGet, "/v1/partner/donations/status/"+link.PartnerDonationID, nil), 404, "DONATION_NOT_FOUND")
	// Production has no sandbox checkout and no provider configured here.
	errBody(t, prod.Widget(t, http.MethodPost, "/v1/partner/donations/create-link", donationBody("stripe", 2500)), 422, "PROVIDER_NOT_CONFIGURED")

	// A declined test card fails the donation, and says so.
	var link2 linkAnswer
	require.Equal(t, http.StatusCreated, widgetJSON(t, p, http.MethodPost, "/v1/partner/donations/create-link", donationBody("sandbox", 1000), &link2))
	resp, err = noRedirects().PostForm(link2.DonationLink+"/pay", url.Values{"card": {"4000000000000002"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.True(t, strings.HasSuffix(resp.Header.Get("Location"), "result=failed"), resp.Header.Get("Location"))
	require.Equal(t, "FAILED", hooks.waitFor(t, "donation.failed", link2.PartnerDonationID)["status"])
	require.Equal(t, 1, hooks.count("donation.completed", link.PartnerDonationID))
}

// Every widget answer, successes and errors, matches the OpenAPI document.
func TestWidgetResponsesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, withDevNonprofits)
	p := srv.NewPartner(t, "sandbox")
	check(t, "GET", "/v1/partner/config", p.Widget(t, "GET", "/v1/partner/config", nil))
	for _, path := range []string{"/v1/partner/organizations/american-red-cross", "/v1/partner/organizations/nope"} {
		check(t, "GET", path, p.Widget(t, "GET", path, nil))
	}
	const create = "/v1/partner/donations/create-link"
	var link linkAnswer
	resp := p.Widget(t, "POST", create, donationBody("stripe", 2500))
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.NoError(t, json.Unmarshal(check(t, "POST", create, resp), &link))
	for _, b := range []map[string]any{donationBody("stripe", 12.5), donationBody("stripe", 50)} {
		check(t, "POST", create, p.Widget(t, "POST", create, b))
	}
	b := donationBody("stripe", 2500)
	b["nonprofitSlug"] = "nope"
	check(t, "POST", create, p.Widget(t, "POST", create, b))
	b = donationBody("stripe", 2500)
	b["tipAmount"] = 5
	check(t, "POST", create, p.Widget(t, "POST", create, b))
	check(t, "GET", "/v1/partner/donations/status/"+link.PartnerDonationID, p.Widget(t, "GET", "/v1/partner/donations/status/"+link.PartnerDonationID, nil))
	resp, err := noRedirects().PostForm(link.DonationLink+"/pay", url.Values{"card": {"4242424242424242"}})
	require.NoError(t, err)
	resp.Body.Close()
	check(t, "GET", "/v1/partner/donations/status/"+link.PartnerDonationID, p.Widget(t, "GET", "/v1/partner/donations/status/"+link.PartnerDonationID, nil))
	check(t, "GET", "/v1/partner/donations/status/don_00000000000000000000000000000000", p.Widget(t, "GET", "/v1/partner/donations/status/don_00000000000000000000000000000000", nil))
}
