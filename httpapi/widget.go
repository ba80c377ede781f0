// The widget endpoints (/v1/partner/config, /organizations/:slug,
// /donations/create-link, /donations/status/:partnerDonationId): called
// from a partner's web page with its publishable key only.

package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// tipConfigBody is the tip part of the widget configuration.
type tipConfigBody struct {
	Enabled        bool  `json:"enabled"`
	DefaultPercent int64 `json:"defaultPercent"`
}

// widgetConfigBody answers GET /v1/partner/config.
type widgetConfigBody struct {
	ID              string        `json:"id"`
	Name            string        `json:"name"`
	Slug            string        `json:"slug"`
	Environment     string        `json:"environment"`
	EnabledFeatures []string      `json:"enabledFeatures"`
	RateLimit       int           `json:"rateLimit"`
	IsActive        bool          `json:"isActive"`
	WebhookURL      *string       `json:"webhookUrl"`
	TipConfig       tipConfigBody `json:"tipConfig"`
	TokenSymbol     string        `json:"tokenSymbol"`
	Donations       donationRules `json:"donations"`
}

// donationRules tells the widget what create-link accepts.
type donationRules struct {
	MinAmount   int64    `json:"minAmount"`
	MaxAmount   int64    `json:"maxAmount"`
	Currencies  []string `json:"currencies"`
	Frequencies []string `json:"frequencies"`
	Providers   []string `json:"providers"`
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// slugOf is a URL-safe form of a partner's name.
func slugOf(name string) string {
	return strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(name), "-"), "-")
}

func (a *api) widgetConfig(w http.ResponseWriter, r *http.Request) {
	t, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The configuration is partner-wide (its events carry no environment).
	if err := projections.WaitTenant(r.Context(), a.DB, eventstore.Tenant{PartnerID: t.PartnerID}, a.ReadWait, projections.AccountsName); err != nil {
		writeError(w, r, err)
		return
	}
	p, err := projections.PartnerByID(r.Context(), a.DB, t.PartnerID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if p == nil {
		writeError(w, r, eventstore.Errorf(eventstore.KindNotFound, "PARTNER_NOT_FOUND", "no such partner"))
		return
	}
	cfg, err := projections.PartnerConfig(r.Context(), a.DB, t.PartnerID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !cfg.Configured {
		cfg.EnabledFeatures = ledger.DefaultFeatures
	}
	if err := projections.WaitTenant(r.Context(), a.DB, t, a.ReadWait, projections.WebhooksName); err != nil {
		writeError(w, r, err)
		return
	}
	hooks, _, err := projections.ListWebhooks(r.Context(), a.DB, t, 0, 100)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var hook *string
	for _, h := range hooks {
		if h.IsActive {
			hook = &h.URL
			break
		}
	}
	limit, _ := strconv.Atoi(w.Header().Get("X-RateLimit-Limit")) // set by authentication for this partner's tier
	var providers []string
	if a.Checkout != nil {
		providers = a.Checkout.Available(t.Environment)
	}
	writeJSON(w, http.StatusOK, widgetConfigBody{
		ID: p.ID, Name: p.Name, Slug: slugOf(p.Name), Environment: t.Environment, EnabledFeatures: cfg.EnabledFeatures,
		RateLimit: limit, IsActive: p.Status != ledger.PartnerSuspended, WebhookURL: hook,
		TipConfig:   tipConfigBody{Enabled: cfg.TipEnabled, DefaultPercent: cfg.TipDefaultPercent},
		TokenSymbol: "SIR",
		Donations: donationRules{MinAmount: ledger.MinDonationAmount, MaxAmount: a.maxDonation(),
			Currencies: []string{"AUD", "CAD", "EUR", "GBP", "USD"}, Frequencies: []string{ledger.FrequencyOnce, ledger.FrequencyMonthly},
			Providers: providers},
	})
}

func (a *api) maxDonation() int64 {
	if a.MaxDonationAmount > 0 {
		return a.MaxDonationAmount
	}
	return ledger.DefaultMaxDonationAmount
}

// locationBody is where a nonprofit is based.
type locationBody struct {
	City    string `json:"city,omitempty"`
	State   string `json:"state,omitempty"`
	Country string `json:"country,omitempty"`
}

// organizationBody answers GET /v1/partner/organizations/:slug.
type organizationBody struct {
	Slug        string       `json:"slug"`
	Name        string       `json:"name"`
	EIN         *string      `json:"ein"`
	Description *string      `json:"description"`
	WebsiteURL  *string      `json:"websiteUrl"`
	LogoURL     *string      `json:"logoUrl"`
	Location    locationBody `json:"location"`
	Categories  []string     `json:"categories"`
}

func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

var errNonprofitNotFound = func(slug string) error {
	return eventstore.Errorf(eventstore.KindNotFound, "NONPROFIT_NOT_FOUND", "no nonprofit %q in the directory", slug)
}

// NonprofitDirectory is an upstream directory of nonprofits (Every.org's
// public API).
type NonprofitDirectory interface {
	// Lookup returns the nonprofit, nil when the directory does not know
	// it; an error is an outage.
	Lookup(ctx context.Context, slug string) (*ledger.NonprofitInput, error)
}

// nonprofit returns the directory entry of slug. A slug not listed is
// looked up upstream, when a directory is configured, and listed (the
// ledger is the cache), waiting until the read model shows it.
func (a *api) nonprofit(r *http.Request, slug string) (*projections.NonprofitRecord, error) {
	if !ledger.ValidSlug(slug) {
		return nil, nil
	}
	n, err := projections.NonprofitBySlug(r.Context(), a.DB, slug)
	if err != nil || n != nil || a.Directory == nil {
		return n, err
	}
	in, err := a.Directory.Lookup(r.Context(), slug)
	if err != nil {
		loggerFrom(r.Context()).Warn("upstream nonprofit directory", "slug", slug, "err", err)
		return nil, nil // the local directory's answer stands
	}
	if in == nil {
		return nil, nil
	}
	_, res, err := a.Ledger.ListNonprofits(r.Context(), events.Metadata{RequestID: requestIDFrom(r.Context()), Actor: "directory:every.org"},
		"every.org", []ledger.NonprofitInput{*in})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.ReadWait)
	defer cancel()
	if err := projections.WaitFor(ctx, a.DB, res.Position, projections.DonationsName); err != nil {
		return nil, err
	}
	return projections.NonprofitBySlug(r.Context(), a.DB, slug)
}

func (a *api) getOrganization(w http.ResponseWriter, r *http.Request) {
	if _, err := scope(r); err != nil {
		writeError(w, r, err)
		return
	}
	slug := mux.Vars(r)["slug"]
	n, err := a.nonprofit(r, slug)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if n == nil {
		writeError(w, r, errNonprofitNotFound(slug))
		return
	}
	cats := n.Categories
	if cats == nil {
		cats = []string{}
	}
	writeJSON(w, http.StatusOK, organizationBody{Slug: n.Slug, Name: n.Name, EIN: orNull(n.EIN), Description: orNull(n.Description),
		WebsiteURL: orNull(n.WebsiteURL), LogoURL: orNull(n.LogoURL), Location: locationBody{n.City, n.State, n.Country}, Categories: cats})
}

// createLinkRequest is the create-link body. Amounts are integer cents;
// a fraction or a string is refused, never rounded.
type createLinkRequest struct {
	NonprofitSlug string       `json:"nonprofitSlug"`
	Amount        *json.Number `json:"amount"`
	Currency      string       `json:"currency"`
	Frequency     string       `json:"frequency"`
	Provider      string       `json:"provider"`
	DonorEmail    string       `json:"donorEmail"`
	FirstName     string       `json:"firstName"`
	LastName      string       `json:"lastName"`
	TipAmount     *json.Number `json:"tipAmount"`
	TipPercent    *json.Number `json:"tipPercent"`
	ReferralCode  string       `json:"referralCode"`
	PartnerUserID string       `json:"partnerUserId"`
	ReturnURL     string       `json:"returnUrl"`
}

// cents reads an integer JSON number.
func cents(field string, n *json.Number, issues *[]eventstore.FieldIssue) *int64 {
	if n == nil {
		return nil
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		*issues = append(*issues, eventstore.FieldIssue{Field: field, Issue: "must be an integer (amounts are in cents: 2500 = 25.00)"})
		return nil
	}
	return &v
}

func (in createLinkRequest) input() (ledger.DonationInput, error) {
	var issues []eventstore.FieldIssue
	out := ledger.DonationInput{NonprofitSlug: in.NonprofitSlug, Currency: in.Currency, Frequency: in.Frequency, Provider: in.Provider,
		DonorEmail: in.DonorEmail, FirstName: in.FirstName, LastName: in.LastName, ReferralCode: in.ReferralCode,
		PartnerUserID: in.PartnerUserID, ReturnURL: in.ReturnURL}
	if in.Amount == nil {
		issues = append(issues, eventstore.FieldIssue{Field: "amount", Issue: "is required (integer cents)"})
	} else if v := cents("amount", in.Amount, &issues); v != nil {
		out.Amount = *v
	}
	if out.Frequency == "" {
		out.Frequency = ledger.FrequencyOnce
	}
	out.TipAmount = cents("tipAmount", in.TipAmount, &issues)
	out.TipPercent = cents("tipPercent", in.TipPercent, &issues)
	if len(issues) > 0 {
		return out, eventstore.Invalid("invalid donation", issues...)
	}
	return out, nil
}

// donationLinkBody answers create-link.
type donationLinkBody struct {
	PartnerDonationID string    `json:"partnerDonationId"`
	DonationLink      string    `json:"donationLink"`
	Provider          string    `json:"provider"`
	Status            string    `json:"status"`
	NonprofitSlug     string    `json:"nonprofitSlug"`
	Amount            int64     `json:"amount"`
	TipAmount         int64     `json:"tipAmount"`
	Currency          string    `json:"currency"`
	Frequency         string    `json:"frequency"`
	CreatedAt         time.Time `json:"createdAt"`
}

func (a *api) createDonationLink(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var body createLinkRequest
	if _, err := decodeJSON(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	in, err := body.input()
	if err != nil {
		writeError(w, r, err)
		return
	}
	if a.Directory != nil {
		// A nonprofit only the upstream directory knows is listed first.
		if _, err := a.nonprofit(r, in.NonprofitSlug); err != nil {
			writeError(w, r, err)
			return
		}
	}
	out, err := a.Ledger.CreateDonationLink(r.Context(), sc, commandMeta(r), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	d := out.Draft
	writeJSON(w, http.StatusCreated, donationLinkBody{PartnerDonationID: d.ID, DonationLink: out.Link.URL, Provider: out.Link.Provider,
		Status: ledger.DonationPending, NonprofitSlug: d.NonprofitSlug, Amount: d.Amount, TipAmount: d.TipAmount,
		Currency: d.Currency, Frequency: d.Frequency, CreatedAt: out.CreatedAt})
}

// nonprofitRef names a donation's nonprofit.
type nonprofitRef struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// donationStatusBody answers the status endpoint.
type donationStatusBody struct {
	PartnerDonationID string       `json:"partnerDonationId"`
	Status            string       `json:"status"`
	Amount            int64        `json:"amount"`
	TipAmount         int64        `json:"tipAmount"`
	Currency          string       `json:"currency"`
	Frequency         string       `json:"frequency"`
	Provider          string       `json:"provider"`
	Nonprofit         nonprofitRef `json:"nonprofit"`
	TokensRewarded    int64        `json:"tokensRewarded"`
	TokensReversed    int64        `json:"tokensReversed"`
	ActionID          *string      `json:"actionId"`
	CreatedAt         time.Time    `json:"createdAt"`
	CompletedAt       *time.Time   `json:"completedAt"`
}

func statusBody(d *projections.DonationRecord) donationStatusBody {
	return donationStatusBody{PartnerDonationID: d.DonationID, Status: d.Status, Amount: d.Amount, TipAmount: d.TipAmount,
		Currency: d.Currency, Frequency: d.Frequency, Provider: d.Provider, Nonprofit: nonprofitRef{d.NonprofitSlug, d.NonprofitName},
		TokensRewarded: d.TokensRewarded, TokensReversed: d.TokensReversed, ActionID: orNull(d.ActionID), CreatedAt: d.CreatedAt,
		CompletedAt: d.CompletedAt}
}

func (a *api) donationStatus(w http.ResponseWriter, r *http.Request) {
	t, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitTenant(r.Context(), a.DB, t, a.ReadWait, projections.DonationsName); err != nil {
		writeError(w, r, err)
		return
	}
	id := mux.Vars(r)["partnerDonationId"]
	d, err := projections.DonationByID(r.Context(), a.DB, t, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if d == nil {
		writeError(w, r, eventstore.Errorf(eventstore.KindNotFound, "DONATION_NOT_FOUND", "no donation %s", id))
		return
	}
	writeJSON(w, http.StatusOK, statusBody(d))
}
