// Command openapigen writes httpapi/openapi.json from package openapigen.
// Run it through `go generate ./httpapi/`.
package main

import (
	"fmt"
	"os"

	"github.com/sirgiving/ledger/httpapi/internal/openapigen"
)

func main() {
	out := "openapi.json"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	b, err := openapigen.Document()
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}
