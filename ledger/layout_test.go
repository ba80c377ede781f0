package ledger_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/sirgiving/ledger/"

// moduleRoot is the checkout's root, seen from this package's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

// sourceFiles returns the non-test Go files of the package in dir.
func sourceFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	out := files[:0]
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			out = append(out, f)
		}
	}
	return out
}

// imports returns the non-test imports of the package in dir.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, f := range sourceFiles(t, dir) {
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
	root := moduleRoot(t)
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
	_, err := os.Stat(filepath.Join(root, "ledger", "eventstore"))
	require.NoError(t, err)
}

// CONTRIBUTING's rule that every exported identifier says what it
// promises: each exported function, method of an exported type, type,
// constant and variable outside tests carries a doc comment (a group's
// comment covers its members, as go doc shows them).
func TestExportedIdentifiersAreDocumented(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	fset := token.NewFileSet()
	var missing []string
	note := func(pos token.Pos, what string) {
		p := fset.Position(pos)
		rel, _ := filepath.Rel(root, p.Filename)
		missing = append(missing, rel+":"+strconv.Itoa(p.Line)+": "+what)
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				if decl.Name.IsExported() && decl.Doc == nil && exportedReceiver(decl) {
					note(decl.Pos(), "func "+decl.Name.Name)
				}
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						if spec.Name.IsExported() && decl.Doc == nil && spec.Doc == nil {
							note(spec.Pos(), "type "+spec.Name.Name)
						}
					case *ast.ValueSpec:
						for _, name := range spec.Names {
							if name.IsExported() && decl.Doc == nil && spec.Doc == nil && spec.Comment == nil {
								note(name.Pos(), decl.Tok.String()+" "+name.Name)
							}
						}
					}
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, missing, "exported identifiers without a doc comment")
}

// exportedReceiver reports whether fn is a function or a method whose
// receiver type is exported: a method of an unexported type is not part
// of any package's documentation.
func exportedReceiver(fn *ast.FuncDecl) bool {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return true
	}
	typ := fn.Recv.List[0].Type
	for {
		switch x := typ.(type) {
		case *ast.StarExpr:
			typ = x.X
		case *ast.IndexExpr:
			typ = x.X
		case *ast.IndexListExpr:
			typ = x.X
		case *ast.Ident:
			return x.IsExported()
		default:
			return true
		}
	}
}

// Money and tokens are never floats: the domain and the events it records
// (ledger/ and events/, engine excluded: its metrics are Prometheus
// floats) name no float type and parse no float, so no amount can pass
// through binary floating point on its way to the log.
func TestDomainHasNoFloats(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	fset := token.NewFileSet()
	var found []string
	for _, dir := range []string{"ledger", "events"} {
		files := sourceFiles(t, filepath.Join(root, dir))
		require.NotEmpty(t, files)
		for _, path := range files {
			f, err := parser.ParseFile(fset, path, nil, 0)
			require.NoError(t, err)
			ast.Inspect(f, func(n ast.Node) bool {
				var name string
				switch x := n.(type) {
				case *ast.Ident:
					name = x.Name
				case *ast.SelectorExpr:
					name = x.Sel.Name
				default:
					return true
				}
				if name == "float32" || name == "float64" || name == "ParseFloat" || name == "Float64" || name == "Float32" {
					found = append(found, fset.Position(n.Pos()).String()+": "+name)
				}
				return true
			})
		}
	}
	require.Empty(t, found, "floating point in the domain")
}
