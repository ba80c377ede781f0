package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// RewardDeps are what the reward endpoints need: the store for commands,
// a querier for the read models, and how long a read may wait for the
// read model to reflect the partner's last write.
type RewardDeps struct {
	Ledger   *ledger.Service
	DB       eventstore.Querier
	ReadWait time.Duration
}

type rewardsAPI struct{ RewardDeps }

// RewardHandlers implements the users, actions, token-pools and
// transactions endpoints.
func RewardHandlers(d RewardDeps) map[RouteKey]http.HandlerFunc {
	if d.ReadWait <= 0 {
		d.ReadWait = 2 * time.Second
	}
	a := &rewardsAPI{d}
	hs := map[RouteKey]http.HandlerFunc{
		{http.MethodGet, "/v1/partner/users"}:                          a.listUsers,
		{http.MethodPost, "/v1/partner/users"}:                         a.createUser,
		{http.MethodGet, "/v1/partner/users/:externalId"}:              a.getUser,
		{http.MethodPatch, "/v1/partner/users/:externalId"}:            a.updateUser,
		{http.MethodGet, "/v1/partner/users/:externalId/balance"}:      a.userBalance,
		{http.MethodGet, "/v1/partner/users/:externalId/transactions"}: a.userTransactions,
		{http.MethodPost, "/v1/partner/actions/submit"}:                a.submitAction,
		{http.MethodGet, "/v1/partner/actions"}:                        a.listActions,
		{http.MethodPost, "/v1/partner/actions/bulk"}:                  a.bulkActions,
		{http.MethodGet, "/v1/partner/actions/bulk/:jobId"}:            a.bulkJob,
		{http.MethodGet, "/v1/partner/actions/:id"}:                    a.getAction,
		{http.MethodPost, "/v1/partner/actions/:actionId/reverse"}:     a.reverseAction,
		{http.MethodGet, "/v1/partner/token-pools"}:                    a.listPools,
		{http.MethodPost, "/v1/partner/token-pools/request"}:           a.requestAllocation,
		{http.MethodGet, "/v1/partner/token-pools/requests"}:           a.listRequests,
		{http.MethodGet, "/v1/partner/token-pools/:id/balance"}:        a.poolBalance,
		{http.MethodGet, "/v1/partner/transactions"}:                   a.listTransactions,
		{http.MethodGet, "/v1/partner/transactions/:id"}:               a.getTransaction,
	}
	for k, h := range a.campaignHandlers() {
		hs[k] = h
	}
	for k, h := range a.dashboardHandlers() {
		hs[k] = h
	}
	return hs
}

// scope is the tenant of a key-authenticated request.
func scope(r *http.Request) (eventstore.Tenant, error) { return tenantOf(r) }

func commandMeta(r *http.Request) events.Metadata {
	m := events.Metadata{RequestID: requestIDFrom(r.Context())}
	if p, ok := PrincipalFrom(r.Context()); ok {
		m.Actor = "key:" + p.KeyID
	}
	return m
}

// readTenant is the one read-your-writes gate of every read endpoint: it
// waits until the read model reflects the tenant's last committed event.
func (a *rewardsAPI) readTenant(r *http.Request) (eventstore.Tenant, error) {
	sc, err := scope(r)
	if err != nil {
		return eventstore.Tenant{}, err
	}
	t := sc
	return t, projections.WaitTenant(r.Context(), a.DB, t, a.ReadWait)
}

func (a *rewardsAPI) window(r *http.Request) (Page, projections.Window, error) {
	p, err := parsePage(r)
	return p, projections.Window{Limit: p.Limit, Offset: p.Offset()}, err
}

func parseTime(field, v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, eventstore.Invalid("bad date", eventstore.FieldIssue{Field: field, Issue: "must be an RFC 3339 timestamp or a YYYY-MM-DD date"})
}

// dateRange reads from/to (aliases startDate/endDate); a bare date as `to`
// includes that whole day.
func dateRange(r *http.Request) (from, to *time.Time, err error) {
	q := r.URL.Query()
	first := func(keys ...string) (string, string) {
		for _, k := range keys {
			if v := q.Get(k); v != "" {
				return k, v
			}
		}
		return keys[0], ""
	}
	fk, fv := first("from", "startDate")
	tk, tv := first("to", "endDate")
	if from, err = parseTime(fk, fv); err != nil {
		return
	}
	if to, err = parseTime(tk, tv); err != nil {
		return
	}
	if to != nil && len(tv) == len("2006-01-02") {
		d := to.Add(24 * time.Hour)
		to = &d
	}
	return
}

func oneOf(field, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return eventstore.Invalid("bad filter", eventstore.FieldIssue{Field: field, Issue: "must be one of " + strings.Join(allowed, ", ")})
}

// --- users

func (a *rewardsAPI) listUsers(w http.ResponseWriter, r *http.Request) {
	p, win, err := a.window(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	search := q.Get("search")
	for _, k := range []string{"email", "externalId"} {
		if search == "" {
			search = q.Get(k)
		}
	}
	users, total, err := projections.ListUsers(r.Context(), a.DB, t, search, win)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, users)
}

func (a *rewardsAPI) createUser(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in ledger.UserInput
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.CreateUser(r.Context(), sc, commandMeta(r), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.answerUser(w, r, sc, out, http.StatusCreated)
}

func (a *rewardsAPI) answerUser(w http.ResponseWriter, r *http.Request, sc eventstore.Tenant, out ledger.UserOutcome, status int) {
	if err := projections.WaitPosition(r.Context(), a.DB, out.Position, a.ReadWait); err != nil {
		writeError(w, r, err)
		return
	}
	u, err := projections.GetUser(r.Context(), a.DB, sc, out.ExternalID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, status, u)
}

func (a *rewardsAPI) getUser(w http.ResponseWriter, r *http.Request) {
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	u, err := projections.GetUser(r.Context(), a.DB, t, mux.Vars(r)["externalId"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (a *rewardsAPI) updateUser(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in ledger.UserPatch
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.UpdateUser(r.Context(), sc, commandMeta(r), mux.Vars(r)["externalId"], in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.answerUser(w, r, sc, out, http.StatusOK)
}

func (a *rewardsAPI) userBalance(w http.ResponseWriter, r *http.Request) {
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	b, err := projections.GetBalance(r.Context(), a.DB, t, mux.Vars(r)["externalId"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (a *rewardsAPI) userTransactions(w http.ResponseWriter, r *http.Request) {
	p, win, err := a.window(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ext := mux.Vars(r)["externalId"]
	if _, err := projections.GetBalance(r.Context(), a.DB, t, ext); err != nil {
		writeError(w, r, err)
		return
	}
	f, err := txnFilter(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	f.UserID = ext
	txns, total, err := projections.ListTransactions(r.Context(), a.DB, t, f, win)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, txns)
}

// --- actions

func (a *rewardsAPI) submitAction(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in ledger.ActionInput
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.SubmitAction(r.Context(), sc, commandMeta(r), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if out.Replayed {
		// CONTRACT §4: 409 IDEMPOTENT, conveyed by the header because the
		// body is the original 200 body, byte for byte.
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, http.StatusConflict, out.Body)
		return
	}
	writeRaw(w, http.StatusOK, out.Body)
}

type bulkError struct {
	StatusCode int                     `json:"statusCode"`
	Code       string                  `json:"code"`
	Message    string                  `json:"message"`
	Details    []eventstore.FieldIssue `json:"details,omitempty"`
}

type bulkResult struct {
	Index             int        `json:"index"`
	Status            string     `json:"status"`
	ActionID          string     `json:"actionId,omitempty"`
	IdempotencyKey    string     `json:"idempotencyKey,omitempty"`
	TokensDistributed *int64     `json:"tokensDistributed,omitempty"`
	TransactionIDs    []string   `json:"transactionIds,omitempty"`
	Error             *bulkError `json:"error,omitempty"`
}

type bulkSummary struct {
	Total             int   `json:"total"`
	Completed         int   `json:"completed"`
	Replayed          int   `json:"replayed"`
	Failed            int   `json:"failed"`
	Rejected          int   `json:"rejected"`
	TokensDistributed int64 `json:"tokensDistributed"`
}

func (a *rewardsAPI) bulkActions(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in struct {
		Actions []ledger.ActionInput `json:"actions"`
	}
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	items, err := a.Ledger.SubmitBulk(r.Context(), sc, commandMeta(r), in.Actions)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.settle(r, items)
	res := make([]bulkResult, len(items))
	sum := bulkSummary{Total: len(items)}
	for i, it := range items {
		br := bulkResult{Index: i, ActionID: it.Outcome.ActionID, IdempotencyKey: in.Actions[i].IdempotencyKey}
		switch {
		case it.Err == nil:
			tok := it.Outcome.TokensDistributed
			br.TokensDistributed, br.TransactionIDs = &tok, it.Outcome.TransactionIDs
			if br.TransactionIDs == nil {
				br.TransactionIDs = []string{}
			}
			if it.Outcome.Replayed {
				br.Status = "REPLAYED"
				sum.Replayed++
			} else {
				br.Status = ledger.StatusCompleted
				sum.Completed++
				sum.TokensDistributed += tok
			}
		default:
			status, e := statusOf(it.Err)
			br.Error = &bulkError{StatusCode: status, Code: e.Code, Message: e.Message, Details: e.Details}
			if status == http.StatusInternalServerError {
				loggerFrom(r.Context()).Error("bulk item failed", "index", i, "err", it.Err)
				br.Error.Message = "internal error"
			}
			if it.Outcome.Status == ledger.StatusFailed {
				br.Status = ledger.StatusFailed
				sum.Failed++
			} else {
				br.Status, br.ActionID = "REJECTED", ""
				sum.Rejected++
			}
		}
		res[i] = br
	}
	writeJSON(w, http.StatusOK, struct {
		Results []bulkResult `json:"results"`
		Summary bulkSummary  `json:"summary"`
	}{res, sum})
}

// settle holds a bulk response, at most ReadWait, until the rewards read
// model has applied the batch. Bulk is the one write that can outrun the
// projectors: without this, sustained bulk load grew the read model's lag
// without bound (100,000 events in 80 s on two cores) and every partner's
// reads answered READ_MODEL_LAGGING. Waiting makes each bulk client pace
// itself to what the read models sustain. The actions are committed
// whatever happens here, so a wait that runs out is not an error.
func (a *rewardsAPI) settle(r *http.Request, items []ledger.BulkItem) {
	var pos int64
	for _, it := range items {
		pos = max(pos, it.Outcome.Position)
	}
	if pos == 0 {
		return
	}
	if err := projections.WaitPosition(r.Context(), a.DB, pos, a.ReadWait); err != nil {
		loggerFrom(r.Context()).Warn("bulk answered before the read model caught up", "position", pos, "err", err)
	}
}

func (a *rewardsAPI) bulkJob(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, eventstore.Errorf(eventstore.KindNotFound, "BULK_JOB_NOT_FOUND",
		"bulk jobs are deprecated: POST /v1/partner/actions/bulk processes actions synchronously and returns their results"))
}

func (a *rewardsAPI) listActions(w http.ResponseWriter, r *http.Request) {
	p, win, err := a.window(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := projections.ActionFilter{Status: q.Get("status"), ActionType: q.Get("actionType"), CampaignID: q.Get("campaignId")}
	for _, k := range []string{"userId", "partnerUserId", "externalId"} {
		if f.UserID == "" {
			f.UserID = q.Get(k)
		}
	}
	if err := oneOf("status", f.Status, ledger.StatusCompleted, ledger.StatusFailed, ledger.StatusReversed); err != nil {
		writeError(w, r, err)
		return
	}
	if f.From, f.To, err = dateRange(r); err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	acts, total, err := projections.ListActions(r.Context(), a.DB, t, f, win)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, acts)
}

func (a *rewardsAPI) getAction(w http.ResponseWriter, r *http.Request) {
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	act, err := projections.GetAction(r.Context(), a.DB, t, mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, act)
}

func (a *rewardsAPI) reverseAction(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in struct {
		Reason string `json:"reason"`
	}
	// The body is optional here.
	if b, err := readBody(r); err != nil {
		writeError(w, r, err)
		return
	} else if len(bytes.TrimSpace(b)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(b))
		if _, err := decodeJSON(r, &in); err != nil {
			writeError(w, r, err)
			return
		}
	}
	id := mux.Vars(r)["actionId"]
	res, err := a.Ledger.ReverseAction(r.Context(), sc, commandMeta(r), id, in.Reason)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitPosition(r.Context(), a.DB, res.Position, a.ReadWait); err != nil {
		writeError(w, r, err)
		return
	}
	act, err := projections.GetAction(r.Context(), a.DB, sc, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, act)
}

// --- token pools

func (a *rewardsAPI) listPools(w http.ResponseWriter, r *http.Request) {
	p, win, err := a.window(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	pools, total, err := projections.ListPools(r.Context(), a.DB, t, win)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, pools)
}

func (a *rewardsAPI) poolBalance(w http.ResponseWriter, r *http.Request) {
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	pool, err := projections.GetPool(r.Context(), a.DB, t, mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pool.Balance())
}

func (a *rewardsAPI) requestAllocation(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in ledger.AllocationInput
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.RequestAllocation(r.Context(), sc, commandMeta(r), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitPosition(r.Context(), a.DB, out.Position, a.ReadWait); err != nil {
		writeError(w, r, err)
		return
	}
	req, err := projections.GetAllocationRequest(r.Context(), a.DB, sc, out.RequestID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, req)
}

func (a *rewardsAPI) listRequests(w http.ResponseWriter, r *http.Request) {
	p, win, err := a.window(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := r.URL.Query().Get("status")
	if err := oneOf("status", status, "PENDING", "APPROVED", "REJECTED"); err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	reqs, total, err := projections.ListAllocationRequests(r.Context(), a.DB, t, status, win)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, reqs)
}

// --- transactions

func txnFilter(r *http.Request) (projections.TransactionFilter, error) {
	q := r.URL.Query()
	f := projections.TransactionFilter{Type: q.Get("type"), ActionID: q.Get("actionId"), PoolID: q.Get("poolId")}
	for _, k := range []string{"partnerUserId", "userId", "externalId"} {
		if f.UserID == "" {
			f.UserID = q.Get(k)
		}
	}
	if err := oneOf("type", f.Type, "REWARD", "REVERSAL", "ALLOCATION"); err != nil {
		return f, err
	}
	var err error
	f.From, f.To, err = dateRange(r)
	return f, err
}

func (a *rewardsAPI) listTransactions(w http.ResponseWriter, r *http.Request) {
	p, win, err := a.window(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	f, err := txnFilter(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	txns, total, err := projections.ListTransactions(r.Context(), a.DB, t, f, win)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, p, total, txns)
}

func (a *rewardsAPI) getTransaction(w http.ResponseWriter, r *http.Request) {
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	tx, err := projections.GetTransaction(r.Context(), a.DB, t, mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tx)
}
