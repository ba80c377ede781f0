package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Action statuses.
const (
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
	StatusReversed  = "REVERSED"
)

// Action is one action stream's state.
type Action struct {
	ID          string
	PartnerID   string
	Environment string
	Status      string
	RequestHash string
	Completed   *events.ActionCompleted
	Attempts    int
}

// Apply implements eventstore.Aggregate.
func (a *Action) Apply(e events.Event) error {
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	return a.ApplyPayload(e, pl)
}

// ApplyPayload implements eventstore.PayloadApplier: Apply with the
// payload already decoded.
func (a *Action) ApplyPayload(e events.Event, pl events.Payload) error {
	a.PartnerID, a.Environment = e.PartnerID, e.Environment
	switch v := pl.(type) {
	case events.ActionCompleted:
		a.ID, a.Status, a.RequestHash, a.Completed = v.ActionID, StatusCompleted, v.RequestHash, &v
		a.Attempts++
	case events.ActionFailed:
		a.ID, a.Status, a.RequestHash = v.ActionID, StatusFailed, v.RequestHash
		a.Attempts++
	case events.ActionReversed:
		a.Status = StatusReversed
	}
	return nil
}

func init() {
	eventstore.RegisterAggregate("action-", func() eventstore.Aggregate { return &Action{} })
}

// StakeholderInput is one person an action rewards.
type StakeholderInput struct {
	StakeholderTypeCode string
	PartnerUserID       string
	UserEmail           string
	UserFirstName       string
	UserLastName        string
}

// ActionInput is the submit body of CONTRACT §4.
type ActionInput struct {
	IdempotencyKey  string
	ActionType      string
	Amount          string
	Currency        string
	Stakeholders    []StakeholderInput
	AutoCreateUsers bool
	Metadata        json.RawMessage
	CampaignID      string
	TokenPoolID     string
}

// ActionOutcome is what SubmitAction decided. On a recorded failure the
// error is returned too, and ActionID/Status say what was recorded.
type ActionOutcome struct {
	ActionID       string
	IdempotencyKey string
	TransactionIDs []string
	Status         string
	Replayed       bool
	// Completed is the recorded completion (nil unless Status is
	// COMPLETED): a replay carries the original one, so the transport can
	// answer it with the same bytes as the first time.
	Completed         *events.ActionCompleted
	TokensDistributed int64
	Position          int64
}

var actionTypeRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

type normalizedAction struct {
	in       ActionInput
	amount   decimal.Decimal
	metadata json.RawMessage
	hash     string
}

// validateAction checks everything that needs no state and returns the
// normalized input with its fingerprint.
func validateAction(in ActionInput, prefix string) (normalizedAction, *eventstore.Error) {
	var issues []eventstore.FieldIssue
	add := func(field, issue string) {
		issues = append(issues, eventstore.FieldIssue{Field: prefix + field, Issue: issue})
	}
	n := normalizedAction{in: in}
	switch {
	case strings.TrimSpace(in.IdempotencyKey) == "":
		add("idempotencyKey", "is required")
	case len(in.IdempotencyKey) > 255:
		add("idempotencyKey", "must be at most 255 characters")
	case !wellFormedID(in.IdempotencyKey):
		add("idempotencyKey", idCharsIssue)
	}
	switch {
	case in.ActionType == "":
		add("actionType", "is required")
	case !actionTypeRE.MatchString(in.ActionType):
		add("actionType", "must be an upper-case code such as PURCHASE, DONATION or VOLUNTEER")
	}
	minor, knownCurrency := MinorUnits(in.Currency)
	if in.Currency == "" {
		add("currency", "is required")
	} else if !knownCurrency {
		add("currency", "must be a supported ISO 4217 code such as USD")
	}
	if in.Amount == "" {
		add("amount", "is required")
	} else if d, err := decimal.NewFromString(string(in.Amount)); err != nil {
		add("amount", "must be a decimal number")
	} else if !d.IsPositive() {
		add("amount", "must be greater than zero")
	} else if d.GreaterThan(decimal.New(1, 12)) {
		add("amount", "must be at most 1000000000000")
	} else if knownCurrency && !d.Round(minor).Equal(d) {
		add("amount", fmt.Sprintf("has more decimals than %s allows (%d)", in.Currency, minor))
	} else {
		n.amount = d
	}
	if len(in.Stakeholders) == 0 {
		add("stakeholders", "must name at least one stakeholder")
	} else if len(in.Stakeholders) > 20 {
		add("stakeholders", "must name at most 20 stakeholders")
	}
	seen := map[string]bool{}
	for i, sh := range in.Stakeholders {
		f := fmt.Sprintf("stakeholders[%d].", i)
		if fi := checkExternalID(f+"partnerUserId", sh.PartnerUserID); fi != nil {
			add(fi.Field, fi.Issue)
		} else if seen[sh.PartnerUserID] {
			add(f+"partnerUserId", "names the same user twice")
		}
		seen[sh.PartnerUserID] = true
		if sh.StakeholderTypeCode == "" {
			add(f+"stakeholderTypeCode", "is required")
		} else if !actionTypeRE.MatchString(sh.StakeholderTypeCode) {
			add(f+"stakeholderTypeCode", "must be an upper-case code such as CUSTOMER")
		}
		for _, fi := range []*eventstore.FieldIssue{checkEmail(f+"userEmail", sh.UserEmail), checkName(f+"userFirstName", sh.UserFirstName), checkName(f+"userLastName", sh.UserLastName)} {
			if fi != nil {
				add(fi.Field, fi.Issue)
			}
		}
	}
	md, fi := checkMetadata("metadata", in.Metadata)
	if fi != nil {
		add(fi.Field, fi.Issue)
	}
	n.metadata = md
	if len(issues) > 0 {
		return n, eventstore.Invalid("invalid action", issues...)
	}
	n.hash = fingerprint(in, n.amount, md)
	return n, nil
}

// fingerprint is the idempotency fingerprint of an action: what must match
// for a repeated idempotency key to be a replay. Its encoding is frozen —
// stored actions carry it — so it has its own field names, independent of
// any wire format.
func fingerprint(in ActionInput, amount decimal.Decimal, metadata json.RawMessage) string {
	type stakeholder struct {
		StakeholderTypeCode string `json:"stakeholderTypeCode"`
		PartnerUserID       string `json:"partnerUserId"`
		UserEmail           string `json:"userEmail"`
		UserFirstName       string `json:"userFirstName"`
		UserLastName        string `json:"userLastName"`
	}
	var shs []stakeholder
	if in.Stakeholders != nil {
		shs = make([]stakeholder, len(in.Stakeholders))
		for i, sh := range in.Stakeholders {
			shs[i] = stakeholder(sh)
		}
	}
	fp, _ := json.Marshal(struct {
		ActionType   string          `json:"a"`
		Amount       string          `json:"m"`
		Currency     string          `json:"c"`
		Stakeholders []stakeholder   `json:"s"`
		AutoCreate   bool            `json:"u"`
		Metadata     json.RawMessage `json:"d"`
		CampaignID   string          `json:"k"`
		PoolID       string          `json:"p"`
	}{in.ActionType, amount.String(), in.Currency, shs, in.AutoCreateUsers, metadata, in.CampaignID, in.TokenPoolID})
	h := sha256.Sum256(fp)
	return hex.EncodeToString(h[:])
}

// SubmitAction rewards one action. Everything is decided in one command:
// idempotency, users, reward arithmetic, pool and campaign budget, so no
// concurrent caller can interleave. A replay returns Replayed with the
// original completion. Refusals that are recorded (empty or expired pool,
// exhausted budget) return the outcome AND the error.
func (s *Service) SubmitAction(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, in ActionInput) (ActionOutcome, error) {
	n, verr := validateAction(in, "")
	if verr != nil {
		return ActionOutcome{}, verr
	}
	sub := newSubmission(sc, n)
	res, err := s.store.Execute(ctx, sub.command(meta))
	return sub.result(res, err)
}

// MaxBulkActions is the most actions one bulk request may carry.
const MaxBulkActions = 100

// BulkItem is one bulk input's outcome: Err is nil for a completed action
// or a replay.
type BulkItem struct {
	Outcome ActionOutcome
	Err     error
}

// SubmitBulk submits the actions as one bundle: they are decided in the
// order given, each seeing the ones before it — the pool balance and
// budget they spent, and their idempotency keys, so a repeated key is a
// replay of the first (or IDEMPOTENCY_KEY_REUSED if its body differs) —
// and they commit together in one transaction. Each item still succeeds or
// fails on its own; an item that fails validation is refused without being
// decided. The error is for the request as a whole (the store failed).
func (s *Service) SubmitBulk(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, ins []ActionInput) ([]BulkItem, error) {
	if len(ins) == 0 {
		return nil, eventstore.Invalid("no actions given", eventstore.FieldIssue{Field: "actions", Issue: "must hold 1 to 100 actions"})
	}
	if len(ins) > MaxBulkActions {
		e := eventstore.Errorf(eventstore.KindInvalid, "TOO_MANY_ACTIONS", "a bulk request holds at most %d actions; got %d", MaxBulkActions, len(ins))
		e.Details = []eventstore.FieldIssue{{Field: "actions", Issue: "must hold at most 100 actions"}}
		return nil, e
	}
	out := make([]BulkItem, len(ins))
	subs := make([]*submission, len(ins))
	var cmds []eventstore.Command
	for i, in := range ins {
		n, verr := validateAction(in, fmt.Sprintf("actions[%d].", i))
		if verr != nil {
			out[i].Err = verr
			continue
		}
		subs[i] = newSubmission(sc, n)
		cmds = append(cmds, subs[i].command(meta))
	}
	if len(cmds) == 0 {
		return out, nil
	}
	outcomes, err := s.store.ExecuteAll(ctx, cmds)
	if err != nil {
		return nil, err
	}
	j := 0
	for i, sub := range subs {
		if sub == nil {
			continue
		}
		o, err := sub.result(outcomes[j].Result, outcomes[j].Err)
		out[i] = BulkItem{Outcome: o, Err: err}
		j++
	}
	return out, nil
}

// submission is one action being decided: its validated input and, once
// decided, its outcome and a recorded refusal (a failed action).
type submission struct {
	sc       eventstore.Tenant
	n        normalizedAction
	actionID string // ActionID of the idempotency key, derived once
	out      ActionOutcome
	refusal  *eventstore.Error
}

func newSubmission(sc eventstore.Tenant, n normalizedAction) *submission {
	return &submission{sc: sc, n: n, actionID: ActionID(sc, n.in.IdempotencyKey)}
}

// command is the submission as a store command. Its prefetch names every
// other stream the decision may read, so a group commit loads them in one
// query. The action's own stream is Fresh: it exists only when the
// idempotency key is reused, so the store decides it as empty without
// reading it, and the append's stream-version key catches a reuse the
// store had not cached.
func (sub *submission) command(meta events.Metadata) eventstore.Command {
	in, sc := sub.n.in, sub.sc
	prefetch := []string{CampaignsStream(sc), PoolStream(DefaultPoolID(sc))}
	if in.TokenPoolID != "" {
		prefetch = append(prefetch, PoolStream(in.TokenPoolID))
	}
	for _, sh := range in.Stakeholders {
		prefetch = append(prefetch, EndUserStream(sc, sh.PartnerUserID))
	}
	return eventstore.Command{Tenant: sc, Metadata: meta, Prefetch: prefetch, Fresh: []string{ActionStream(sub.actionID)}, Decide: sub.decide}
}

// result is what the caller hears once the command ran.
func (sub *submission) result(res eventstore.Result, err error) (ActionOutcome, error) {
	sub.out.Position = res.Position
	if err != nil {
		return ActionOutcome{}, err
	}
	if sub.refusal != nil {
		return sub.out, sub.refusal
	}
	return sub.out, nil
}

// decide is the whole decision of one action. It may run more than once
// (a re-decided group), so it starts from a clean outcome every time.
func (sub *submission) decide(ss *eventstore.Session) error {
	in, n := sub.n.in, sub.n
	sub.refusal = nil
	sub.out = ActionOutcome{ActionID: sub.actionID, IdempotencyKey: in.IdempotencyKey}
	stream := ActionStream(sub.out.ActionID)
	ast, err := ss.Load(stream)
	if err != nil {
		return err
	}
	if act := ast.State.(*Action); ast.Version > 0 {
		if act.RequestHash != n.hash {
			return eventstore.Errorf(eventstore.KindUnprocessable, "IDEMPOTENCY_KEY_REUSED", "idempotencyKey %q was already used with a different request body", in.IdempotencyKey)
		}
		if act.Completed != nil {
			sub.out.Replayed, sub.out.Status, sub.out.Completed = true, act.Status, act.Completed
			sub.out.TokensDistributed, sub.out.TransactionIDs = act.Completed.TokensDistributed, act.Completed.TransactionIDs
			return nil
		}
	}
	rewards, err := sub.stakeholders(ss)
	if err != nil {
		return err
	}
	pool, poolID, plan, err := sub.poolAndPlan(ss, rewards)
	if err != nil {
		return err
	}
	if refusal := sub.refusalOf(ss, pool, poolID, plan); refusal != nil {
		sub.refusal = refusal
		sub.out.Status = StatusFailed
		ss.Emit(stream, events.ActionFailed{ActionID: sub.out.ActionID, IdempotencyKey: in.IdempotencyKey, ActionType: in.ActionType,
			Amount: n.amount.String(), Currency: in.Currency, Status: StatusFailed, TransactionIDs: []string{}, Stakeholders: rewards,
			PoolID: poolID, CampaignID: plan.campaignID, Metadata: n.metadata, Code: refusal.Code, Reason: refusal.Message, RequestHash: n.hash})
		return nil
	}
	sub.complete(ss, pool, poolID, plan, rewards)
	return nil
}

// stakeholders resolves each stakeholder to an end user, creating the
// unknown ones when the request allows it.
func (sub *submission) stakeholders(ss *eventstore.Session) ([]events.ActionReward, error) {
	in, sc := sub.n.in, sub.sc
	rewards := make([]events.ActionReward, len(in.Stakeholders))
	for i, sh := range in.Stakeholders {
		ust, err := ss.Load(EndUserStream(sc, sh.PartnerUserID))
		if err != nil {
			return nil, err
		}
		uid := EndUserID(sc, sh.PartnerUserID)
		if !ust.State.(*EndUser).Exists {
			if !in.AutoCreateUsers {
				e := eventstore.Errorf(eventstore.KindUnprocessable, "USER_NOT_FOUND", "stakeholder %q is not a known user; create it first or set autoCreateUsers", sh.PartnerUserID)
				e.Details = []eventstore.FieldIssue{{Field: fmt.Sprintf("stakeholders[%d].partnerUserId", i), Issue: "unknown user"}}
				return nil, e
			}
			ss.Emit(ust.ID, events.EndUserCreated{UserID: uid, ExternalID: sh.PartnerUserID, Email: sh.UserEmail,
				FirstName: sh.UserFirstName, LastName: sh.UserLastName, AutoCreated: true})
		}
		rewards[i] = events.ActionReward{StakeholderTypeCode: sh.StakeholderTypeCode, PartnerUserID: sh.PartnerUserID, UserID: uid}
	}
	return rewards, nil
}

// poolAndPlan finds the pool the action draws from — the one it names, or
// its campaign's, or the default — and plans the reward arithmetic.
func (sub *submission) poolAndPlan(ss *eventstore.Session, rewards []events.ActionReward) (*Pool, string, rewardPlan, error) {
	in, sc := sub.n.in, sub.sc
	poolID := in.TokenPoolID
	if poolID == "" {
		poolID = DefaultPoolID(sc)
	}
	pool, _, err := loadPool(ss, poolID)
	if err != nil {
		return nil, "", rewardPlan{}, err
	}
	if in.TokenPoolID != "" && (!pool.Provisioned || !pool.ownedBy(sc)) {
		return nil, "", rewardPlan{}, eventstore.Errorf(eventstore.KindNotFound, "POOL_NOT_FOUND", "no token pool %s in this environment", in.TokenPoolID)
	}
	plan, cerr := planReward(ss, sc, sub.n, rewards)
	if cerr != nil {
		return nil, "", rewardPlan{}, cerr
	}
	if plan.poolID != "" && plan.poolID != poolID {
		if pool, _, err = loadPool(ss, plan.poolID); err != nil {
			return nil, "", rewardPlan{}, err
		}
		poolID = plan.poolID
	}
	return pool, poolID, plan, nil
}

// refusalOf is why the action cannot be paid, recorded as a failed action;
// nil when it can.
func (sub *submission) refusalOf(ss *eventstore.Session, pool *Pool, poolID string, plan rewardPlan) *eventstore.Error {
	switch {
	case pool.Provisioned && pool.Expired(ss.Now()):
		return eventstore.Errorf(eventstore.KindUnprocessable, "POOL_EXPIRED", "token pool %s expired at %s", poolID, pool.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	case !pool.Provisioned:
		return eventstore.Errorf(eventstore.KindInsufficient, "INSUFFICIENT_POOL", "there is no approved token pool in %s; request an allocation first", sub.sc.Environment)
	case pool.Available() < plan.total:
		return eventstore.Errorf(eventstore.KindInsufficient, "INSUFFICIENT_POOL", "the token pool has %d tokens available; this action needs %d", pool.Available(), plan.total)
	case plan.budgetShort != nil:
		return plan.budgetShort
	}
	return nil
}

// complete records the rewarded action and debits its pool and budget.
func (sub *submission) complete(ss *eventstore.Session, pool *Pool, poolID string, plan rewardPlan, rewards []events.ActionReward) {
	in, n, actionID := sub.n.in, sub.n, sub.out.ActionID
	txids := []string{}
	for i := range rewards {
		rewards[i].Tokens = plan.parts[i]
		if plan.parts[i] > 0 {
			rewards[i].TransactionID = transactionID(actionID, "reward", i)
			txids = append(txids, rewards[i].TransactionID)
		}
	}
	done := events.ActionCompleted{ActionID: actionID, IdempotencyKey: in.IdempotencyKey, ActionType: in.ActionType,
		Amount: n.amount.String(), Currency: in.Currency, Status: StatusCompleted, TokensDistributed: plan.total,
		TransactionIDs: txids, Stakeholders: rewards, PoolID: poolID, CampaignID: plan.campaignID, Metadata: n.metadata, RequestHash: n.hash}
	ss.Emit(ActionStream(actionID), done)
	if plan.total > 0 {
		ss.EmitCoalescing(PoolStream(poolID), events.PoolDebited{PoolID: poolID, ActionIDs: []string{actionID}, Amount: plan.total})
		pool.afterDebit(ss, sub.sc, plan.total)
		plan.emitBudget(ss, actionID)
	}
	sub.out.Status, sub.out.Completed, sub.out.TokensDistributed, sub.out.TransactionIDs = StatusCompleted, &done, plan.total, txids
}

// ReverseAction reverses a completed action: the stakeholders' tokens are
// taken back and returned to the pool (and to the campaign budget).
func (s *Service) ReverseAction(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, actionID, reason string) (eventstore.Result, error) {
	if len(reason) > 1000 {
		return eventstore.Result{}, eventstore.Invalid("invalid reversal", eventstore.FieldIssue{Field: "reason", Issue: "must be at most 1000 characters"})
	}
	if reason == "" {
		reason = "reversed by partner"
	}
	return s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		_, err := reverse(ss, sc, actionID, reason)
		return err
	}})
}

// reverse is the decision of a reversal, shared by ReverseAction and a
// refunded donation: it emits the reversal and the pool and budget
// credits, and returns the tokens taken back.
func reverse(ss *eventstore.Session, sc eventstore.Tenant, actionID, reason string) (int64, error) {
	st, err := ss.Load(ActionStream(actionID))
	if err != nil {
		return 0, err
	}
	a := st.State.(*Action)
	if st.Version == 0 || a.PartnerID != sc.PartnerID || a.Environment != sc.Environment {
		return 0, eventstore.Errorf(eventstore.KindNotFound, "ACTION_NOT_FOUND", "no action %s", actionID)
	}
	switch a.Status {
	case StatusReversed:
		return 0, eventstore.Errorf(eventstore.KindConflict, "ALREADY_REVERSED", "action %s is already reversed", actionID)
	case StatusFailed:
		return 0, eventstore.Errorf(eventstore.KindConflict, "NOT_REVERSIBLE", "action %s failed and has nothing to reverse", actionID)
	}
	c := a.Completed
	rewards := make([]events.ActionReward, len(c.Stakeholders))
	txids := []string{}
	for i, r := range c.Stakeholders {
		r.TransactionID = ""
		if r.Tokens > 0 {
			r.TransactionID = transactionID(actionID, "reversal", i)
			txids = append(txids, r.TransactionID)
		}
		rewards[i] = r
	}
	ss.Emit(st.ID, events.ActionReversed{ActionID: actionID, IdempotencyKey: c.IdempotencyKey, ActionType: c.ActionType,
		Amount: c.Amount, Currency: c.Currency, Status: StatusReversed, TokensDistributed: c.TokensDistributed,
		TokensReversed: c.TokensDistributed, TransactionIDs: txids, Stakeholders: rewards, PoolID: c.PoolID,
		CampaignID: c.CampaignID, Reason: reason})
	if c.TokensDistributed > 0 {
		ss.Emit(PoolStream(c.PoolID), events.PoolCredited{PoolID: c.PoolID, ActionID: actionID, Amount: c.TokensDistributed, Reason: "reversal"})
		if err := creditCampaign(ss, sc, c); err != nil {
			return 0, err
		}
	}
	return c.TokensDistributed, nil
}
