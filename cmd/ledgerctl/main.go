// Command ledgerctl is the operator's tool for the SIR Giving ledger:
// portal users, partner approval and tiers, and request signing. It
// connects to PostgreSQL through DATABASE_URL.
//
//	ledgerctl <command> [<subcommand>] [flags]
//
// Every command takes --help and exits non-zero on failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/ledger"
)

// command is one entry of the dispatch table.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

// commands is the dispatch table; each command group lives in its own file
// and adds itself here.
var commands = map[string]command{
	"users":    {summary: "manage portal users (create)", run: runUsers},
	"partners": {summary: "approve, suspend or set the tier of a partner", run: runPartners},
	"sign":     {summary: "print the headers of a signed partner API request", run: runSign},
}

func main() {
	if err := dispatch(context.Background(), os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ledgerctl:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stderr)
		if len(args) == 0 {
			return errors.New("missing command")
		}
		return flag.ErrHelp
	}
	c, ok := commands[args[0]]
	if !ok {
		usage(os.Stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return c.run(ctx, args[1:], out)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ledgerctl <command> [<subcommand>] [flags]   (each takes --help)")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nenvironment: DATABASE_URL (PostgreSQL connection string)")
}

// subcommands dispatches a command group's subcommands.
func subcommands(ctx context.Context, group string, subs map[string]command, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(os.Stderr, "usage: ledgerctl %s <subcommand> [flags]\n\nsubcommands:\n", group)
		names := make([]string, 0, len(subs))
		for n := range subs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, subs[n].summary)
		}
		if len(args) == 0 {
			return fmt.Errorf("%s: missing subcommand", group)
		}
		return flag.ErrHelp
	}
	c, ok := subs[args[0]]
	if !ok {
		return fmt.Errorf("%s: unknown subcommand %q (try ledgerctl %s --help)", group, args[0], group)
	}
	return c.run(ctx, args[1:], out)
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: ledgerctl %s\n", usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// openStore connects to DATABASE_URL and opens the event store.
func openStore(ctx context.Context) (*ledger.Store, func(), error) {
	url := strings.TrimSpace(os.Getenv("DATABASE_URL"))
	if url == "" {
		return nil, nil, errors.New("DATABASE_URL is not set")
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("PostgreSQL unreachable: %w", err)
	}
	store := ledger.OpenStore(pool, ledger.StoreOptions{})
	return store, func() { store.Close(); pool.Close() }, nil
}
