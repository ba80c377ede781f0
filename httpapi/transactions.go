// Token transactions (/v1/partner/transactions…).

package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

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

func (a *api) listTransactions(w http.ResponseWriter, r *http.Request) {
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

func (a *api) getTransaction(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(t eventstore.Tenant) (any, error) {
		return projections.GetTransaction(r.Context(), a.DB, t, mux.Vars(r)["id"])
	})
}
