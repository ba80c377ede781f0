// The edge check of every path and query parameter. Handlers read
// parameters with mux.Vars and URL.Query and hand them on to queries and
// commands; checkParams, wrapped around every handler by Handlers, is the
// one place that makes sure what they hand on is a well-formed string, so
// hostile bytes answer 400 here instead of 500 from PostgreSQL (DESIGN
// promise 9), and an id of a shape the service never mints answers the
// resource's 404 without a query.

package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
	"github.com/sirgiving/ledger/webhooks"
)

// maxParam bounds a parameter in bytes: partner-chosen ids are at most 255
// characters (the domain's limit), and no minted id, filter or date is
// longer.
const maxParam = 255

// mintedID is an id the service mints: prefix + 32 lowercase hex.
type mintedID struct {
	prefix   string
	notFound func(id string) error
}

// mintedIDs names, by the path segment before a parameter, the ids the
// service mints. A parameter after any other segment (externalId, slug,
// partnerDonationId, jobId) is chosen by the partner and only has to be
// well-formed; TestEveryPathParameterHasARule keeps this table complete.
// (partnerDonationId is minted by create-link, don_…, despite its name.)
var mintedIDs = map[string]mintedID{
	"keys":         {"key_", func(string) error { return errKeyNotFound }},
	"actions":      {"act_", notFoundAs("ACTION_NOT_FOUND", "no action %s")},
	"transactions": {"txn_", notFoundAs("TRANSACTION_NOT_FOUND", "no transaction %s")},
	"token-pools":  {"pool_", notFoundAs("POOL_NOT_FOUND", "no token pool %s")},
	"campaigns":    {"cmp_", notFoundAs("CAMPAIGN_NOT_FOUND", "no campaign %s")},
	"webhooks":     {"wh_", func(string) error { return projections.ErrWebhookNotFound }},
	"deliveries":   {"whd_", func(string) error { return webhooks.ErrDeliveryNotFound }},
	"status":       {"don_", notFoundAs("DONATION_NOT_FOUND", "no donation %s")},
}

// notFoundAs answers as the resource's own lookup does for a missing id.
func notFoundAs(code, format string) func(id string) error {
	return func(id string) error { return eventstore.Errorf(eventstore.KindNotFound, code, format, id) }
}

// partnerChosenParams are the path parameters the partner names itself.
var partnerChosenParams = map[string]bool{"externalId": true, "slug": true, "jobId": true}

// pathParam is one :param of a route with the rule that checks it.
type pathParam struct {
	name   string
	minted *mintedID
}

// pathParams lists route's parameters in path order.
func pathParams(route string) []pathParam {
	var out []pathParam
	segs := strings.Split(route, "/")
	for i, s := range segs {
		if !strings.HasPrefix(s, ":") || i == 0 {
			continue
		}
		pp := pathParam{name: s[1:]}
		if m, ok := mintedIDs[segs[i-1]]; ok && !partnerChosenParams[pp.name] {
			pp.minted = &m
		}
		out = append(out, pp)
	}
	return out
}

// checkParams wraps h so that it runs only with well-formed parameters.
func checkParams(route string, h http.HandlerFunc) http.HandlerFunc {
	params := pathParams(route)
	return func(w http.ResponseWriter, r *http.Request) {
		if err := paramsError(r, params); err != nil {
			writeError(w, r, err)
			return
		}
		h(w, r)
	}
}

func paramsError(r *http.Request, params []pathParam) error {
	vars := mux.Vars(r)
	for _, p := range params {
		v := vars[p.name]
		if issue := malformed(v); issue != "" {
			return eventstore.Invalid("the path parameter "+p.name+" is malformed", eventstore.FieldIssue{Field: p.name, Issue: issue})
		}
		if p.minted != nil && !isMinted(v, p.minted.prefix) {
			return p.minted.notFound(v)
		}
	}
	for k, vs := range r.URL.Query() {
		if issue := malformed(k); issue != "" {
			return eventstore.Invalid("a query parameter name is malformed", eventstore.FieldIssue{Field: "query", Issue: issue})
		}
		for _, v := range vs {
			if issue := malformed(v); issue != "" {
				return eventstore.Invalid("the query parameter "+k+" is malformed", eventstore.FieldIssue{Field: k, Issue: issue})
			}
		}
	}
	return nil
}

// malformed says what is wrong with a parameter's bytes, or "" if nothing
// is: it must be valid UTF-8 without control characters (PostgreSQL text
// refuses invalid UTF-8 and NUL; no identifier or filter holds the rest),
// and at most maxParam bytes.
func malformed(v string) string {
	if len(v) > maxParam {
		return "must be at most " + strconv.Itoa(maxParam) + " bytes"
	}
	if !utf8.ValidString(v) {
		return "must be valid UTF-8"
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return "must not contain control characters"
		}
	}
	return ""
}

// isMinted reports whether id is prefix followed by 32 lowercase hex
// digits, the only shape the service mints (eventstore.NewID and the
// domain's derived ids).
func isMinted(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) != 32 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
