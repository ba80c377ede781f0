package ledger_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/sirgiving/ledger/"

// imports returns the non-test imports of the package in dir.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, is := range af.Imports {
			p, _ := strconv.Unquote(is.Path.Value)
			out = append(out, p)
		}
	}
	return out
}

// The import rule of docs/architecture.md: the domain imports no database,
// broker, HTTP or metrics package; the engine nothing of the domain; the
// read side never the domain; nothing imports httpapi or the wiring.
func TestImportRule(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	forbidden := map[string][]string{
		"ledger":                   {"github.com/jackc/pgx", "github.com/nats-io", "net/http", "github.com/prometheus", module + "projections", module + "httpapi", module + "webhooks", module + "internal/app"},
		"ledger/eventstore":        {module + "ledger\x00", module + "projections", module + "httpapi", module + "webhooks", module + "internal/app"},
		"events":                   {module},
		"projections":              {module + "ledger\x00", module + "httpapi", module + "webhooks", module + "apiusage", module + "internal/app"},
		"webhooks":                 {module + "ledger\x00", module + "httpapi", module + "apiusage", module + "internal/app"},
		"apiusage":                 {module + "ledger\x00", module + "httpapi", module + "internal/app"},
		"internal/infra/bus":       {module + "ledger", module + "projections", module + "httpapi", module + "webhooks", module + "internal"},
		"internal/infra/natsembed": {module},
		"internal/infra/netguard":  {module},
		"internal/infra/secretbox": {module},
	}
	for dir, bad := range forbidden {
		for _, imp := range imports(t, filepath.Join(root, dir)) {
			for _, b := range bad {
				// A trailing NUL means "exactly this package", not its children.
				exact, prefix := strings.CutSuffix(b, "\x00")
				if (prefix && imp == exact) || (!prefix && strings.HasPrefix(imp, b)) {
					t.Errorf("%s imports %s, which the layout forbids", dir, imp)
				}
			}
		}
	}
	_, err = os.Stat(filepath.Join(root, "ledger", "eventstore"))
	require.NoError(t, err)
}
