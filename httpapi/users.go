// End users: /v1/partner/users…

package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

func (a *api) listUsers(w http.ResponseWriter, r *http.Request) {
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

func (a *api) createUser(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in userRequest
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.CreateUser(r.Context(), sc, commandMeta(r), ledger.UserInput(in))
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.answerUser(w, r, sc, out, http.StatusCreated)
}

func (a *api) answerUser(w http.ResponseWriter, r *http.Request, sc eventstore.Tenant, out ledger.UserOutcome, status int) {
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

func (a *api) getUser(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(t eventstore.Tenant) (any, error) {
		return projections.GetUser(r.Context(), a.DB, t, mux.Vars(r)["externalId"])
	})
}

func (a *api) updateUser(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in userPatchRequest
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.UpdateUser(r.Context(), sc, commandMeta(r), mux.Vars(r)["externalId"], ledger.UserPatch(in))
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.answerUser(w, r, sc, out, http.StatusOK)
}

func (a *api) userBalance(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(t eventstore.Tenant) (any, error) {
		return projections.GetBalance(r.Context(), a.DB, t, mux.Vars(r)["externalId"])
	})
}

func (a *api) userTransactions(w http.ResponseWriter, r *http.Request) {
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

// userRequest is the body of POST /users; externalId is accepted as an
// alias of partnerUserId.
type userRequest struct {
	PartnerUserID string          `json:"partnerUserId"`
	ExternalID    string          `json:"externalId"`
	Email         string          `json:"email"`
	FirstName     string          `json:"firstName"`
	LastName      string          `json:"lastName"`
	Metadata      json.RawMessage `json:"metadata"`
}

// userPatchRequest is the body of PATCH /users/:externalId; absent fields
// are unchanged.
type userPatchRequest struct {
	Email     *string         `json:"email"`
	FirstName *string         `json:"firstName"`
	LastName  *string         `json:"lastName"`
	Metadata  json.RawMessage `json:"metadata"`
}
