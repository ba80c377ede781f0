// What a handler reads off a request before it calls anything: its tenant
// (from the authenticated principal, never from the request), the metadata
// a command records, and paging, date and enum parameters.

package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

var errNoTenant = eventstore.Errorf(eventstore.KindUnauthorized, "UNAUTHORIZED", "this endpoint needs an API key")

func tenantOf(r *http.Request) (eventstore.Tenant, error) {
	p, ok := PrincipalFrom(r.Context())
	if !ok || p.PartnerID == "" || p.Environment == "" {
		return eventstore.Tenant{}, errNoTenant
	}
	return eventstore.Tenant{PartnerID: p.PartnerID, Environment: p.Environment}, nil
}

// scope is the tenant of a key-authenticated request.
func scope(r *http.Request) (eventstore.Tenant, error) { return tenantOf(r) }

// readTenant is the one read-your-writes gate of every read endpoint: it
// waits until the read model reflects the tenant's last committed event.
func (a *api) readTenant(r *http.Request) (eventstore.Tenant, error) {
	sc, err := scope(r)
	if err != nil {
		return eventstore.Tenant{}, err
	}
	t := sc
	return t, projections.WaitTenant(r.Context(), a.DB, t, a.ReadWait)
}

func commandMeta(r *http.Request) events.Metadata {
	m := events.Metadata{RequestID: requestIDFrom(r.Context())}
	if p, ok := PrincipalFrom(r.Context()); ok {
		m.Actor = "key:" + p.KeyID
	}
	return m
}

func accountsMeta(r *http.Request) events.Metadata {
	m := events.Metadata{RequestID: requestIDFrom(r.Context())}
	if p, ok := PrincipalFrom(r.Context()); ok {
		switch {
		case p.UserID != "":
			m.Actor = "user:" + p.UserID
		case p.KeyID != "":
			m.Actor = "key:" + p.KeyID
		}
	}
	return m
}

func accountPrincipal(r *http.Request) *Principal {
	p, _ := PrincipalFrom(r.Context())
	if p == nil {
		return &Principal{}
	}
	return p
}

func (a *api) window(r *http.Request) (Page, projections.Window, error) {
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

// intParam reads an optional integer query parameter within [min, max].
func intParam(r *http.Request, name string, min, max, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, eventstore.Invalid("bad "+name, eventstore.FieldIssue{Field: name, Issue: "must be an integer from " + strconv.Itoa(min) + " to " + strconv.Itoa(max)})
	}
	return n, nil
}
