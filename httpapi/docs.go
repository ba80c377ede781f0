package httpapi

import (
	"bytes"
	"crypto/sha256"
	_ "embed" // the OpenAPI document and the docs page are compiled in
	"encoding/base64"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
)

//go:generate go run ./internal/openapigen/cmd/openapigen openapi.json

// openAPIDocument is the OpenAPI 3.1 document of the partner API, generated
// by internal/openapigen and committed; it is served as is.
//
//go:embed openapi.json
var openAPIDocument []byte

//go:embed docs.html
var docsPage []byte

// OpenAPIDocument returns a copy of the served OpenAPI document.
func OpenAPIDocument() []byte { return bytes.Clone(openAPIDocument) }

// docsCSP allows the page's own inline script and style (by hash) and
// requests to this origin only: the page loads nothing from elsewhere.
var docsCSP = func() string {
	hashes := func(tag string) string {
		re := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`)
		var out []string
		for _, m := range re.FindAllSubmatch(docsPage, -1) {
			sum := sha256.Sum256(m[1])
			out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		}
		return strings.Join(out, " ")
	}
	return "default-src 'none'; script-src " + hashes("script") + "; style-src " + hashes("style") +
		"; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// routeDocs serves the interactive reference and its document, without
// authentication.
func routeDocs(r *mux.Router) {
	r.HandleFunc("/partner-api/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write(openAPIDocument)
	}).Methods(http.MethodGet, http.MethodHead)
	page := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(docsPage)))
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", docsCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		_, _ = w.Write(docsPage)
	}
	r.HandleFunc("/partner-api", page).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/partner-api/", page).Methods(http.MethodGet, http.MethodHead)
}
