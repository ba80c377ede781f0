// Routes beside the contract that the donation flow needs: the embeddable
// button (/widget.js), the sandbox checkout page (/checkout/{id}) and the
// providers' notification endpoints (/providers/{provider}/webhook).

package httpapi

import (
	"crypto/sha256"
	_ "embed" // the widget script is compiled in
	"encoding/base64"
	"html/template"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"github.com/shopspring/decimal"

	"github.com/sirgiving/ledger/checkout"
	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

//go:embed widget.js
var widgetScript []byte

// WidgetRoutes registers the routes of the donation flow outside the
// contract's /v1/partner paths; pass it as Deps.Extra.
func WidgetRoutes(d HandlerDeps) func(r *mux.Router) {
	a := &api{d}
	return func(r *mux.Router) {
		r.HandleFunc("/widget.js", serveWidgetScript).Methods(http.MethodGet, http.MethodHead)
		r.HandleFunc("/checkout/{id}", a.checkoutPage).Methods(http.MethodGet, http.MethodHead)
		r.HandleFunc("/checkout/{id}/pay", a.checkoutPay).Methods(http.MethodPost)
		r.HandleFunc("/checkout/{id}/cancel", a.checkoutCancel).Methods(http.MethodPost)
		r.HandleFunc("/providers/{provider}/webhook", a.providerWebhook).Methods(http.MethodPost)
	}
}

// serveWidgetScript serves the embeddable button. It is a plain script
// from this origin that loads nothing else, evaluates no strings and
// injects no inline style or markup, so a partner page whose CSP allows
// this origin in script-src and connect-src needs nothing more.
func serveWidgetScript(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(widgetScript)))
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(widgetScript)
}

var donationIDRE = regexp.MustCompile(`^don_[0-9a-f]{32}$`)

var errDonationNotFound = eventstore.Errorf(eventstore.KindNotFound, "DONATION_NOT_FOUND", "no such donation")

// sandboxDonation finds a sandbox-checkout donation by id, waiting until
// the read model shows it: the donor arrives here the moment create-link
// answered.
func (a *api) sandboxDonation(r *http.Request) (*projections.DonationRecord, error) {
	id := mux.Vars(r)["id"]
	if !donationIDRE.MatchString(id) {
		return nil, errDonationNotFound
	}
	t, ok, err := projections.StreamTenant(r.Context(), a.DB, ledger.DonationStream(id))
	if err != nil {
		return nil, err
	}
	if !ok || t.Environment != ledger.EnvSandbox {
		return nil, errDonationNotFound
	}
	if err := projections.WaitTenant(r.Context(), a.DB, t, a.ReadWait, projections.DonationsName); err != nil {
		return nil, err
	}
	d, err := projections.DonationByID(r.Context(), a.DB, t, id)
	if err != nil {
		return nil, err
	}
	if d == nil || d.Provider != ledger.ProviderSandbox {
		return nil, errDonationNotFound
	}
	return d, nil
}

const checkoutStyle = `body{font:16px/1.4 system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#222}` +
	`.test{background:#fff3cd;border:1px solid #e0c36c;padding:.5rem;border-radius:4px}` +
	`table{width:100%;margin:1rem 0}td:last-child{text-align:right}label,input{display:block;width:100%;margin:.25rem 0}` +
	`button{padding:.6rem 1.2rem;margin:.5rem .5rem 0 0;font-size:1rem}.status{font-weight:bold}`

// checkoutCSP allows the page's one style block and nothing else: the
// page runs no script and loads nothing.
var checkoutCSP = func() string {
	sum := sha256.Sum256([]byte(checkoutStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; base-uri 'none'; frame-ancestors 'none'"
}()

var checkoutTemplate = template.Must(template.New("checkout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>SIR Giving sandbox checkout</title><style>{{.Style}}</style></head><body>
<p class="test">Sandbox checkout: no money moves. Card {{.CardOK}} pays; {{.CardDeclined}} is declined.</p>
<h1>Donate to {{.D.NonprofitName}}</h1>
<table>
<tr><td>Donation{{if eq .D.Frequency "monthly"}} (monthly){{end}}</td><td id="amount">{{.Amount}} {{.D.Currency}}</td></tr>
<tr><td>Tip</td><td id="tip">{{.Tip}} {{.D.Currency}}</td></tr>
<tr><td><b>Total</b></td><td id="total"><b>{{.Total}} {{.D.Currency}}</b></td></tr>
</table>
{{if eq .D.Status "PENDING"}}
<form method="post" action="/checkout/{{.D.DonationID}}/pay">
<label for="card">Test card number</label><input id="card" name="card" value="{{.CardOK}}" inputmode="numeric" autocomplete="off">
<label for="exp">Expiry</label><input id="exp" name="exp" value="12/34">
<button id="pay" type="submit">Pay {{.Total}} {{.D.Currency}}</button>
<button id="cancel" type="submit" formaction="/checkout/{{.D.DonationID}}/cancel">Cancel</button>
</form>
{{else}}
<p>Donation <span class="status" id="status">{{.D.Status}}</span>{{if .D.TokensRewarded}}: {{.D.TokensRewarded}} SIR tokens rewarded{{end}}.</p>
{{end}}
</body></html>
`))

func money(cents int64) string { return decimal.New(cents, -2).StringFixed(2) }

func (a *api) checkoutPage(w http.ResponseWriter, r *http.Request) {
	d, err := a.sandboxDonation(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", checkoutCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	err = checkoutTemplate.Execute(w, map[string]any{"D": d, "Style": template.CSS(checkoutStyle), "Amount": money(d.Amount),
		"Tip": money(d.TipAmount), "Total": money(d.Amount + d.TipAmount), "CardOK": checkout.SandboxCardOK, "CardDeclined": checkout.SandboxCardDeclined})
	if err != nil {
		loggerFrom(r.Context()).Warn("checkout page", "err", err)
	}
}

func (a *api) checkoutPay(w http.ResponseWriter, r *http.Request) {
	card := strings.ReplaceAll(r.PostFormValue("card"), " ", "")
	kind, reason := ledger.NoticeCompleted, ""
	switch {
	case card == checkout.SandboxCardDeclined:
		kind, reason = ledger.NoticeFailed, "card declined (sandbox test card)"
	case len(card) < 12 || len(card) > 19 || strings.Trim(card, "0123456789") != "":
		writeError(w, r, eventstore.Invalid("not a card number", eventstore.FieldIssue{Field: "card", Issue: "must be 12 to 19 digits"}))
		return
	}
	a.checkoutOutcome(w, r, kind, reason)
}

func (a *api) checkoutCancel(w http.ResponseWriter, r *http.Request) {
	a.checkoutOutcome(w, r, ledger.NoticeCancelled, "the donor cancelled")
}

// checkoutOutcome records what the donor did on the sandbox checkout and
// sends them back to the partner's page (or this page's receipt).
func (a *api) checkoutOutcome(w http.ResponseWriter, r *http.Request, kind, reason string) {
	d, err := a.sandboxDonation(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out, err := a.Ledger.RecordDonationNotice(r.Context(), d.Tenant, events.Metadata{RequestID: requestIDFrom(r.Context()), Actor: "checkout:sandbox"},
		ledger.DonationNotice{DonationID: d.DonationID, Provider: ledger.ProviderSandbox, Kind: kind, Reason: reason})
	if err != nil {
		writeError(w, r, err)
		return
	}
	outcome := map[string]string{ledger.DonationCompleted: "success", ledger.DonationCancelled: "cancel", ledger.DonationFailed: "failed"}[out.Status]
	if outcome == "" {
		outcome = strings.ToLower(out.Status)
	}
	draft := ledger.DonationDraft{ID: d.DonationID, ReturnURL: d.ReturnURL}
	http.Redirect(w, r, checkout.ReturnURL("", draft, outcome), http.StatusSeeOther)
}

// providerWebhook takes a provider's notification: verified by the
// provider (a forged one is 401 and changes nothing), then each notice is
// recorded once. A notice about an unknown donation or one of another
// provider is refused with 404 and logged; a repeat answers 200 with
// recorded false.
func (a *api) providerWebhook(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["provider"]
	var p checkout.Provider
	if a.Checkout != nil && name != ledger.ProviderSandbox {
		p, _ = a.Checkout.Provider(name)
	}
	if p == nil {
		writeError(w, r, eventstore.Errorf(eventstore.KindNotFound, "PROVIDER_NOT_CONFIGURED", "no %s provider is configured", name))
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	log := loggerFrom(r.Context())
	notices, err := p.Notices(r, body)
	if err != nil {
		log.Warn("provider notification refused", "provider", name, "err", err)
		writeError(w, r, err)
		return
	}
	recorded := 0
	for _, n := range notices {
		t, err := a.noticeTenant(r, &n)
		if err == nil {
			var out ledger.DonationNoticeOutcome
			out, err = a.Ledger.RecordDonationNotice(r.Context(), t, events.Metadata{RequestID: requestIDFrom(r.Context()), Actor: "provider:" + name}, n.DonationNotice)
			if out.Recorded {
				recorded++
			}
		}
		if err != nil {
			log.Warn("provider notification refused", "provider", name, "donation", n.DonationID, "kind", n.Kind, "err", err)
			writeError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"received": true, "recorded": recorded})
}

// noticeTenant finds the tenant of the donation a notice is about, from
// the event store (exact), or, for a notice that names only the payment,
// from the donations read model.
func (a *api) noticeTenant(r *http.Request, n *checkout.Notice) (eventstore.Tenant, error) {
	if n.DonationID == "" {
		d, err := projections.DonationByPaymentRef(r.Context(), a.DB, n.Provider, n.PaymentRef)
		if err != nil {
			return eventstore.Tenant{}, err
		}
		if d == nil {
			return eventstore.Tenant{}, errDonationNotFound
		}
		n.DonationID = d.DonationID
		return d.Tenant, nil
	}
	if !donationIDRE.MatchString(n.DonationID) {
		return eventstore.Tenant{}, errDonationNotFound
	}
	t, ok, err := projections.StreamTenant(r.Context(), a.DB, ledger.DonationStream(n.DonationID))
	if err != nil {
		return t, err
	}
	if !ok {
		return t, errDonationNotFound
	}
	return t, nil
}
