package ledger

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Campaign statuses.
const (
	CampaignDraft     = "DRAFT"
	CampaignScheduled = "SCHEDULED"
	CampaignActive    = "ACTIVE"
	CampaignPaused    = "PAUSED"
	CampaignEnded     = "ENDED"
)

// CampaignsStream is the one stream holding every campaign event of a
// tenant: deciding on it serially is what keeps one ACTIVE campaign per
// tenant and every budget unspent beyond its cap.
func CampaignsStream(s eventstore.Tenant) string {
	return "campaigns-" + s.PartnerID + "-" + s.Environment
}

// CampaignState is one campaign as commands see it.
type CampaignState struct {
	ID       string
	Status   string
	Config   events.CampaignConfig
	Spent    int64
	Returned int64
	// CreatedAt and UpdatedAt are the recording times of the campaign's
	// creation and of its last configuration or status change, as the
	// read model keeps them.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Net is the tokens the campaign has paid, net of reversals.
func (c *CampaignState) Net() int64 { return c.Spent - c.Returned }

// Campaigns is the aggregate of a tenant's campaigns.
type Campaigns struct {
	ByID   map[string]*CampaignState
	Active string
}

// Apply implements eventstore.Aggregate.
func (cs *Campaigns) Apply(e events.Event) error {
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	if cs.ByID == nil {
		cs.ByID = map[string]*CampaignState{}
	}
	switch v := pl.(type) {
	case events.CampaignCreated:
		cs.ByID[v.CampaignID] = &CampaignState{ID: v.CampaignID, Status: v.Status, Config: v.Config, CreatedAt: e.RecordedAt, UpdatedAt: e.RecordedAt}
		if v.Status == CampaignActive {
			cs.Active = v.CampaignID
		}
	case events.CampaignUpdated:
		if c := cs.ByID[v.CampaignID]; c != nil {
			c.Config = v.Config
			c.UpdatedAt = e.RecordedAt
		}
	case events.CampaignStatusChanged:
		if c := cs.ByID[v.CampaignID]; c != nil {
			c.Status = v.To
			c.UpdatedAt = e.RecordedAt
		}
		if v.To == CampaignActive {
			cs.Active = v.CampaignID
		} else if cs.Active == v.CampaignID {
			cs.Active = ""
		}
	case events.CampaignBudgetDebited:
		if c := cs.ByID[v.CampaignID]; c != nil {
			c.Spent += v.Amount
		}
	case events.CampaignBudgetCredited:
		if c := cs.ByID[v.CampaignID]; c != nil {
			c.Returned += v.Amount
		}
	}
	return nil
}

func init() {
	eventstore.RegisterAggregate("campaigns-", func() eventstore.Aggregate { return &Campaigns{ByID: map[string]*CampaignState{}} })
}

// TierInput is a reward tier: actions of at least MinAmount earn
// Multiplier (decimal strings).
type TierInput struct {
	MinAmount  string
	Multiplier string
}

// SplitInput gives a stakeholder type a percentage of each reward.
type SplitInput struct {
	StakeholderTypeCode string
	Percent             string
	// Percentage is accepted as an alias of Percent.
	Percentage string
}

// CampaignInput creates a campaign (POST /campaigns).
type CampaignInput struct {
	Name        string
	Description string
	Status      string
	StartsAt    *time.Time
	EndsAt      *time.Time
	ActionTypes []string
	Multiplier  string
	Tiers       []TierInput
	Splits      []SplitInput
	Budget      *int64
	TokenBudget *int64 // alias of Budget
	TokenPoolID string
}

// CampaignPatch updates a campaign (PATCH /campaigns/:id); nil fields stay.
type CampaignPatch struct {
	Name        *string
	Description *string
	Status      *string
	StartsAt    *time.Time
	EndsAt      *time.Time
	ActionTypes *[]string
	Multiplier  *string
	Tiers       *[]TierInput
	Splits      *[]SplitInput
	Budget      *int64
	TokenBudget *int64 // alias of Budget
	TokenPoolID *string
}

func parseDec(field string, d string, issues *[]eventstore.FieldIssue) decimal.Decimal {
	v, err := decimal.NewFromString(d)
	if err != nil {
		*issues = append(*issues, eventstore.FieldIssue{Field: field, Issue: "must be a decimal number"})
	}
	return v
}

func tiersConfig(in []TierInput, issues *[]eventstore.FieldIssue) []events.CampaignTier {
	out := []events.CampaignTier{}
	for i, t := range in {
		min := parseDec(fmt.Sprintf("tiers[%d].minAmount", i), t.MinAmount, issues)
		mul := parseDec(fmt.Sprintf("tiers[%d].multiplier", i), t.Multiplier, issues)
		out = append(out, events.CampaignTier{MinAmount: min.String(), Multiplier: mul.String()})
	}
	return out
}

func splitsConfig(in []SplitInput, issues *[]eventstore.FieldIssue) []events.CampaignSplit {
	out := []events.CampaignSplit{}
	for i, s := range in {
		pc := s.Percent
		if pc == "" {
			pc = s.Percentage
		}
		p := parseDec(fmt.Sprintf("splits[%d].percent", i), pc, issues)
		out = append(out, events.CampaignSplit{StakeholderTypeCode: s.StakeholderTypeCode, Percentage: p.String()})
	}
	return out
}

// checkConfig validates a complete configuration.
func checkConfig(c *events.CampaignConfig) []eventstore.FieldIssue {
	var issues []eventstore.FieldIssue
	add := func(f, i string) { issues = append(issues, eventstore.FieldIssue{Field: f, Issue: i}) }
	if c.Name == "" || len(c.Name) > 200 {
		add("name", "is required, at most 200 characters")
	}
	if len(c.Description) > 2000 {
		add("description", "must be at most 2000 characters")
	}
	if c.Multiplier == "" {
		c.Multiplier = "1"
	}
	if m, err := decimal.NewFromString(c.Multiplier); err != nil || !m.IsPositive() || m.GreaterThan(decimal.NewFromInt(1000)) {
		add("multiplier", "must be a decimal greater than 0 and at most 1000")
	}
	if c.StartsAt != nil && c.EndsAt != nil && !c.EndsAt.After(*c.StartsAt) {
		add("endsAt", "must be after startsAt")
	}
	if c.ActionTypes == nil {
		c.ActionTypes = []string{}
	}
	for i, t := range c.ActionTypes {
		if !actionTypeRE.MatchString(t) {
			add(fmt.Sprintf("actionTypes[%d]", i), "must be an upper-case code such as PURCHASE")
		}
	}
	seenMin := map[string]bool{}
	for i, t := range c.Tiers {
		min, err1 := decimal.NewFromString(t.MinAmount)
		mul, err2 := decimal.NewFromString(t.Multiplier)
		if err1 != nil || min.IsNegative() || seenMin[min.String()] {
			add(fmt.Sprintf("tiers[%d].minAmount", i), "must be a distinct amount >= 0")
		}
		if err2 != nil || !mul.IsPositive() || mul.GreaterThan(decimal.NewFromInt(1000)) {
			add(fmt.Sprintf("tiers[%d].multiplier", i), "must be a decimal greater than 0 and at most 1000")
		}
		seenMin[min.String()] = true
	}
	sort.SliceStable(c.Tiers, func(i, j int) bool {
		return dec(c.Tiers[i].MinAmount).LessThan(dec(c.Tiers[j].MinAmount))
	})
	if len(c.Splits) > 0 {
		sum := decimal.Zero
		seen := map[string]bool{}
		for i, s := range c.Splits {
			p, err := decimal.NewFromString(s.Percentage)
			if err != nil || !p.IsPositive() {
				add(fmt.Sprintf("splits[%d].percent", i), "must be greater than 0")
			}
			if !actionTypeRE.MatchString(s.StakeholderTypeCode) || seen[s.StakeholderTypeCode] {
				add(fmt.Sprintf("splits[%d].stakeholderTypeCode", i), "must be a distinct upper-case code")
			}
			seen[s.StakeholderTypeCode] = true
			sum = sum.Add(p)
		}
		if !sum.Equal(decimal.NewFromInt(100)) {
			add("splits", "percents must add up to 100")
		}
	}
	if c.Tiers == nil {
		c.Tiers = []events.CampaignTier{}
	}
	if c.Splits == nil {
		c.Splits = []events.CampaignSplit{}
	}
	if c.TokenBudget != nil && *c.TokenBudget <= 0 {
		add("budget", "must be a positive whole number of tokens")
	}
	return issues
}

var campaignMoves = map[string][]string{
	CampaignDraft:     {CampaignScheduled, CampaignActive, CampaignEnded},
	CampaignScheduled: {CampaignDraft, CampaignActive, CampaignEnded},
	CampaignActive:    {CampaignPaused, CampaignEnded},
	CampaignPaused:    {CampaignActive, CampaignEnded},
}

func canMove(from, to string) bool {
	for _, s := range campaignMoves[from] {
		if s == to {
			return true
		}
	}
	return false
}

// checkActivation refuses a second ACTIVE campaign in the tenant.
func (cs *Campaigns) checkActivation(id string) error {
	if cs.Active != "" && cs.Active != id {
		return eventstore.Errorf(eventstore.KindConflict, "CAMPAIGN_ALREADY_ACTIVE", "campaign %s is already active; pause or end it first", cs.Active)
	}
	return nil
}

func checkCampaignPool(ss *eventstore.Session, sc eventstore.Tenant, poolID string) error {
	if poolID == "" {
		return nil
	}
	p, _, err := loadPool(ss, poolID)
	if err != nil {
		return err
	}
	if !p.Provisioned || !p.ownedBy(sc) {
		e := eventstore.Errorf(eventstore.KindNotFound, "POOL_NOT_FOUND", "no token pool %s in this environment", poolID)
		e.Details = []eventstore.FieldIssue{{Field: "tokenPoolId", Issue: "unknown pool"}}
		return e
	}
	return nil
}

// CampaignOutcome names the campaign a command touched.
type CampaignOutcome struct {
	CampaignID string
	Position   int64
	// Campaign is the campaign as the command left it, so a caller can
	// answer without waiting for the read model: a client retrying after
	// a "lagging" answer would create a second campaign.
	Campaign CampaignState
}

// campaignAfter is the campaign as it is once evs (a command's events) apply to
// before (its state when the command decided; zero for a new campaign).
func campaignAfter(before CampaignState, id string, evs []events.Event) (CampaignState, error) {
	cs := &Campaigns{ByID: map[string]*CampaignState{}}
	if before.ID != "" {
		cs.ByID[id] = &before
	}
	for _, e := range evs {
		if err := cs.Apply(e); err != nil {
			return CampaignState{}, err
		}
	}
	if c := cs.ByID[id]; c != nil {
		return *c, nil
	}
	return CampaignState{}, fmt.Errorf("ledger: campaign %s missing after its command", id)
}

// CreateCampaign creates a campaign in status DRAFT (default), SCHEDULED
// (needs startsAt) or ACTIVE.
func (s *Service) CreateCampaign(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, in CampaignInput) (CampaignOutcome, error) {
	if in.Budget != nil {
		in.TokenBudget = in.Budget
	}
	var issues []eventstore.FieldIssue
	cfg := events.CampaignConfig{Name: in.Name, Description: in.Description, StartsAt: utcPtr(in.StartsAt), EndsAt: utcPtr(in.EndsAt),
		ActionTypes: in.ActionTypes, Tiers: tiersConfig(in.Tiers, &issues), Splits: splitsConfig(in.Splits, &issues),
		TokenBudget: in.TokenBudget, TokenPoolID: in.TokenPoolID}
	if in.Multiplier != "" {
		cfg.Multiplier = parseDec("multiplier", in.Multiplier, &issues).String()
	}
	issues = append(issues, checkConfig(&cfg)...)
	status := in.Status
	if status == "" {
		status = CampaignDraft
	}
	if status != CampaignDraft && status != CampaignScheduled && status != CampaignActive {
		issues = append(issues, eventstore.FieldIssue{Field: "status", Issue: "must be DRAFT, SCHEDULED or ACTIVE"})
	}
	if status == CampaignScheduled && cfg.StartsAt == nil {
		issues = append(issues, eventstore.FieldIssue{Field: "startsAt", Issue: "is required for a SCHEDULED campaign"})
	}
	if len(issues) > 0 {
		return CampaignOutcome{}, eventstore.Invalid("invalid campaign", issues...)
	}
	out := CampaignOutcome{CampaignID: eventstore.NewID("cmp")}
	res, err := s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		st, err := ss.Load(CampaignsStream(sc))
		if err != nil {
			return err
		}
		cs := st.State.(*Campaigns)
		if status == CampaignActive {
			if err := cs.checkActivation(out.CampaignID); err != nil {
				return err
			}
		}
		if err := checkCampaignPool(ss, sc, cfg.TokenPoolID); err != nil {
			return err
		}
		ss.Emit(st.ID, events.CampaignCreated{CampaignID: out.CampaignID, Status: status, Config: cfg})
		return nil
	}})
	out.Position = res.Position
	if err != nil {
		return out, err
	}
	out.Campaign, err = campaignAfter(CampaignState{}, out.CampaignID, res.Events)
	return out, err
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

// UpdateCampaign changes a campaign's configuration and/or status. An
// ENDED campaign cannot change; the budget cannot drop below what is spent.
func (s *Service) UpdateCampaign(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, id string, p CampaignPatch) (CampaignOutcome, error) {
	pp, err := parsePatch(p)
	if err != nil {
		return CampaignOutcome{}, err
	}
	out := CampaignOutcome{CampaignID: id}
	var before CampaignState
	res, err := s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		st, err := ss.Load(CampaignsStream(sc))
		if err != nil {
			return err
		}
		cs := st.State.(*Campaigns)
		c := cs.ByID[id]
		if c == nil {
			return eventstore.Errorf(eventstore.KindNotFound, "CAMPAIGN_NOT_FOUND", "no campaign %s", id)
		}
		// A copy: the cached state keeps changing after this command.
		before = *c
		if c.Status == CampaignEnded {
			return eventstore.Errorf(eventstore.KindConflict, "CAMPAIGN_ENDED", "campaign %s has ended and cannot change", id)
		}
		cfg := c.Config
		cfg.ActionTypes = append([]string(nil), cfg.ActionTypes...)
		changed := pp.apply(&cfg)
		to, err := pp.checkUpdate(ss, sc, cs, c, &cfg)
		if err != nil {
			return err
		}
		if !changed && to == c.Status {
			return eventstore.Invalid("nothing to update", eventstore.FieldIssue{Field: "body", Issue: "give at least one field to change"})
		}
		if changed {
			ss.Emit(st.ID, events.CampaignUpdated{CampaignID: id, Config: cfg})
		}
		if to != c.Status {
			ss.Emit(st.ID, events.CampaignStatusChanged{CampaignID: id, From: c.Status, To: to, Reason: "updated by partner"})
		}
		return nil
	}})
	out.Position = res.Position
	if err != nil {
		return out, err
	}
	out.Campaign, err = campaignAfter(before, id, res.Events)
	return out, err
}

// parsedPatch is a campaign patch whose decimals, tiers and splits parsed.
type parsedPatch struct {
	CampaignPatch
	tiers  []events.CampaignTier
	splits []events.CampaignSplit
	mult   string
}

// parsePatch checks everything in a patch that needs no state.
func parsePatch(p CampaignPatch) (parsedPatch, error) {
	if p.Budget != nil {
		p.TokenBudget = p.Budget
	}
	pp := parsedPatch{CampaignPatch: p}
	var issues []eventstore.FieldIssue
	if p.Tiers != nil {
		pp.tiers = tiersConfig(*p.Tiers, &issues)
	}
	if p.Splits != nil {
		pp.splits = splitsConfig(*p.Splits, &issues)
	}
	if p.Multiplier != nil {
		pp.mult = parseDec("multiplier", *p.Multiplier, &issues).String()
	}
	if len(issues) > 0 {
		return parsedPatch{}, eventstore.Invalid("invalid campaign update", issues...)
	}
	return pp, nil
}

// apply writes the patch's fields into cfg and reports whether it named any.
func (pp parsedPatch) apply(cfg *events.CampaignConfig) (changed bool) {
	set := func(given bool, apply func()) {
		if given {
			apply()
			changed = true
		}
	}
	set(pp.Name != nil, func() { cfg.Name = *pp.Name })
	set(pp.Description != nil, func() { cfg.Description = *pp.Description })
	set(pp.StartsAt != nil, func() { cfg.StartsAt = utcPtr(pp.StartsAt) })
	set(pp.EndsAt != nil, func() { cfg.EndsAt = utcPtr(pp.EndsAt) })
	set(pp.ActionTypes != nil, func() { cfg.ActionTypes = *pp.ActionTypes })
	set(pp.Multiplier != nil, func() { cfg.Multiplier = pp.mult })
	set(pp.Tiers != nil, func() { cfg.Tiers = pp.tiers })
	set(pp.Splits != nil, func() { cfg.Splits = pp.splits })
	set(pp.TokenBudget != nil, func() { b := *pp.TokenBudget; cfg.TokenBudget = &b })
	set(pp.TokenPoolID != nil, func() { cfg.TokenPoolID = *pp.TokenPoolID })
	return changed
}

// checkUpdate checks the patched configuration cfg of campaign c against
// the tenant's state, and returns the status the campaign moves to.
func (pp parsedPatch) checkUpdate(ss *eventstore.Session, sc eventstore.Tenant, cs *Campaigns, c *CampaignState, cfg *events.CampaignConfig) (string, error) {
	issues := checkConfig(cfg)
	if len(issues) == 0 && cfg.TokenBudget != nil && *cfg.TokenBudget < c.Net() {
		return "", eventstore.Errorf(eventstore.KindConflict, "BUDGET_BELOW_USED", "the budget cannot be below the %d tokens already distributed", c.Net())
	}
	to := c.Status
	if pp.Status != nil && *pp.Status != c.Status {
		to = *pp.Status
		if !canMove(c.Status, to) {
			return "", eventstore.Errorf(eventstore.KindConflict, "INVALID_STATUS_TRANSITION", "a %s campaign cannot become %s", c.Status, to)
		}
		if to == CampaignScheduled && cfg.StartsAt == nil {
			issues = append(issues, eventstore.FieldIssue{Field: "startsAt", Issue: "is required for a SCHEDULED campaign"})
		}
	}
	if len(issues) > 0 {
		return "", eventstore.Invalid("invalid campaign update", issues...)
	}
	if pp.TokenPoolID != nil {
		if err := checkCampaignPool(ss, sc, cfg.TokenPoolID); err != nil {
			return "", err
		}
	}
	if to == CampaignActive && c.Status != CampaignActive {
		if err := cs.checkActivation(c.ID); err != nil {
			return "", err
		}
	}
	return to, nil
}

// AdvanceCampaign starts a SCHEDULED campaign whose start has come and ends
// an ACTIVE or PAUSED one whose end has passed. It re-checks everything
// against current state, so several schedulers may race on it safely: the
// loser changes nothing. It reports whether it changed the campaign.
func (s *Service) AdvanceCampaign(ctx context.Context, sc eventstore.Tenant, id string) (bool, error) {
	changed := false
	_, err := s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: events.Metadata{Actor: "system:campaign-scheduler"}, Decide: func(ss *eventstore.Session) error {
		changed = false
		st, err := ss.Load(CampaignsStream(sc))
		if err != nil {
			return err
		}
		cs := st.State.(*Campaigns)
		c := cs.ByID[id]
		if c == nil {
			return nil
		}
		now := ss.Now()
		ended := c.Config.EndsAt != nil && !now.Before(*c.Config.EndsAt)
		switch {
		case ended && (c.Status == CampaignActive || c.Status == CampaignPaused || c.Status == CampaignScheduled):
			ss.Emit(st.ID, events.CampaignStatusChanged{CampaignID: id, From: c.Status, To: CampaignEnded, Reason: "schedule ended"})
			changed = true
		case c.Status == CampaignScheduled && c.Config.StartsAt != nil && !now.Before(*c.Config.StartsAt):
			if cs.checkActivation(id) != nil {
				return nil // another campaign is active: stay scheduled
			}
			ss.Emit(st.ID, events.CampaignStatusChanged{CampaignID: id, From: c.Status, To: CampaignActive, Reason: "schedule started"})
			changed = true
		}
		return nil
	}})
	return changed, err
}

// applies reports whether an ACTIVE campaign rewards actionType at now.
func (c *CampaignState) applies(actionType string, now time.Time) bool {
	if c.Status != CampaignActive {
		return false
	}
	if c.Config.StartsAt != nil && now.Before(*c.Config.StartsAt) || c.Config.EndsAt != nil && !now.Before(*c.Config.EndsAt) {
		return false
	}
	if len(c.Config.ActionTypes) == 0 {
		return true
	}
	for _, t := range c.Config.ActionTypes {
		if t == actionType {
			return true
		}
	}
	return false
}

// multiplierFor is the campaign's multiplier for amount: the highest tier
// whose minAmount the amount reaches, else the base multiplier.
func (c *CampaignState) multiplierFor(amount decimal.Decimal) decimal.Decimal {
	m := dec(c.Config.Multiplier)
	for _, t := range c.Config.Tiers { // ascending by minAmount
		if amount.GreaterThanOrEqual(dec(t.MinAmount)) {
			m = dec(t.Multiplier)
		}
	}
	return m
}

// weights turns the campaign's splits into one weight per stakeholder:
// each type's percentage is shared equally by the stakeholders of that
// type; types with no stakeholder in the action drop out (the others are
// scaled up); stakeholders of a type without a split get nothing. If no
// stakeholder matches any split, nil (the equal split applies).
func (c *CampaignState) weights(rewards []events.ActionReward) []decimal.Decimal {
	if len(c.Config.Splits) == 0 {
		return nil
	}
	pct := map[string]decimal.Decimal{}
	for _, s := range c.Config.Splits {
		pct[s.StakeholderTypeCode] = dec(s.Percentage)
	}
	n := map[string]int64{}
	for _, r := range rewards {
		n[r.StakeholderTypeCode]++
	}
	out := make([]decimal.Decimal, len(rewards))
	any := false
	for i, r := range rewards {
		if p, ok := pct[r.StakeholderTypeCode]; ok {
			out[i] = p.Div(decimal.NewFromInt(n[r.StakeholderTypeCode]))
			any = true
		}
	}
	if !any {
		return nil
	}
	return out
}

// dec parses a decimal already validated when it was stored.
func dec(s string) decimal.Decimal {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Zero
	}
	return d
}
