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
