package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

func init() {
	register(group{name: "users", summary: "portal users (create)", run: runUsers})
}

const usersHelp = `usage: ledgerctl users <create> [flags]

  create --email E --password-stdin   create a portal user; the password is the first line
                                      of stdin (never argv, which other users can read).
                                      Returns once the user can log in, which takes a running
                                      ledgerd (it applies the accounts read model); --wait
                                      bounds how long it waits for that (default 15s)`

func runUsers(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "users", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"create": usersCreate,
	}, usersHelp)
}

func usersCreate(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("users create", "users create --email E --password-stdin [--database-url URL]")
	email := fs.String("email", "", "the user's email (login)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin (required)")
	wait := fs.Duration("wait", 15*time.Second, "how long to wait for ledgerd to make the user able to log in")
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
	return withLedgerPool(ctx, *dbURL, ledger.Options{MasterKey: masterKey}, func(s *ledger.Service, pool *pgxpool.Pool) error {
		id, res, err := s.CreatePortalUser(ctx, events.Metadata{Actor: "ledgerctl"}, *email, password)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created portal user %s (%s)\n", id, ledger.NormalizeEmail(*email))
		return waitLogin(ctx, pool, res.Position, *wait, out)
	})
}

// waitLogin returns once the accounts read model, which login reads, has
// applied position: only then can the user just created log in. Without
// it an operator who logs in at once is refused with 401 now and then.
// ledgerd's projector applies the event, not ledgerctl, so a ledgerd that
// is not running would make the wait endless; it is bounded, and the
// message says what to check.
func waitLogin(ctx context.Context, q eventstore.Querier, position int64, wait time.Duration, out io.Writer) error {
	err := projections.WaitPosition(ctx, q, position, wait, projections.AccountsName)
	if err == nil {
		fmt.Fprintln(out, "the user can log in")
		return nil
	}
	if !errors.Is(err, projections.ErrNotCaughtUp) || ctx.Err() != nil {
		return err
	}
	at := "has never run on this database"
	var applied int64
	var updated time.Time
	qerr := q.QueryRow(ctx, `SELECT position, updated_at FROM projection_checkpoints WHERE name = $1`, projections.AccountsName).Scan(&applied, &updated)
	if qerr == nil {
		at = fmt.Sprintf("is at position %d (last moved %s)", applied, updated.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("the user is created (position %d) but cannot log in yet: after %s the accounts read model %s. "+
		"ledgerd applies it: is ledgerd running against this database? The user can log in once it catches up", position, wait, at)
}

// withLedger opens the event store on the database and runs one domain
// command through it.
func withLedger(ctx context.Context, url string, opts ledger.Options, fn func(*ledger.Service) error) error {
	return withLedgerPool(ctx, url, opts, func(s *ledger.Service, _ *pgxpool.Pool) error { return fn(s) })
}

// withLedgerPool is withLedger for commands that also read the database
// after the command (e.g. to wait for a read model).
func withLedgerPool(ctx context.Context, url string, opts ledger.Options, fn func(*ledger.Service, *pgxpool.Pool) error) error {
	pool, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	s := eventstore.OpenStore(pool, eventstore.StoreOptions{})
	defer s.Close()
	return fn(ledger.NewService(s, opts), pool)
}
