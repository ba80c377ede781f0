package events

// Donation events: the nonprofit directory, a partner's widget
// configuration, and the life of one donation link. Nonprofit facts live on
// nonprofit-<slug> with no tenant (the directory is shared by every
// partner); the widget configuration on the partner stream with scope
// {PartnerID, ""}; a donation on donation-<id> with its partner and
// environment. Money is integer minor units (cents), never a float.

// NonprofitListed adds a nonprofit to the directory or replaces its
// entry: the latest listing of a slug is what the directory shows.
type NonprofitListed struct {
	Slug        string   `json:"slug"`
	Name        string   `json:"name"`
	EIN         string   `json:"ein,omitempty"`
	Description string   `json:"description,omitempty"`
	WebsiteURL  string   `json:"websiteUrl,omitempty"`
	LogoURL     string   `json:"logoUrl,omitempty"`
	City        string   `json:"city,omitempty"`
	State       string   `json:"state,omitempty"`
	Country     string   `json:"country,omitempty"`
	Categories  []string `json:"categories,omitempty"`
	// Source says where the listing came from (an import file, the
	// development set, an upstream directory), for the audit trail.
	Source string `json:"source,omitempty"`
}

// EventType implements Payload.
func (NonprofitListed) EventType() string { return "nonprofit.listed" }

// WidgetConfigured sets what the partner's widget offers. The whole
// configuration is restated each time, so the latest event is the truth.
// It changes nothing of the partner's standing or keys (hence not a
// partner.* event, which authentication folds).
type WidgetConfigured struct {
	PartnerID       string   `json:"partnerId"`
	EnabledFeatures []string `json:"enabledFeatures"`
	TipEnabled      bool     `json:"tipEnabled"`
	// TipDefaultPercent is a whole percentage (0–100) the widget offers.
	TipDefaultPercent int64  `json:"tipDefaultPercent"`
	Actor             string `json:"actor,omitempty"`
}

// EventType implements Payload.
func (WidgetConfigured) EventType() string { return "widget.configured" }

// DonationLinkCreated records a donation a partner's page started: who
// gives how much to which nonprofit, through which checkout provider, and
// where the donor is sent. Amount excludes TipAmount; the donor pays both.
type DonationLinkCreated struct {
	DonationID    string `json:"donationId"`
	NonprofitSlug string `json:"nonprofitSlug"`
	NonprofitName string `json:"nonprofitName"`
	Amount        int64  `json:"amount"`
	TipAmount     int64  `json:"tipAmount"`
	Currency      string `json:"currency"`
	Frequency     string `json:"frequency"`
	Provider      string `json:"provider"`
	// ProviderRef is the provider's own id for the checkout (a Stripe
	// Checkout Session id), when it has one.
	ProviderRef   string `json:"providerRef,omitempty"`
	CheckoutURL   string `json:"checkoutUrl"`
	DonorEmail    string `json:"donorEmail"`
	FirstName     string `json:"firstName,omitempty"`
	LastName      string `json:"lastName,omitempty"`
	PartnerUserID string `json:"partnerUserId"`
	ReferralCode  string `json:"referralCode,omitempty"`
	// ReturnURL is the partner page the donor comes back to after checkout.
	ReturnURL string `json:"returnUrl,omitempty"`
}

// EventType implements Payload.
func (DonationLinkCreated) EventType() string { return "donation.link_created" }

// DonationCompleted records a payment the provider confirmed, and the
// reward it earned: the DONATION action ActionID (empty when none could be
// recorded) and its tokens. Partner-facing.
type DonationCompleted struct {
	DonationID    string `json:"donationId"`
	Provider      string `json:"provider"`
	ProviderRef   string `json:"providerRef,omitempty"`
	NonprofitSlug string `json:"nonprofitSlug"`
	Amount        int64  `json:"amount"`
	TipAmount     int64  `json:"tipAmount"`
	Currency      string `json:"currency"`
	PartnerUserID string `json:"partnerUserId"`
	ActionID      string `json:"actionId,omitempty"`
	// RewardStatus is the reward action's status (COMPLETED or FAILED);
	// RewardCode says why a reward failed.
	RewardStatus   string `json:"rewardStatus,omitempty"`
	RewardCode     string `json:"rewardCode,omitempty"`
	TokensRewarded int64  `json:"tokensRewarded"`
}

// EventType implements Payload.
func (DonationCompleted) EventType() string { return "donation.completed" }

// DonationCancelled records that the donor left checkout without paying,
// or the checkout expired.
type DonationCancelled struct {
	DonationID string `json:"donationId"`
	Provider   string `json:"provider"`
	Reason     string `json:"reason,omitempty"`
}

// EventType implements Payload.
func (DonationCancelled) EventType() string { return "donation.cancelled" }

// DonationFailed records a payment the provider refused. Partner-facing.
type DonationFailed struct {
	DonationID    string `json:"donationId"`
	Provider      string `json:"provider"`
	NonprofitSlug string `json:"nonprofitSlug"`
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	Reason        string `json:"reason,omitempty"`
}

// EventType implements Payload.
func (DonationFailed) EventType() string { return "donation.failed" }

// DonationRefunded records a completed donation paid back to the donor;
// its reward was reversed (TokensReversed). Partner-facing.
type DonationRefunded struct {
	DonationID     string `json:"donationId"`
	Provider       string `json:"provider"`
	NonprofitSlug  string `json:"nonprofitSlug"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	ActionID       string `json:"actionId,omitempty"`
	TokensReversed int64  `json:"tokensReversed"`
	Reason         string `json:"reason,omitempty"`
}

// EventType implements Payload.
func (DonationRefunded) EventType() string { return "donation.refunded" }

func init() {
	Register[NonprofitListed](1)
	Register[WidgetConfigured](1)
	Register[DonationLinkCreated](1)
	Register[DonationCompleted](1)
	Register[DonationCancelled](1)
	Register[DonationFailed](1)
	Register[DonationRefunded](1)
}
