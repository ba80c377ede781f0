package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func init() {
	register(group{name: "users", summary: "portal users (create)", run: runUsers})
}

const usersHelp = `usage: ledgerctl users <create> [flags]

  create --email E --password-stdin   create a portal user; the password is the first line
                                      of stdin (never argv, which other users can read)`

func runUsers(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "users", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"create": usersCreate,
	}, usersHelp)
}

func usersCreate(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("users create", "users create --email E --password-stdin [--database-url URL]")
	email := fs.String("email", "", "the user's email (login)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *email == "" || !*pwStdin || fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the password from stdin: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	// The password hash is sealed under the same master key ledgerd uses:
	// LEDGER_MASTER_KEY, or in development the key under DATA_DIR.
	masterKey, err := app.MasterKeyFromEnv()
	if err != nil {
		return fmt.Errorf("master key: %w", err)
	}
	return withLedger(ctx, *dbURL, ledger.Options{MasterKey: masterKey}, func(s *ledger.Service) error {
		id, _, err := s.CreatePortalUser(ctx, events.Metadata{Actor: "ledgerctl"}, *email, password)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created portal user %s (%s)\n", id, ledger.NormalizeEmail(*email))
		return nil
	})
}

// withLedger opens the event store on the database and runs one domain
// command through it.
func withLedger(ctx context.Context, url string, opts ledger.Options, fn func(*ledger.Service) error) error {
	pool, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	s := eventstore.OpenStore(pool, eventstore.StoreOptions{})
	defer s.Close()
	return fn(ledger.NewService(s, opts))
}
