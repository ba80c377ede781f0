package ledger

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Donation statuses (GET /donations/status).
const (
	DonationPending   = "PENDING"
	DonationCompleted = "COMPLETED"
	DonationCancelled = "CANCELLED"
	DonationFailed    = "FAILED"
	DonationRefunded  = "REFUNDED"
)

// Widget features a partner's configuration may enable.
const (
	FeatureDonations = "DONATIONS"
	FeatureActions   = "ACTIONS"
)

// Checkout providers. Sandbox is the test checkout ledgerd serves itself;
// it takes the place of any provider not configured for sandbox keys and
// never takes real money.
const (
	ProviderSandbox  = "sandbox"
	ProviderStripe   = "stripe"
	ProviderEveryOrg = "every.org"
)

// Donation frequencies.
const (
	FrequencyOnce    = "once"
	FrequencyMonthly = "monthly"
)

// Donation amount bounds, in cents.
const (
	MinDonationAmount int64 = 100
	// DefaultMaxDonationAmount applies when Options.MaxDonationAmount is
	// zero: 100,000.00 in the donation's currency.
	DefaultMaxDonationAmount int64 = 10_000_000
)

// DonationActionType is the action type a completed donation is rewarded
// as, so the same rules (and campaigns) apply as to a DONATION action.
const DonationActionType = "DONATION"

// DonorStakeholderType is the stakeholder type code of the donor in the
// reward action.
const DonorStakeholderType = "DONOR"

// donationCurrencies are those donation links take; each has two minor
// units, so an amount in cents is exact.
var donationCurrencies = map[string]bool{"USD": true, "EUR": true, "GBP": true, "CAD": true, "AUD": true}

// DefaultFeatures is what a partner that was never configured offers.
var DefaultFeatures = []string{FeatureActions, FeatureDonations}

// NonprofitStream is the directory entry of one nonprofit.
func NonprofitStream(slug string) string { return "nonprofit-" + slug }

// WidgetConfigStream holds a partner's widget configuration.
func WidgetConfigStream(partnerID string) string { return "widgetconfig-" + partnerID }

// DonationStream is the stream of one donation.
func DonationStream(donationID string) string { return "donation-" + donationID }

// DonationActionKey is the idempotency key of a donation's reward action:
// however often its completion is decided, one action.
func DonationActionKey(donationID string) string { return "donation:" + donationID }

// Nonprofit is a directory entry: its latest listing.
type Nonprofit struct {
	Listed *events.NonprofitListed
}

// Apply implements eventstore.Aggregate.
func (n *Nonprofit) Apply(e events.Event) error {
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	if v, ok := pl.(events.NonprofitListed); ok {
		n.Listed = &v
	}
	return nil
}

// WidgetConfig is a partner's widget configuration.
type WidgetConfig struct {
	Configured        bool
	Features          []string
	TipEnabled        bool
	TipDefaultPercent int64
}

// Apply implements eventstore.Aggregate.
func (c *WidgetConfig) Apply(e events.Event) error {
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	if v, ok := pl.(events.WidgetConfigured); ok {
		c.Configured, c.Features, c.TipEnabled, c.TipDefaultPercent = true, v.EnabledFeatures, v.TipEnabled, v.TipDefaultPercent
	}
	return nil
}

// Enabled reports whether feature is on; an unconfigured partner has
// DefaultFeatures and takes no tips.
func (c *WidgetConfig) Enabled(feature string) bool {
	if !c.Configured {
		return slices.Contains(DefaultFeatures, feature)
	}
	return slices.Contains(c.Features, feature)
}

// Donation is one donation's state.
type Donation struct {
	PartnerID   string
	Environment string
	Status      string
	Link        *events.DonationLinkCreated
	ActionID    string
	Tokens      int64
}

// Apply implements eventstore.Aggregate.
func (d *Donation) Apply(e events.Event) error {
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	switch v := pl.(type) {
	case events.DonationLinkCreated:
		d.PartnerID, d.Environment, d.Status, d.Link = e.PartnerID, e.Environment, DonationPending, &v
	case events.DonationCompleted:
		d.Status, d.ActionID, d.Tokens = DonationCompleted, v.ActionID, v.TokensRewarded
	case events.DonationCancelled:
		d.Status = DonationCancelled
	case events.DonationFailed:
		d.Status = DonationFailed
	case events.DonationRefunded:
		d.Status = DonationRefunded
	}
	return nil
}

func init() {
	eventstore.RegisterAggregate("nonprofit-", func() eventstore.Aggregate { return &Nonprofit{} })
	eventstore.RegisterAggregate("widgetconfig-", func() eventstore.Aggregate { return &WidgetConfig{} })
	eventstore.RegisterAggregate("donation-", func() eventstore.Aggregate { return &Donation{} })
}

// ---- nonprofit directory ----

// NonprofitInput is one directory entry to list.
type NonprofitInput struct {
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
}

var (
	slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,99}$`)
	einRE  = regexp.MustCompile(`^[0-9]{2}-?[0-9]{7}$`)
)

// ValidSlug reports whether s can name a nonprofit.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

// ValidateNonprofit lists what is wrong with one entry (nil when nothing).
func ValidateNonprofit(in NonprofitInput) []eventstore.FieldIssue {
	var issues []eventstore.FieldIssue
	add := func(f, i string) { issues = append(issues, eventstore.FieldIssue{Field: f, Issue: i}) }
	if !ValidSlug(in.Slug) {
		add("slug", "must be 1 to 100 lower-case letters, digits and dashes, starting with a letter or digit")
	}
	if n := strings.TrimSpace(in.Name); n == "" || len(n) > 200 || !wellFormedID(n) {
		add("name", "is required: printable text of at most 200 characters")
	}
	if in.EIN != "" && !einRE.MatchString(in.EIN) {
		add("ein", "must be a US EIN such as 53-0196605")
	}
	if len(in.Description) > 2000 || !wellFormedText(in.Description) {
		add("description", "must be at most 2000 characters of text")
	}
	for f, u := range map[string]string{"websiteUrl": in.WebsiteURL, "logoUrl": in.LogoURL} {
		if u != "" && !httpURL(u, true) {
			add(f, "must be an https URL")
		}
	}
	for f, v := range map[string]string{"city": in.City, "state": in.State, "country": in.Country} {
		if len(v) > 100 || !wellFormedID(v) {
			add(f, "must be at most 100 characters of printable text")
		}
	}
	if len(in.Categories) > 20 {
		add("categories", "must list at most 20 categories")
	}
	for _, c := range in.Categories {
		if c == "" || len(c) > 100 || !wellFormedID(c) {
			add("categories", "each must be 1 to 100 characters of printable text")
			break
		}
	}
	slices.SortFunc(issues, func(a, b eventstore.FieldIssue) int { return strings.Compare(a.Field, b.Field) })
	return issues
}

// wellFormedText is wellFormedID that also allows line breaks and tabs.
func wellFormedText(s string) bool {
	return wellFormedID(strings.NewReplacer("\n", " ", "\r", " ", "\t", " ").Replace(s))
}

func httpURL(s string, httpsOnly bool) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || len(s) > 2000 || !wellFormedID(s) {
		return false
	}
	return u.Scheme == "https" || (!httpsOnly && u.Scheme == "http")
}

// ListNonprofits adds or updates directory entries in one command, each
// only if it differs from what is listed (so loading the same file twice
// records nothing). It returns how many entries changed. Every entry must
// be valid: the caller names the bad ones (ValidateNonprofit) first.
func (s *Service) ListNonprofits(ctx context.Context, meta events.Metadata, source string, ins []NonprofitInput) (int, eventstore.Result, error) {
	listings := make([]events.NonprofitListed, len(ins))
	for i, in := range ins {
		if issues := ValidateNonprofit(in); len(issues) > 0 {
			for j := range issues {
				issues[j].Field = fmt.Sprintf("nonprofits[%d].%s", i, issues[j].Field)
			}
			return 0, eventstore.Result{}, eventstore.Invalid("invalid nonprofit", issues...)
		}
		listings[i] = events.NonprofitListed{Slug: in.Slug, Name: strings.TrimSpace(in.Name), EIN: in.EIN, Description: in.Description,
			WebsiteURL: in.WebsiteURL, LogoURL: in.LogoURL, City: in.City, State: in.State, Country: in.Country,
			Categories: in.Categories, Source: source}
	}
	changed := 0
	res, err := s.store.Execute(ctx, eventstore.Command{Metadata: meta, Decide: func(ss *eventstore.Session) error {
		changed = 0
		seen := map[string]bool{}
		for _, l := range listings {
			if seen[l.Slug] {
				return eventstore.Invalid("duplicate nonprofit", eventstore.FieldIssue{Field: "slug", Issue: l.Slug + " is listed twice"})
			}
			seen[l.Slug] = true
			st, err := ss.Load(NonprofitStream(l.Slug))
			if err != nil {
				return err
			}
			if cur := st.State.(*Nonprofit).Listed; cur != nil && sameListing(*cur, l) {
				continue
			}
			ss.Emit(st.ID, l)
			changed++
		}
		return nil
	}})
	return changed, res, err
}

func sameListing(a, b events.NonprofitListed) bool {
	a.Source, b.Source = "", ""
	return a.Slug == b.Slug && a.Name == b.Name && a.EIN == b.EIN && a.Description == b.Description &&
		a.WebsiteURL == b.WebsiteURL && a.LogoURL == b.LogoURL && a.City == b.City && a.State == b.State &&
		a.Country == b.Country && slices.Equal(a.Categories, b.Categories)
}

// ---- partner widget configuration ----

// WidgetConfigPatch changes a partner's widget configuration; nil fields
// are unchanged.
type WidgetConfigPatch struct {
	Features          []string
	TipEnabled        *bool
	TipDefaultPercent *int64
}

// ConfigurePartner sets the partner's widget features and tip default.
func (s *Service) ConfigurePartner(ctx context.Context, meta events.Metadata, partnerID string, p WidgetConfigPatch) (eventstore.Result, error) {
	var issues []eventstore.FieldIssue
	for _, f := range p.Features {
		if f != FeatureDonations && f != FeatureActions {
			issues = append(issues, eventstore.FieldIssue{Field: "features", Issue: fmt.Sprintf("%q is not a feature: use %s and %s", f, FeatureDonations, FeatureActions)})
		}
	}
	if p.TipDefaultPercent != nil && (*p.TipDefaultPercent < 0 || *p.TipDefaultPercent > 100) {
		issues = append(issues, eventstore.FieldIssue{Field: "tipDefaultPercent", Issue: "must be a whole percentage from 0 to 100"})
	}
	if len(issues) > 0 {
		return eventstore.Result{}, eventstore.Invalid("invalid partner configuration", issues...)
	}
	return s.partnerCommand(ctx, meta, partnerID, func(ss *eventstore.Session, _ *PartnerState) error {
		st, err := ss.Load(WidgetConfigStream(partnerID))
		if err != nil {
			return err
		}
		cur := st.State.(*WidgetConfig)
		next := events.WidgetConfigured{PartnerID: partnerID, EnabledFeatures: DefaultFeatures, Actor: meta.Actor}
		if cur.Configured {
			next.EnabledFeatures, next.TipEnabled, next.TipDefaultPercent = cur.Features, cur.TipEnabled, cur.TipDefaultPercent
		}
		if p.Features != nil {
			next.EnabledFeatures = slices.Compact(slices.Sorted(slices.Values(p.Features)))
		}
		if p.TipEnabled != nil {
			next.TipEnabled = *p.TipEnabled
		}
		if p.TipDefaultPercent != nil {
			next.TipDefaultPercent = *p.TipDefaultPercent
		}
		if next.EnabledFeatures == nil {
			next.EnabledFeatures = []string{}
		}
		if cur.Configured && slices.Equal(cur.Features, next.EnabledFeatures) && cur.TipEnabled == next.TipEnabled && cur.TipDefaultPercent == next.TipDefaultPercent {
			return nil
		}
		ss.EmitFor(st.ID, eventstore.Tenant{PartnerID: partnerID}, next)
		return nil
	})
}

// ---- donation links ----

// DonationInput is a create-link request.
type DonationInput struct {
	NonprofitSlug string
	// Amount is in cents, tip excluded.
	Amount    int64
	Currency  string
	Frequency string
	Provider  string
	// TipAmount (cents) or TipPercent (whole percent of Amount), at most one.
	TipAmount     *int64
	TipPercent    *int64
	DonorEmail    string
	FirstName     string
	LastName      string
	ReferralCode  string
	PartnerUserID string
	ReturnURL     string
}

// DonationDraft is a validated donation before its link exists: what a
// checkout provider is asked to collect.
type DonationDraft struct {
	ID            string
	Tenant        eventstore.Tenant
	NonprofitSlug string
	NonprofitName string
	Amount        int64
	TipAmount     int64
	Currency      string
	Frequency     string
	// Provider is the one the partner asked for.
	Provider      string
	DonorEmail    string
	FirstName     string
	LastName      string
	PartnerUserID string
	ReferralCode  string
	ReturnURL     string
}

// Total is what the donor pays: the donation and the tip, in cents.
func (d DonationDraft) Total() int64 { return d.Amount + d.TipAmount }

// CheckoutLink is where a provider takes the donor's payment.
type CheckoutLink struct {
	// Provider is the provider that takes the payment: the one asked for,
	// or the sandbox checkout standing in for it.
	Provider string
	URL      string
	// Ref is the provider's id for the checkout, if it has one.
	Ref string
}

// Checkout opens checkouts with the configured providers.
type Checkout interface {
	// Open returns a checkout for d, or a refusal (*eventstore.Error) when
	// the provider is not configured for d's environment or cannot take
	// the donation; any other error is an outage.
	Open(ctx context.Context, d DonationDraft) (CheckoutLink, error)
}

// DonationLinkOutcome is a created donation link.
type DonationLinkOutcome struct {
	Draft    DonationDraft
	Link     CheckoutLink
	Position int64
	// CreatedAt is when donation.link_created was recorded.
	CreatedAt time.Time
}

func (s *Service) maxDonation() int64 {
	if s.opts.MaxDonationAmount > 0 {
		return s.opts.MaxDonationAmount
	}
	return DefaultMaxDonationAmount
}

// draftDonation checks everything that needs no state.
func (s *Service) draftDonation(sc eventstore.Tenant, in DonationInput) (DonationDraft, error) {
	var issues []eventstore.FieldIssue
	add := func(f, i string) { issues = append(issues, eventstore.FieldIssue{Field: f, Issue: i}) }
	if !ValidSlug(in.NonprofitSlug) {
		add("nonprofitSlug", "is required: a nonprofit slug such as american-red-cross")
	}
	if max := s.maxDonation(); in.Amount < MinDonationAmount || in.Amount > max {
		add("amount", fmt.Sprintf("must be an integer number of cents from %d to %d", MinDonationAmount, max))
	}
	if !donationCurrencies[in.Currency] {
		add("currency", "must be one of AUD, CAD, EUR, GBP, USD")
	}
	if in.Frequency != FrequencyOnce && in.Frequency != FrequencyMonthly {
		add("frequency", `must be "once" or "monthly"`)
	}
	if in.Provider != ProviderStripe && in.Provider != ProviderEveryOrg && in.Provider != ProviderSandbox {
		add("provider", `must be "stripe" or "every.org" (or "sandbox" with a sandbox key)`)
	}
	email := NormalizeEmail(in.DonorEmail)
	if email == "" {
		add("donorEmail", "is required")
	} else if fi := checkEmail("donorEmail", email); fi != nil {
		add(fi.Field, fi.Issue)
	}
	for _, fi := range []*eventstore.FieldIssue{checkName("firstName", in.FirstName), checkName("lastName", in.LastName)} {
		if fi != nil {
			add(fi.Field, fi.Issue)
		}
	}
	if !wellFormedID(in.FirstName) || !wellFormedID(in.LastName) {
		add("name", idCharsIssue)
	}
	if len(in.ReferralCode) > 100 || !wellFormedID(in.ReferralCode) {
		add("referralCode", "must be at most 100 characters of printable text")
	}
	donor := in.PartnerUserID
	if donor == "" {
		donor = email
	} else if fi := checkExternalID("partnerUserId", donor); fi != nil {
		add(fi.Field, fi.Issue)
	}
	if in.ReturnURL != "" && !httpURL(in.ReturnURL, false) {
		add("returnUrl", "must be an http or https URL")
	}
	var tip int64
	switch {
	case in.TipAmount != nil && in.TipPercent != nil:
		add("tipAmount", "give tipAmount or tipPercent, not both")
	case in.TipAmount != nil:
		if tip = *in.TipAmount; tip < 0 || tip > in.Amount {
			add("tipAmount", "must be an integer number of cents from 0 to the amount")
		}
	case in.TipPercent != nil:
		if p := *in.TipPercent; p < 0 || p > 100 {
			add("tipPercent", "must be a whole percentage from 0 to 100")
		} else {
			tip = (in.Amount*p + 50) / 100 // half up, in integers
		}
	}
	if len(issues) > 0 {
		return DonationDraft{}, eventstore.Invalid("invalid donation", issues...)
	}
	return DonationDraft{ID: NewAccountID("don"), Tenant: sc, NonprofitSlug: in.NonprofitSlug, Amount: in.Amount, TipAmount: tip,
		Currency: in.Currency, Frequency: in.Frequency, Provider: in.Provider, DonorEmail: email, FirstName: strings.TrimSpace(in.FirstName),
		LastName: strings.TrimSpace(in.LastName), PartnerUserID: donor, ReferralCode: in.ReferralCode, ReturnURL: in.ReturnURL}, nil
}

// admit checks what the donation needs of state: a listed nonprofit, and
// a partner whose configuration offers donations (and tips, if one is
// given). It fills in the nonprofit's name.
func admit(ss *eventstore.Session, d *DonationDraft) error {
	np, err := ss.Load(NonprofitStream(d.NonprofitSlug))
	if err != nil {
		return err
	}
	listed := np.State.(*Nonprofit).Listed
	if listed == nil {
		e := eventstore.Errorf(eventstore.KindNotFound, "NONPROFIT_NOT_FOUND", "no nonprofit %q in the directory", d.NonprofitSlug)
		e.Details = []eventstore.FieldIssue{{Field: "nonprofitSlug", Issue: "unknown nonprofit"}}
		return e
	}
	d.NonprofitName = listed.Name
	cs, err := ss.Load(WidgetConfigStream(d.Tenant.PartnerID))
	if err != nil {
		return err
	}
	cfg := cs.State.(*WidgetConfig)
	if !cfg.Enabled(FeatureDonations) {
		return eventstore.Errorf(eventstore.KindForbidden, "DONATIONS_DISABLED", "donations are not enabled for this partner")
	}
	if d.TipAmount > 0 && !cfg.TipEnabled {
		e := eventstore.Errorf(eventstore.KindUnprocessable, "TIPS_DISABLED", "this partner's widget does not take tips")
		e.Details = []eventstore.FieldIssue{{Field: "tipAmount", Issue: "tips are disabled"}}
		return e
	}
	return nil
}

// CreateDonationLink validates a donation, asks the checkout provider for
// a link (outside any command: it is I/O), and records the donation
// (donation.link_created), checking the nonprofit and the partner's
// configuration again as it does. A provider's checkout that is opened
// but whose record is refused is never paid for: it names a donation no
// notification will find.
func (s *Service) CreateDonationLink(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, in DonationInput) (DonationLinkOutcome, error) {
	d, err := s.draftDonation(sc, in)
	if err != nil {
		return DonationLinkOutcome{}, err
	}
	if _, err := s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		return admit(ss, &d)
	}}); err != nil {
		return DonationLinkOutcome{}, err
	}
	if s.opts.Checkout == nil {
		return DonationLinkOutcome{}, errProviderNotConfigured(d.Provider, sc.Environment)
	}
	link, err := s.opts.Checkout.Open(ctx, d)
	if err != nil {
		return DonationLinkOutcome{}, err
	}
	stream := DonationStream(d.ID)
	var at time.Time
	res, err := s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Prefetch: []string{stream}, Decide: func(ss *eventstore.Session) error {
		at = ss.Now()
		if err := admit(ss, &d); err != nil {
			return err
		}
		st, err := ss.Load(stream)
		if err != nil {
			return err
		}
		if st.Version != 0 {
			return eventstore.ErrConcurrency
		}
		ss.Emit(stream, events.DonationLinkCreated{DonationID: d.ID, NonprofitSlug: d.NonprofitSlug, NonprofitName: d.NonprofitName,
			Amount: d.Amount, TipAmount: d.TipAmount, Currency: d.Currency, Frequency: d.Frequency, Provider: link.Provider,
			ProviderRef: link.Ref, CheckoutURL: link.URL, DonorEmail: d.DonorEmail, FirstName: d.FirstName, LastName: d.LastName,
			PartnerUserID: d.PartnerUserID, ReferralCode: d.ReferralCode, ReturnURL: d.ReturnURL})
		return nil
	}})
	if err != nil {
		return DonationLinkOutcome{}, err
	}
	return DonationLinkOutcome{Draft: d, Link: link, Position: res.Position, CreatedAt: at.UTC().Truncate(time.Microsecond)}, nil
}

func errProviderNotConfigured(provider, env string) *eventstore.Error {
	e := eventstore.Errorf(eventstore.KindUnprocessable, "PROVIDER_NOT_CONFIGURED", "the %s checkout is not configured for %s", provider, env)
	e.Details = []eventstore.FieldIssue{{Field: "provider", Issue: "not configured on this server"}}
	return e
}

// ErrProviderNotConfigured is the refusal a Checkout gives for a provider
// it has no configuration for in the donation's environment.
func ErrProviderNotConfigured(provider, env string) error {
	return errProviderNotConfigured(provider, env)
}

// ---- provider notifications ----

// Notice kinds: what a verified provider notification says happened.
const (
	NoticeCompleted = "completed"
	NoticeCancelled = "cancelled"
	NoticeFailed    = "failed"
	NoticeRefunded  = "refunded"
)

// DonationNotice is a verified provider notification about a donation.
type DonationNotice struct {
	DonationID string
	// Provider is who sent it; it must be the donation's provider.
	Provider string
	Kind     string
	// Ref is the provider's id of the payment (or refund), for the record.
	Ref    string
	Reason string
	// NonprofitSlug, when the provider names the nonprofit paid, must be
	// the donation's: a notice about another payment is refused.
	NonprofitSlug string
}

// DonationNoticeOutcome is what a notice changed.
type DonationNoticeOutcome struct {
	// Status is the donation's status after the notice.
	Status string
	// Recorded is false when the notice changed nothing: a repeat, or news
	// older than what is already known (a cancel after the payment).
	Recorded bool
	ActionID string
	// Tokens are the tokens rewarded, or for a recorded refund reversed.
	Tokens   int64
	Position int64
}

// RecordDonationNotice applies a verified provider notification to the
// donation, exactly once however often the provider repeats it. A
// completion rewards the donor through the same rules as a DONATION action
// (the amount without the tip; an active campaign's multiplier applies),
// decided in the same command, so a completion is never recorded without
// its reward decision nor rewarded twice. A refund reverses that reward.
// A donation of another tenant or another provider is not found.
func (s *Service) RecordDonationNotice(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, n DonationNotice) (DonationNoticeOutcome, error) {
	switch n.Kind {
	case NoticeCompleted, NoticeCancelled, NoticeFailed, NoticeRefunded:
	default:
		return DonationNoticeOutcome{}, eventstore.Invalid("unknown notice", eventstore.FieldIssue{Field: "kind", Issue: "unknown"})
	}
	var out DonationNoticeOutcome
	stream := DonationStream(n.DonationID)
	res, err := s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Prefetch: []string{stream}, Decide: func(ss *eventstore.Session) error {
		out = DonationNoticeOutcome{}
		st, err := ss.Load(stream)
		if err != nil {
			return err
		}
		d := st.State.(*Donation)
		if st.Version == 0 || d.PartnerID != sc.PartnerID || d.Environment != sc.Environment || d.Link.Provider != n.Provider {
			return eventstore.Errorf(eventstore.KindNotFound, "DONATION_NOT_FOUND", "no %s donation %s", n.Provider, n.DonationID)
		}
		out.Status, out.ActionID, out.Tokens = d.Status, d.ActionID, d.Tokens
		l := d.Link
		if n.NonprofitSlug != "" && n.NonprofitSlug != l.NonprofitSlug {
			return eventstore.Errorf(eventstore.KindUnprocessable, "NOTICE_MISMATCH", "the notice pays %s, donation %s is for %s", n.NonprofitSlug, n.DonationID, l.NonprofitSlug)
		}
		switch n.Kind {
		case NoticeCompleted:
			if d.Status == DonationCompleted || d.Status == DonationRefunded {
				return nil // a repeat: already recorded and rewarded
			}
			return s.completeDonation(ss, sc, d, n, &out)
		case NoticeCancelled, NoticeFailed:
			if d.Status != DonationPending {
				return nil // the payment's own outcome is already known
			}
			if n.Kind == NoticeCancelled {
				ss.Emit(stream, events.DonationCancelled{DonationID: n.DonationID, Provider: n.Provider, Reason: n.Reason})
				out.Status = DonationCancelled
			} else {
				ss.Emit(stream, events.DonationFailed{DonationID: n.DonationID, Provider: n.Provider, NonprofitSlug: l.NonprofitSlug,
					Amount: l.Amount, Currency: l.Currency, Reason: n.Reason})
				out.Status = DonationFailed
			}
			out.Recorded = true
		case NoticeRefunded:
			switch d.Status {
			case DonationRefunded:
				return nil
			case DonationCompleted:
			default:
				return eventstore.Errorf(eventstore.KindConflict, "NOT_REFUNDABLE", "donation %s is %s; only a completed donation can be refunded", n.DonationID, d.Status)
			}
			var reversed int64
			if d.ActionID != "" {
				act, err := ss.Load(ActionStream(d.ActionID))
				if err != nil {
					return err
				}
				if act.State.(*Action).Status == StatusCompleted {
					if reversed, err = reverse(ss, sc, d.ActionID, "donation refunded"); err != nil {
						return err
					}
				}
			}
			ss.Emit(stream, events.DonationRefunded{DonationID: n.DonationID, Provider: n.Provider, NonprofitSlug: l.NonprofitSlug,
				Amount: l.Amount, Currency: l.Currency, ActionID: d.ActionID, TokensReversed: reversed, Reason: n.Reason})
			out.Status, out.Recorded, out.Tokens = DonationRefunded, true, reversed
		}
		return nil
	}})
	out.Position = res.Position
	return out, err
}

// completeDonation records the completion and decides its reward as a
// DONATION action of the donor, with the same submission code a partner's
// action goes through.
func (s *Service) completeDonation(ss *eventstore.Session, sc eventstore.Tenant, d *Donation, n DonationNotice, out *DonationNoticeOutcome) error {
	l := d.Link
	in := ActionInput{
		IdempotencyKey: DonationActionKey(l.DonationID), ActionType: DonationActionType,
		Amount: decimal.New(l.Amount, -2).String(), Currency: l.Currency, AutoCreateUsers: true,
		Stakeholders: []StakeholderInput{{StakeholderTypeCode: DonorStakeholderType, PartnerUserID: l.PartnerUserID,
			UserEmail: l.DonorEmail, UserFirstName: l.FirstName, UserLastName: l.LastName}},
	}
	done := events.DonationCompleted{DonationID: l.DonationID, Provider: n.Provider, ProviderRef: n.Ref, NonprofitSlug: l.NonprofitSlug,
		Amount: l.Amount, TipAmount: l.TipAmount, Currency: l.Currency, PartnerUserID: l.PartnerUserID}
	norm, verr := validateAction(in, "")
	if verr == nil {
		sub := newSubmission(sc, norm)
		if err := sub.decide(ss); err != nil {
			var de *eventstore.Error
			if !asDomainError(err, &de) {
				return err // the store failed: decide again later
			}
			// The payment happened whatever the reward's fate: record it,
			// and why nothing was rewarded.
			done.RewardStatus, done.RewardCode = StatusFailed, de.Code
		} else {
			done.ActionID, done.RewardStatus, done.TokensRewarded = sub.out.ActionID, sub.out.Status, sub.out.TokensDistributed
			if sub.refusal != nil {
				done.RewardCode = sub.refusal.Code
			}
		}
	} else {
		done.RewardStatus, done.RewardCode = StatusFailed, verr.Code
	}
	ss.Emit(DonationStream(l.DonationID), done)
	out.Status, out.Recorded, out.ActionID, out.Tokens = DonationCompleted, true, done.ActionID, done.TokensRewarded
	return nil
}

// asDomainError reports whether err is a refusal of the domain rather than
// a failure of the store underneath it.
func asDomainError(err error, target **eventstore.Error) bool {
	e, ok := err.(*eventstore.Error)
	if !ok || e.Kind == eventstore.KindInternal || e.Kind == eventstore.KindUnavailable {
		return false
	}
	*target = e
	return true
}
