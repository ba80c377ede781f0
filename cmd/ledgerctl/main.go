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

	"github.com/jackc/pgx/v5/pgxpool"
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
		fmt.Fprintf(errOut, "ledgerctl %s: %v\n", args[0], err)
		return 1
	}
	return 0
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

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	return nil
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
