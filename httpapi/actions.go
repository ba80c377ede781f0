// Reward actions: submit, bulk, list, get and reverse (/v1/partner/actions…).

package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

func (a *api) submitAction(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in actionRequest
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.SubmitAction(r.Context(), sc, commandMeta(r), in.input())
	if err != nil {
		writeError(w, r, err)
		return
	}
	if out.Replayed {
		// CONTRACT §4: 409 IDEMPOTENT, conveyed by the header because the
		// body is the original 200 body, byte for byte.
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, http.StatusConflict, actionBody(out.Completed))
		return
	}
	writeRaw(w, http.StatusOK, actionBody(out.Completed))
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

func (a *api) bulkActions(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in struct {
		Actions []actionRequest `json:"actions"`
	}
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	ins := make([]ledger.ActionInput, len(in.Actions))
	for i, act := range in.Actions {
		ins[i] = act.input()
	}
	items, err := a.Ledger.SubmitBulk(r.Context(), sc, commandMeta(r), ins)
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

// settle holds a bulk response, at most ReadWait, while the rewards read
// model is more than bulkSettleSlack events behind the batch. Bulk is the
// one write that can outrun the projectors: without a bound, sustained bulk
// load grew the read model's lag without limit (100,000 events in 80 s on
// two cores) and every partner's reads answered READ_MODEL_LAGGING. The
// bound makes bulk clients pace themselves to what the read models
// sustain, without waiting for their own batch: that wait (the relay and
// the projector's delay, ~40 ms under load) was most of a bulk's answer
// time, and a read after the bulk still waits for its own position. The
// actions are committed whatever happens here, so a wait that runs out is
// not an error.
func (a *api) settle(r *http.Request, items []ledger.BulkItem) {
	var pos int64
	for _, it := range items {
		pos = max(pos, it.Outcome.Position)
	}
	if pos == 0 {
		return
	}
	if err := settleBulk(r.Context(), a.DB, pos, a.ReadWait); err != nil {
		loggerFrom(r.Context()).Warn("bulk answered with the read model still lagging", "position", pos, "slack", bulkSettleSlack, "err", err)
	}
}

// bulkSettleSlack is how many events the rewards read model may still have
// to apply when a bulk is answered: about 130 ms of the set-based rewards
// projector's work on two cores (~15,000 events/s), so the read model
// stays well within the 250 ms of the event store it is held to.
const bulkSettleSlack = 2000

// settleBulk waits, at most wait, until the rewards read model has
// applied everything up to bulkSettleSlack events before pos.
func settleBulk(ctx context.Context, q eventstore.Querier, pos int64, wait time.Duration) error {
	return projections.WaitPosition(ctx, q, pos-bulkSettleSlack, wait)
}

func (a *api) bulkJob(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, eventstore.Errorf(eventstore.KindNotFound, "BULK_JOB_NOT_FOUND",
		"bulk jobs are deprecated: POST /v1/partner/actions/bulk processes actions synchronously and returns their results"))
}

func (a *api) listActions(w http.ResponseWriter, r *http.Request) {
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

func (a *api) getAction(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(t eventstore.Tenant) (any, error) {
		return projections.GetAction(r.Context(), a.DB, t, mux.Vars(r)["id"])
	})
}

func (a *api) reverseAction(w http.ResponseWriter, r *http.Request) {
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
		r.Body = &bufferedBody{b: b}
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

// stakeholderRequest is one stakeholder of a submitted action.
type stakeholderRequest struct {
	StakeholderTypeCode string `json:"stakeholderTypeCode"`
	PartnerUserID       string `json:"partnerUserId"`
	UserEmail           string `json:"userEmail"`
	UserFirstName       string `json:"userFirstName"`
	UserLastName        string `json:"userLastName"`
}

// actionRequest is the body of POST /actions/submit and one item of a bulk.
type actionRequest struct {
	IdempotencyKey  string               `json:"idempotencyKey"`
	ActionType      string               `json:"actionType"`
	Amount          decimalText          `json:"amount"`
	Currency        string               `json:"currency"`
	Stakeholders    []stakeholderRequest `json:"stakeholders"`
	AutoCreateUsers bool                 `json:"autoCreateUsers"`
	Metadata        json.RawMessage      `json:"metadata"`
	CampaignID      string               `json:"campaignId"`
	TokenPoolID     string               `json:"tokenPoolId"`
}

func (in actionRequest) input() ledger.ActionInput {
	out := ledger.ActionInput{
		IdempotencyKey: in.IdempotencyKey, ActionType: in.ActionType, Amount: string(in.Amount), Currency: in.Currency,
		AutoCreateUsers: in.AutoCreateUsers, Metadata: in.Metadata, CampaignID: in.CampaignID, TokenPoolID: in.TokenPoolID,
	}
	if in.Stakeholders != nil {
		out.Stakeholders = make([]ledger.StakeholderInput, len(in.Stakeholders))
		for i, sh := range in.Stakeholders {
			out.Stakeholders[i] = ledger.StakeholderInput(sh)
		}
	}
	return out
}

// actionResponse is the 200 body of a submit (CONTRACT §4).
type actionResponse struct {
	ActionID          string   `json:"actionId"`
	IdempotencyKey    string   `json:"idempotencyKey"`
	Status            string   `json:"status"`
	TokensDistributed int64    `json:"tokensDistributed"`
	TransactionIDs    []string `json:"transactionIds"`
}

// actionBody is the exact 200 body of a completed action, derived only
// from its recorded completion, so an idempotent replay — answered from
// the same event — is the same bytes as the first answer.
func actionBody(c *events.ActionCompleted) []byte {
	ids := c.TransactionIDs
	if ids == nil {
		ids = []string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(actionResponse{ActionID: c.ActionID, IdempotencyKey: c.IdempotencyKey, Status: ledger.StatusCompleted,
		TokensDistributed: c.TokensDistributed, TransactionIDs: ids})
	return buf.Bytes()
}
