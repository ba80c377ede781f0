package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func TestFlagsFirstMovesFlagsBeforePositionalArguments(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("reason", "", "")
	fs.Int64("at", 0, "")
	fs.Bool("quiet", false, "")
	for _, c := range []struct{ in, want []string }{
		{[]string{"REQ", "--reason", "too much"}, []string{"--reason", "too much", "--", "REQ"}},
		{[]string{"--reason=x", "REQ"}, []string{"--reason=x", "--", "REQ"}},
		{[]string{"--at", "-1"}, []string{"--at", "-1", "--"}},
		{[]string{"A", "--quiet", "B"}, []string{"--quiet", "--", "A", "B"}},
		{[]string{"A", "-", "--", "--reason", "B"}, []string{"--", "A", "-", "--reason", "B"}},
		{[]string{"A", "--unknown", "B"}, []string{"--unknown", "--", "A", "B"}},
	} {
		require.Equal(t, c.want, flagsFirst(fs, c.in), c.in)
	}
}

// Every command accepts its flags after its positional arguments: the
// usage lines show them there (`pools reject REQUEST_ID --reason …`).
// --help placed last must reach the command's own flag set.
func TestEveryCommandTakesFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	commands := [][]string{
		{"migrate"},
		{"projections", "status"}, {"projections", "rebuild", "NAME"},
		{"audit", "verify"}, {"audit", "balances"}, {"audit", "reconcile"},
		{"events", "export"},
		{"users", "create"},
		{"partners", "approve", "ptr_x"}, {"partners", "suspend", "ptr_x"}, {"partners", "set-tier", "ptr_x", "STANDARD"},
		{"partners", "configure", "ptr_x"},
		{"pools", "pending"}, {"pools", "approve", "REQ"}, {"pools", "reject", "REQ"},
		{"nonprofits", "import", "FILE"}, {"donations", "refund", "don_x"},
		{"sign"},
	}
	covered := map[string]bool{}
	for _, c := range commands {
		covered[c[0]] = true
		args := append(append([]string{}, c...), "extra-positional", "--help")
		code, _, errOut := ctl(t, args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
	}
	var missing []string
	for name := range groups {
		if !covered[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "commands this test does not exercise")

	// And they take effect: the flag after the name is the one used.
	code, _, errOut := ctl(t, "projections", "rebuild", "nope", "--database-url", "postgres://127.0.0.1:1/none")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, `no projection named "nope"`)
}

// newEmptyDB creates a database without migrations, as an operator's fresh
// one is, and drops it when t ends.
func newEmptyDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testenv.AdminURL())
	require.NoError(t, err, "start PostgreSQL or set TEST_DATABASE_URL")
	defer admin.Close(ctx)
	name := "ledger_test_empty_" + strings.ToLower(eventstore.NewID("db")[3:])
	name = strings.NewReplacer("-", "_").Replace(name)
	_, err = admin.Exec(ctx, `CREATE DATABASE `+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), testenv.AdminURL())
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(testenv.AdminURL())
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

// On a database nobody migrated, commands say the schema is missing and
// how to create it, instead of PostgreSQL's bare "relation does not exist".
func TestCommandsOnAnUnmigratedDatabaseSayToMigrate(t *testing.T) {
	t.Parallel()
	dbURL := newEmptyDB(t)
	for _, args := range [][]string{
		{"projections", "status"}, {"audit", "verify"}, {"audit", "reconcile"}, {"audit", "balances"},
		{"pools", "pending"}, {"pools", "approve", "REQ"}, {"events", "export"},
	} {
		code, _, errOut := ctl(t, append(args, "--database-url", dbURL)...)
		require.Equal(t, 1, code, "%v: %s", args, errOut)
		require.Contains(t, errOut, "the database schema is missing", args)
		require.Contains(t, errOut, "run `ledgerctl migrate`", args)
	}
	code, out, errOut := ctl(t, "migrate", "--database-url", dbURL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "migrated schema")
	code, _, errOut = ctl(t, "audit", "verify", "--database-url", dbURL)
	require.Equal(t, 0, code, errOut)
}

func TestExplainListsValidationDetails(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("creating: %w", eventstore.Invalid("invalid portal user",
		eventstore.FieldIssue{Field: "email", Issue: "must be a valid email address"},
		eventstore.FieldIssue{Field: "password", Issue: "must be 8 to 72 bytes"}))
	require.Equal(t, "creating: VALIDATION_ERROR: invalid portal user\n  email: must be a valid email address\n  password: must be 8 to 72 bytes", explain(err))
}

// Ranges that select nothing by mistake are refused, and a position past
// the head is named as such rather than silently replaced.
func TestAuditAndExportRefuseEmptyRanges(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	s := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(s.Close)
	for i := 0; i < 3; i++ {
		_, err := s.Append(context.Background(), eventstore.Tenant{PartnerID: "p1", Environment: "sandbox"}, events.Metadata{}, "note-1", eventstore.ExpectAny, ctlNote{N: i})
		require.NoError(t, err)
	}

	code, out, errOut := ctl(t, "audit", "balances", "--at", "-1", "--database-url", db.URL)
	require.Equal(t, 1, code, out)
	require.Contains(t, errOut, "--at -1 is not a position")

	code, out, errOut = ctl(t, "audit", "balances", "--at", "99", "--database-url", db.URL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "--at 99 is past the head (position 3): showing balances as of the head")

	code, out, errOut = ctl(t, "audit", "balances", "--at", "2", "--database-url", db.URL)
	require.Equal(t, 0, code, errOut)
	require.NotContains(t, out, "past the head")

	code, out, errOut = ctl(t, "events", "export", "--from", "5", "--to", "3", "--database-url", db.URL)
	require.Equal(t, 1, code, out)
	require.Contains(t, errOut, "--from 5 is after --to 3")
}
