package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/httpapi/internal/openapigen"
	"github.com/sirgiving/ledger/internal/testkit/apitest"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

func TestOpenAPIDocumentIsValidAndFresh(t *testing.T) {
	t.Parallel()
	doc, err := apitest.Document()
	require.NoError(t, err)
	require.Equal(t, "3.1.0", doc.OpenAPI)

	gen, err := openapigen.Document()
	require.NoError(t, err)
	require.True(t, string(gen) == string(httpapi.OpenAPIDocument()),
		"httpapi/openapi.json is stale: run `go generate ./httpapi/` and commit it")

	for _, kind := range []string{"bearerJWT", "partnerKey", "hmacKey", "hmacSecretKey", "hmacTimestamp", "hmacSignature"} {
		require.Contains(t, doc.Components.SecuritySchemes, kind)
	}
	require.Contains(t, doc.Info.Description, `signedPayload = X-Timestamp + METHOD + pathWithQuery + bodyHash      -- plain concatenation`)
	for _, ev := range []string{"action.completed", "action.failed", "action.reversed", "transaction.completed",
		"token_pool.low_balance", "campaign.status_changed", "webhook.test"} {
		require.Contains(t, doc.Webhooks, ev)
	}
}

type endpoint struct{ method, path, auth string }

func tsvEndpoints(t *testing.T) []endpoint {
	f, err := os.Open("testdata/endpoints.tsv")
	require.NoError(t, err)
	defer f.Close()
	var out []endpoint
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		if first || strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		cols := strings.Split(sc.Text(), "\t")
		require.Len(t, cols, 4, sc.Text())
		out = append(out, endpoint{cols[0], cols[1], cols[2]})
	}
	require.NoError(t, sc.Err())
	return out
}

func openAPIPath(p string) string { return openapigen.OpenAPIPath(p) }

// authKindOf derives the endpoints.tsv auth kind from an operation's
// security requirement.
func authKindOf(t *testing.T, op *openapi3.Operation) string {
	require.NotNil(t, op.Security, op.OperationID+": security must be explicit")
	sec := *op.Security
	if len(sec) == 0 {
		return string(httpapi.AuthLogin)
	}
	require.Len(t, sec, 1, op.OperationID)
	var names []string
	for name := range sec[0] {
		names = append(names, name)
	}
	sort.Strings(names)
	switch strings.Join(names, ",") {
	case "bearerJWT":
		return string(httpapi.AuthJWT)
	case "partnerKey":
		return string(httpapi.AuthWidget)
	case "hmacKey,hmacSignature,hmacTimestamp":
		return string(httpapi.AuthHMAC)
	case "hmacSecretKey,hmacSignature,hmacTimestamp":
		return string(httpapi.AuthHMACSecret)
	}
	t.Fatalf("%s: unexpected security %v", op.OperationID, names)
	return ""
}

func TestOpenAPICoversEveryRouteWithItsAuthKind(t *testing.T) {
	t.Parallel()
	doc, err := apitest.Document()
	require.NoError(t, err)

	documented := map[endpoint]*openapi3.Operation{}
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			require.NotEmpty(t, op.OperationID, "%s %s", method, path)
			require.False(t, ids[op.OperationID], "duplicate operationId %s", op.OperationID)
			ids[op.OperationID] = true
			kind := authKindOf(t, op)
			require.Equal(t, kind, op.Extensions["x-sir-auth"], op.OperationID)
			documented[endpoint{method, path, kind}] = op
		}
	}

	purposes := map[endpoint]string{}
	fromRoutes := map[endpoint]bool{}
	for _, rt := range httpapi.Routes() {
		e := endpoint{rt.Method, openAPIPath(rt.Path), string(rt.Auth)}
		fromRoutes[e] = true
		purposes[e] = rt.Purpose
		require.Contains(t, documented, e, "route %s %s (%s) has no operation with that security", rt.Method, rt.Path, rt.Auth)
	}
	fromTSV := map[endpoint]bool{}
	for _, e := range tsvEndpoints(t) {
		e.path = openAPIPath(e.path)
		fromTSV[e] = true
		require.Contains(t, documented, e, "endpoints.tsv line %v has no operation with that security", e)
	}
	require.Len(t, fromTSV, 50)
	for e, op := range documented {
		require.True(t, fromRoutes[e], "operation %s (%v) is not a route", op.OperationID, e)
		require.True(t, fromTSV[e], "operation %s (%v) is not in endpoints.tsv", op.OperationID, e)
		require.Equal(t, purposes[e], op.Summary, op.OperationID)
		require.Len(t, op.Tags, 1, op.OperationID)
		require.Equal(t, e.path == "/v1/partner/actions/bulk/{jobId}", op.Deprecated, op.OperationID)

		// Every operation documents the error statuses any request can meet,
		// 501 included, with the error body.
		statuses := []int{401, 429, 500, 501, 503}
		if e.auth != string(httpapi.AuthLogin) {
			statuses = append(statuses, 403)
		}
		for _, st := range statuses {
			r := op.Responses.Status(st)
			require.NotNil(t, r, "%s lacks %d", op.OperationID, st)
			require.Equal(t, "Error", refName(r.Value.Content.Get("application/json").Schema), "%s %d", op.OperationID, st)
			require.Contains(t, r.Value.Headers, "X-Request-Id")
		}
		// Success statuses carry the request id and, when authenticated,
		// the rate-limit headers (required).
		for code, r := range op.Responses.Map() {
			if !strings.HasPrefix(code, "2") {
				continue
			}
			require.True(t, r.Value.Headers["X-Request-Id"].Value.Required, "%s %s", op.OperationID, code)
			if e.auth != string(httpapi.AuthLogin) {
				for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
					require.True(t, r.Value.Headers[h].Value.Required, "%s %s %s", op.OperationID, code, h)
				}
			}
		}
	}
	submit := documented[endpoint{"POST", "/v1/partner/actions/submit", string(httpapi.AuthHMACSecret)}]
	replay := submit.Responses.Status(409).Value
	require.True(t, replay.Headers["Idempotent-Replayed"].Value.Required)
	require.Equal(t, "ActionResult", refName(replay.Content.Get("application/json").Schema))
}

func refName(s *openapi3.SchemaRef) string {
	if s == nil {
		return ""
	}
	return s.Ref[strings.LastIndexByte(s.Ref, '/')+1:]
}

// TestOpenAPITokensAreIntegers walks every schema: `number` appears only
// where a decimal may be given as a JSON number (inputs) or for a
// statistic, never for tokens.
func TestOpenAPITokensAreIntegers(t *testing.T) {
	t.Parallel()
	var raw any
	require.NoError(t, json.Unmarshal(httpapi.OpenAPIDocument(), &raw))
	var numbers []string
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if x["type"] == "number" {
				numbers = append(numbers, at)
			}
			if types, ok := x["type"].([]any); ok {
				for _, ty := range types {
					if ty == "number" {
						numbers = append(numbers, at)
					}
				}
			}
			for k, e := range x {
				walk(e, at+"/"+k)
			}
		case []any:
			for i, e := range x {
				walk(e, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(raw, "#")
	sort.Strings(numbers)
	require.Equal(t, []string{
		"#/components/schemas/DecimalInput/oneOf/1",
		"#/components/schemas/ErrorRate",
		"#/components/schemas/LatencyPercentiles/properties/p50",
		"#/components/schemas/LatencyPercentiles/properties/p99",
		"#/components/schemas/SubmitActionRequest/properties/amount/oneOf/1",
		"#/components/schemas/WebhookHealth/properties/latencyMs/properties/p50",
		"#/components/schemas/WebhookHealth/properties/latencyMs/properties/p99",
		"#/components/schemas/WebhookHealth/properties/successRate",
	}, numbers)
}

func TestResponsesMatchOpenAPIWithoutCredentials(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)
	sample := map[string]string{
		"id": "x_0123", "slug": "red-cross", "partnerDonationId": "don-1", "externalId": "user-1",
		"actionId": "act_0123", "jobId": "job-1", "deliveryId": "whd_0123",
	}
	for _, rt := range httpapi.Routes() {
		path := rt.Path
		for name, v := range sample {
			path = strings.ReplaceAll(path, ":"+name, v)
		}
		require.NotContains(t, path, ":", "no sample value for a parameter of %s", rt.Path)
		var body io.Reader
		if rt.Method == http.MethodPost || rt.Method == http.MethodPatch {
			body = strings.NewReader("{}")
		}
		req, err := http.NewRequest(rt.Method, srv.URL+path, body)
		require.NoError(t, err)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.GreaterOrEqual(t, resp.StatusCode, 400, "%s %s answered %d without credentials", rt.Method, path, resp.StatusCode)
		apitest.CheckResponse(t, rt.Method, path, resp.StatusCode, resp.Header, b)
	}
}

func TestDocsPageAndDocumentAreServed(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t)

	resp, err := http.Get(srv.URL + "/partner-api/openapi.json")
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NotEmpty(t, resp.Header.Get("X-Request-Id"))
	require.True(t, string(httpapi.OpenAPIDocument()) == string(b), "served document differs from the embedded file")
	disk, err := os.ReadFile("openapi.json")
	require.NoError(t, err)
	require.True(t, string(disk) == string(b), "served document differs from httpapi/openapi.json")

	for _, p := range []string{"/partner-api", "/partner-api/"} {
		resp, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		page, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
		require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		require.Contains(t, string(page), `"/partner-api/openapi.json"`)
		require.Contains(t, string(page), "<script>")
		// Nothing is loaded from elsewhere: no external script, style or font.
		require.NotRegexp(t, `(?i)(src|href)\s*=\s*["']?(https?:)?//`, string(page))
		require.NotContains(t, string(page), "@import")
		csp := resp.Header.Get("Content-Security-Policy")
		require.Contains(t, csp, "default-src 'none'")
		require.Contains(t, csp, "script-src 'sha256-")
		require.Contains(t, csp, "connect-src 'self'")
	}
}

// TestOpenAPILintRules checks, without npm, the rules of `redocly lint`'s
// recommended set that the generated document once broke (`make
// openapi-lint` runs redocly itself when npm is available).
func TestOpenAPILintRules(t *testing.T) {
	t.Parallel()
	require.Empty(t, openAPILintProblems(t, httpapi.OpenAPIDocument()))
}

// openAPILintProblems lists the document's violations of:
//   - security-defined: every operation, webhooks included, states its
//     security (an explicit empty list when no scheme of ours applies),
//     and names only defined schemes;
//   - info-license: info.license is present, with a name;
//   - no-unused-components: every component is referred to;
//   - operation-2xx-response: every operation documents a 2xx answer, or
//     says why it has none (x-sir-no-success-response);
//   - no-ambiguous-paths: two paths that the same URL can match (by
//     redocly's definition) share no method, so no request is ambiguous.
//     The contract fixes GET /actions/bulk/{jobId} and POST
//     /actions/{actionId}/reverse, which redocly flags though they differ
//     in method; httpapi/.redocly.lint-ignore.yaml records that exception.
func openAPILintProblems(t *testing.T, raw []byte) []string {
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	asMap := func(v any) map[string]any { m, _ := v.(map[string]any); return m }
	components := asMap(doc["components"])
	schemes := asMap(components["securitySchemes"])

	info := asMap(doc["info"])
	if lic := asMap(info["license"]); lic == nil || lic["name"] == "" || lic["name"] == nil {
		add("info.license is missing or has no name")
	}

	usedSchemes := map[string]bool{}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	checkOperations := func(kind string, items map[string]any) {
		for path, item := range items {
			for _, m := range methods {
				op := asMap(asMap(item)[m])
				if op == nil {
					continue
				}
				at := fmt.Sprintf("%s %s %s", kind, strings.ToUpper(m), path)
				sec, ok := op["security"].([]any)
				if !ok && doc["security"] == nil {
					add("%s: no security (state an empty list if none applies)", at)
				}
				for _, req := range sec {
					for name := range asMap(req) {
						usedSchemes[name] = true
						if schemes[name] == nil {
							add("%s: security names undefined scheme %q", at, name)
						}
					}
				}
				has2xx := false
				for code := range asMap(op["responses"]) {
					has2xx = has2xx || strings.HasPrefix(code, "2")
				}
				if why, _ := op["x-sir-no-success-response"].(string); !has2xx && why == "" {
					add("%s: no 2xx response, and no x-sir-no-success-response saying why", at)
				}
			}
		}
	}
	paths := asMap(doc["paths"])
	checkOperations("path", paths)
	checkOperations("webhook", asMap(doc["webhooks"]))

	refs := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				refs[r] = true
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	for kind, group := range components {
		for name := range asMap(group) {
			if kind == "securitySchemes" {
				if !usedSchemes[name] {
					add("components.securitySchemes.%s is never used", name)
				}
			} else if !refs["#/components/"+kind+"/"+name] {
				add("components.%s.%s is never used", kind, name)
			}
		}
	}

	type tmpl struct {
		path string
		segs []string
		vars int
	}
	isVar := func(s string) bool { return len(s) > 2 && strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") }
	var all []tmpl
	for p := range paths {
		tp := tmpl{path: p, segs: strings.Split(p, "/")}
		for _, s := range tp.segs {
			if isVar(s) {
				tp.vars++
			}
		}
		all = append(all, tp)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].path < all[j].path })
	for i, a := range all {
		for _, b := range all[i+1:] {
			if len(a.segs) != len(b.segs) || a.vars != b.vars {
				continue
			}
			ambiguous := true
			for k := range a.segs {
				if !isVar(a.segs[k]) && !isVar(b.segs[k]) && a.segs[k] != b.segs[k] {
					ambiguous = false
				}
			}
			if !ambiguous {
				continue
			}
			for _, m := range methods {
				if asMap(paths[a.path])[m] != nil && asMap(paths[b.path])[m] != nil {
					add("paths %s and %s are ambiguous and both have %s", a.path, b.path, strings.ToUpper(m))
				}
			}
		}
	}
	sort.Strings(problems)
	return problems
}
