// Token pools and allocation requests (/v1/partner/token-pools…).

package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/projections"
)

func (a *api) listPools(w http.ResponseWriter, r *http.Request) {
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

func (a *api) poolBalance(w http.ResponseWriter, r *http.Request) {
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

func (a *api) requestAllocation(w http.ResponseWriter, r *http.Request) {
	sc, err := scope(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in allocationRequest
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.RequestAllocation(r.Context(), sc, commandMeta(r), ledger.AllocationInput(in))
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

func (a *api) listRequests(w http.ResponseWriter, r *http.Request) {
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

// allocationRequest is the body of POST /token-pools/request; tokenPoolId
// is accepted as an alias of poolId.
type allocationRequest struct {
	PoolID      string `json:"poolId"`
	TokenPoolID string `json:"tokenPoolId"`
	Amount      int64  `json:"amount"`
	Reason      string `json:"reason"`
}
