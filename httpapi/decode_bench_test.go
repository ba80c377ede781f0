package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkDecodeSubmitBody decodes the side-by-side load's submit body:
// the request path's own cost before any domain work.
func BenchmarkDecodeSubmitBody(b *testing.B) {
	body := `{"idempotencyKey":"kabc_1_2","actionType":"PURCHASE","amount":1,"currency":"USD",` +
		`"stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"u17"}],"autoCreateUsers":true}`
	b.ReportAllocs()
	for b.Loop() {
		var in actionRequest
		if _, err := decodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(body)), &in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignedBodyThenDecode is what a signed write does with its body
// before any domain work: buffer it for the signature, then decode it. A
// bulk body of 100 actions is where copying it twice showed.
func BenchmarkSignedBodyThenDecode(b *testing.B) {
	one := `{"idempotencyKey":"kabc_1_2","actionType":"PURCHASE","amount":1,"currency":"USD",` +
		`"stakeholders":[{"stakeholderTypeCode":"CUSTOMER","partnerUserId":"u17"}],"autoCreateUsers":true}`
	bulk := `{"actions":[` + strings.Repeat(one+",", 99) + one + `]}`
	for _, c := range []struct {
		name, body string
		into       func() any
	}{
		{"submit", one, func() any { return new(actionRequest) }},
		{"bulk100", bulk, func() any {
			return new(struct {
				Actions []actionRequest `json:"actions"`
			})
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("POST", "/", strings.NewReader(c.body))
				if _, err := bufferBody(r); err != nil {
					b.Fatal(err)
				}
				if _, err := decodeJSON(r, c.into()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
