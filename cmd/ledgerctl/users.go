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
	"github.com/sirgiving/ledger/ledger"
)

func runUsers(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "users", map[string]command{
		"create": {summary: "create a portal user (password read from stdin)", run: usersCreate},
	}, args, out)
}

func usersCreate(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("users create", "users create --email E --password-stdin")
	email := fs.String("email", "", "the user's email (login)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin (required: never pass it in argv)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *email == "" || !*pwStdin || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("users create: --email and --password-stdin are required")
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the password from stdin: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	store, closeFn, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	id, _, err := ledger.CreatePortalUser(ctx, store, events.Metadata{Actor: "ledgerctl"}, *email, password)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "created portal user %s (%s)\n", id, ledger.NormalizeEmail(*email))
	return nil
}
