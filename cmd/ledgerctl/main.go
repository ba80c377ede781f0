// Command ledgerctl is the operator and auditor CLI: migrations, projection
// status and rebuilds, hash-chain verification and event export, and the
// account and pool administration commands. Every command has --help,
// prints what it did, and exits non-zero on failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// group is a top-level command ("projections", "audit", …). Files register
// theirs from init so each command group lives in its own file.
type group struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

var groups = map[string]group{}

func register(g group) { groups[g.name] = g }

// errUsage marks a mistake in the command line: usage was already printed.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, out, errOut io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(errOut)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	g, ok := groups[args[0]]
	if !ok {
		fmt.Fprintf(errOut, "ledgerctl: unknown command %q\n\n", args[0])
		usage(errOut)
		return 2
	}
	if err := g.run(ctx, args[1:], out); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		fmt.Fprintf(errOut, "ledgerctl %s: %s\n", args[0], explain(err))
		return 1
	}
	return 0
}

// undefinedTable is PostgreSQL's SQLSTATE for a relation that does not
// exist (42P01 undefined_table).
const undefinedTable = "42P01"

// explain renders a command's failure for an operator. Every command's
// error is printed through it, so two cases read the same everywhere:
//
//   - a database without the schema (any relation missing, e.g. event_head
//     on a fresh database) says so and names the fix, instead of
//     PostgreSQL's bare `relation "event_head" does not exist`;
//   - a validation error lists its field details (`password: must be 8 to
//     72 bytes`), which its one-line message leaves out.
func explain(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == undefinedTable {
		return fmt.Sprintf("the database schema is missing (%s): run `ledgerctl migrate` on this database first "+
			"(ledgerd also migrates when it starts), and check that DATABASE_URL names the service's database", pg.Message)
	}
	msg := err.Error()
	var de *eventstore.Error
	if errors.As(err, &de) {
		for _, d := range de.Details {
			msg += fmt.Sprintf("\n  %s: %s", d.Field, d.Issue)
		}
	}
	return msg
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ledgerctl <command> [subcommand] [flags]\n\ncommands:")
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, groups[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'ledgerctl <command> --help' for details. The database is DATABASE_URL or --database-url.")
}

// subcommands dispatches "group verb args…" to verb handlers.
func subcommands(ctx context.Context, name string, args []string, out io.Writer, verbs map[string]func(context.Context, []string, io.Writer) error, help string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, help)
		if len(args) == 0 {
			return errUsage
		}
		return flag.ErrHelp
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "ledgerctl %s: unknown subcommand %q\n%s\n", name, args[0], help)
		return errUsage
	}
	return v(ctx, args[1:], out)
}

// newFlags returns a flag set with the shared --database-url flag.
func newFlags(name, usageLine string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Not the flag's default: --help would print it, password included.
	db := fs.String("database-url", "", "PostgreSQL URL (default: $DATABASE_URL)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ledgerctl %s\n\nflags:\n", usageLine)
		fs.PrintDefaults()
	}
	return fs, db
}

// parse parses args with fs, accepting flags anywhere among the positional
// arguments: `pools reject REQ --reason x` is what the usage lines show, and
// the standard flag package would stop at REQ and leave --reason unparsed.
// Every command parses through here, so the rule holds for all of them.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(flagsFirst(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	return nil
}

// flagsFirst reorders args so that every flag (with its value, when the flag
// takes one) comes before the positional arguments, keeping the relative
// order within each. "--" ends the flags, as it does for the flag package:
// what follows it stays positional, so an argument starting with "-" can
// still be passed. A lone "-" is positional (it conventionally means stdin).
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		// A flag that takes a value consumes the next argument, even one
		// that starts with "-" (`--at -1` is the value -1, for the command
		// to judge). Unknown flags are left for fs.Parse to report.
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(append(flags, "--"), positional...)
}

// isBoolFlag reports whether f is set by its mere presence (--quiet), the
// test the flag package itself uses.
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	if strings.TrimSpace(url) == "" {
		url = os.Getenv("DATABASE_URL")
	}
	if strings.TrimSpace(url) == "" {
		return nil, errors.New("no database: set DATABASE_URL or pass --database-url")
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot reach PostgreSQL: %w", err)
	}
	return pool, nil
}
