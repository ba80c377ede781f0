// Package apitest checks real HTTP responses against the partner API's
// OpenAPI document (httpapi/openapi.json), for end-to-end tests:
//
//	resp, body := ... // a request to apptest.Start(t).URL
//	apitest.CheckResponse(t, "POST", "/v1/partner/actions/submit", resp.StatusCode, resp.Header, body)
//
// A response passes when its operation exists, its status is documented,
// its required headers are present and valid, and its body matches the
// documented schema — including no undocumented members in objects that
// declare their properties (so a misspelled field name fails here rather
// than in a partner's integration).
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/sirgiving/ledger/httpapi"
)

var (
	loadOnce sync.Once
	loaded   *openapi3.T
	loadErr  error
)

// Document returns the parsed and validated OpenAPI document served by
// the service (loaded once per test binary; do not modify it).
func Document() (*openapi3.T, error) {
	loadOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(httpapi.OpenAPIDocument())
		if err != nil {
			loadErr = fmt.Errorf("parse openapi.json: %w", err)
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			loadErr = fmt.Errorf("validate openapi.json: %w", err)
			return
		}
		loaded = doc
	})
	return loaded, loadErr
}

// Operation is a documented operation matched to a concrete request path.
type Operation struct {
	Path       string // template, e.g. /v1/partner/actions/{id}
	PathItem   *openapi3.PathItem
	Operation  *openapi3.Operation
	PathParams map[string]string
}

// FindOperation matches method and a concrete path (query string allowed
// and ignored) to a documented operation. Literal segments win over
// parameters (/campaigns/active over /campaigns/{id}).
func FindOperation(doc *openapi3.T, method, path string) (*Operation, error) {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var best *Operation
	bestLiterals := -1
	for tmpl, item := range doc.Paths.Map() {
		tsegs := strings.Split(strings.Trim(tmpl, "/"), "/")
		if len(tsegs) != len(segs) {
			continue
		}
		params := map[string]string{}
		literals := 0
		ok := true
		for i, ts := range tsegs {
			if strings.HasPrefix(ts, "{") && strings.HasSuffix(ts, "}") {
				v, err := url.PathUnescape(segs[i])
				if err != nil || v == "" {
					ok = false
					break
				}
				params[ts[1:len(ts)-1]] = v
				continue
			}
			if ts != segs[i] {
				ok = false
				break
			}
			literals++
		}
		if !ok {
			continue
		}
		op := item.GetOperation(strings.ToUpper(method))
		if op == nil || literals <= bestLiterals {
			continue
		}
		best = &Operation{Path: tmpl, PathItem: item, Operation: op, PathParams: params}
		bestLiterals = literals
	}
	if best == nil {
		return nil, fmt.Errorf("no documented operation for %s %s", method, path)
	}
	return best, nil
}

// CheckResponse fails t unless the response (status, header, body) of
// method path is what the OpenAPI document promises.
func CheckResponse(t testing.TB, method, path string, status int, header http.Header, body []byte) {
	t.Helper()
	if err := ValidateResponse(method, path, status, header, body); err != nil {
		t.Fatalf("response does not match the OpenAPI document: %v\nbody: %s", err, truncate(body))
	}
}

// ValidateResponse is CheckResponse returning the mismatch as an error.
func ValidateResponse(method, path string, status int, header http.Header, body []byte) error {
	doc, err := Document()
	if err != nil {
		return err
	}
	op, err := FindOperation(doc, method, path)
	if err != nil {
		return err
	}
	resp := op.Operation.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		return fmt.Errorf("%s %s: status %d is not documented (documented: %s)", method, op.Path, status,
			strings.Join(documentedStatuses(op.Operation), ", "))
	}
	req, err := http.NewRequest(strings.ToUpper(method), "http://localhost"+path, nil)
	if err != nil {
		return err
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: op.PathParams,
			Route: &routers.Route{Spec: doc, Path: op.Path, PathItem: op.PathItem,
				Method: strings.ToUpper(method), Operation: op.Operation},
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	// Short messages: where and why, without the schema dump.
	input.Options.WithCustomSchemaErrorFunc(func(e *openapi3.SchemaError) string {
		return fmt.Sprintf("at /%s: %s", strings.Join(e.JSONPointer(), "/"), e.Reason)
	})
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return fmt.Errorf("%s %s → %d: %w", method, op.Path, status, err)
	}
	if len(resp.Value.Content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 {
			return fmt.Errorf("%s %s → %d: documented without a body, got %d bytes", method, op.Path, status, len(body))
		}
		return nil
	}
	mt := resp.Value.Content.Get(header.Get("Content-Type"))
	if mt == nil || mt.Schema == nil {
		return nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%s %s → %d: body is not JSON: %w", method, op.Path, status, err)
	}
	var extra []string
	undocumented(mt.Schema, v, "$", &extra)
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("%s %s → %d: undocumented members (misspelled or missing from openapi.json): %s",
			method, op.Path, status, strings.Join(extra, ", "))
	}
	return nil
}

func documentedStatuses(op *openapi3.Operation) []string {
	var out []string
	for code := range op.Responses.Map() {
		out = append(out, code)
	}
	sort.Strings(out)
	return out
}

// undocumented reports object members that no applicable schema declares,
// for schemas that list properties and leave additionalProperties unset.
// (The JSON Schema default allows extra members; the document's promise is
// stricter: a response carries the fields it lists.)
func undocumented(ref *openapi3.SchemaRef, v any, at string, out *[]string) {
	if ref == nil || ref.Value == nil {
		return
	}
	s := ref.Value
	switch x := v.(type) {
	case map[string]any:
		known, open := declared(ref, x)
		for k, mv := range x {
			subs := known[k]
			if len(subs) == 0 {
				if !open {
					*out = append(*out, at+"."+k)
				}
				continue
			}
			for _, sub := range subs {
				undocumented(sub, mv, at+"."+k, out)
			}
		}
	case []any:
		items := []*openapi3.SchemaRef{s.Items}
		for _, alt := range append(append([]*openapi3.SchemaRef{}, s.OneOf...), s.AnyOf...) {
			if alt.Value != nil && alt.Value.Items != nil && matches(alt, v) {
				items = append(items, alt.Value.Items)
			}
		}
		for i, it := range x {
			for _, item := range items {
				undocumented(item, it, fmt.Sprintf("%s[%d]", at, i), out)
			}
		}
	}
}

// declared collects, for an object value, the property schemas of ref
// and of its allOf parts and matching oneOf/anyOf alternatives; open is
// true when any of them accepts undeclared members.
func declared(ref *openapi3.SchemaRef, v map[string]any) (map[string][]*openapi3.SchemaRef, bool) {
	known := map[string][]*openapi3.SchemaRef{}
	open := false
	var walk func(r *openapi3.SchemaRef)
	walk = func(r *openapi3.SchemaRef) {
		if r == nil || r.Value == nil {
			return
		}
		s := r.Value
		for name, p := range s.Properties {
			known[name] = append(known[name], p)
		}
		ap := s.AdditionalProperties
		if (ap.Has != nil && *ap.Has) || ap.Schema != nil {
			open = true
		}
		if len(s.Properties) == 0 && len(s.AllOf) == 0 && len(s.OneOf) == 0 && len(s.AnyOf) == 0 {
			open = true // a free-form object
		}
		for _, p := range s.AllOf {
			walk(p)
		}
		for _, p := range append(append([]*openapi3.SchemaRef{}, s.OneOf...), s.AnyOf...) {
			if matches(p, v) {
				walk(p)
			}
		}
	}
	walk(ref)
	return known, open
}

func matches(r *openapi3.SchemaRef, v any) bool {
	return r.Value.VisitJSON(normalize(v), openapi3.EnableJSONSchema2020()) == nil
}

// normalize turns json.Number into float64 for kin-openapi's visitor.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = normalize(e)
		}
		return a
	}
	return v
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}
