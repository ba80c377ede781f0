package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/migrations"
	"github.com/sirgiving/ledger/projections"
)

func init() {
	register(group{name: "migrate", summary: "apply pending database migrations", run: runMigrate})
	register(group{name: "projections", summary: "projection status and rebuilds (status, rebuild NAME)", run: runProjections})
	register(group{name: "audit", summary: "verify the hash chain, balances as of any position, reconcile (verify, balances, reconcile)", run: runAudit})
	register(group{name: "events", summary: "export events as JSON lines (export)", run: runEvents})
}

func runMigrate(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("migrate", "migrate [--database-url URL]")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	from, to, err := migrations.Apply(ctx, conn.Conn())
	if err != nil {
		return err
	}
	if from == to {
		fmt.Fprintf(out, "schema is current (version %d)\n", to)
	} else {
		fmt.Fprintf(out, "migrated schema from version %d to %d\n", from, to)
	}
	return nil
}

const projectionsHelp = `usage: ledgerctl projections <status|rebuild> [flags]

  status            show each projection's position, the event store head and the lag
  rebuild NAME      rebuild NAME from the PostgreSQL event store into fresh tables and swap
                    them in atomically while the service keeps serving; never re-sends webhooks`

func runProjections(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "projections", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"status":  projectionsStatus,
		"rebuild": projectionsRebuild,
	}, projectionsHelp)
}

func projectionsStatus(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("projections status", "projections status [--database-url URL]")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	sts, err := projections.Statuses(ctx, pool)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tPOSITION\tHEAD\tLAG\tUPDATED\tSTATE")
	var failing []projections.Status
	for _, s := range sts {
		state := "ok"
		if s.FailingSince != nil {
			state = "FAILING since " + s.FailingSince.UTC().Format(time.RFC3339)
			failing = append(failing, s)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", s.Name, s.Position, s.Head, s.Lag, s.UpdatedAt.UTC().Format(time.RFC3339), state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range failing {
		fmt.Fprintf(out, "\n%s cannot advance past position %d; its last error:\n  %s\n", s.Name, s.Position, s.LastError)
	}
	return nil
}

func projectionsRebuild(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("projections rebuild", "projections rebuild NAME [--database-url URL]")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	name := fs.Arg(0)
	var target projections.Projection
	var known []string
	for _, p := range app.Projections() {
		known = append(known, p.Name())
		if p.Name() == name {
			target = p
		}
	}
	if target == nil {
		return fmt.Errorf("no projection named %q (known: %s)", name, strings.Join(known, ", "))
	}
	pool, err := connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	pos, err := projections.Rebuild(ctx, pool, target, func(p projections.RebuildProgress) {
		pct := 100.0
		if p.Head > 0 {
			pct = 100 * float64(p.Position) / float64(p.Head)
		}
		fmt.Fprintf(out, "rebuilding %s: %d/%d events (%.0f%%) in %s\n", p.Projection, p.Position, p.Head, pct, p.Elapsed.Round(time.Millisecond))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "rebuilt %s up to position %d and swapped it in\n", name, pos)
	return nil
}

func runAudit(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "audit", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"verify":    auditVerify,
		"balances":  auditBalances,
		"reconcile": auditReconcile,
	}, auditHelp)
}

const auditHelp = `usage: ledgerctl audit <verify|balances|reconcile> [flags]

  verify      walk the hash chain from the first event and name the first event that fails
  balances    pool and user balances as of any position, folded from the event store alone
  reconcile   fold the event store and check it: no pool overdrawn or user negative at any
              position, pools' payouts equal their actions', users' balances add up to the
              pools' net payouts; then compare with the rewards read model`

func auditFlags(name string) (*flag.FlagSet, *string, *eventstore.Filter, *int64) {
	fs, dbURL := newFlags("audit "+name, "audit "+name+" [--at N] [--partner ID] [--environment ENV]")
	f := &eventstore.Filter{}
	fs.StringVar(&f.PartnerID, "partner", "", "only this partner")
	fs.StringVar(&f.Environment, "environment", "", "only this environment (sandbox or production)")
	at := fs.Int64("at", 0, "fold events up to this position (0 = the head)")
	return fs, dbURL, f, at
}

func auditBalances(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL, f, at := auditFlags("balances")
	user := fs.String("user", "", "show only this end user (the partner's external id)")
	if err := parse(fs, args); err != nil {
		return err
	}
	// A negative position folds nothing (position <= -1) and would print
	// empty balances as if they were true; refuse it.
	if *at < 0 {
		return fmt.Errorf("--at %d is not a position: give one from 1 to the head, or 0 for the head", *at)
	}
	pool, err := connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	head, err := eventstore.ReadHead(ctx, pool)
	if err != nil {
		return err
	}
	rep, err := ledger.AuditBalances(ctx, pool, *f, *at)
	if err != nil {
		return err
	}
	// Past the head the fold simply stops at the last event; an auditor
	// asking for a position that does not exist yet must be told so.
	if *at > head {
		fmt.Fprintf(out, "--at %d is past the head (position %d): showing balances as of the head\n", *at, head)
	}
	fmt.Fprintf(out, "balances as of position %d (%d events folded)\n\n", rep.AsOf, rep.Events)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if *user == "" {
		fmt.Fprintln(tw, "POOL\tPARTNER\tENV\tALLOCATED\tDISTRIBUTED\tRETURNED\tAVAILABLE")
		for _, p := range rep.Pools {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", p.PoolID, p.PartnerID, p.Environment, p.Allocated, p.Distributed, p.Returned, p.Available())
		}
		fmt.Fprintln(tw, "\t\t\t\t\t\t")
	}
	fmt.Fprintln(tw, "USER\tEXTERNAL ID\tPARTNER\tENV\tEARNED\tREVERSED\tBALANCE")
	for _, u := range rep.Users {
		if *user != "" && u.ExternalID != *user {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", u.UserID, u.ExternalID, u.PartnerID, u.Environment, u.Earned, u.Reversed, u.Balance())
	}
	return tw.Flush()
}

func auditReconcile(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL, f, _ := auditFlags("reconcile")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	// Compare at the read model's own position, so a lagging projector is
	// not mistaken for a discrepancy.
	rm, err := projections.ReadLedgerTotals(ctx, pool, f.PartnerID, f.Environment)
	if err != nil {
		return fmt.Errorf("reading the rewards read model: %w", err)
	}
	rep, err := ledger.AuditBalances(ctx, pool, *f, rm.Position)
	if err != nil {
		return err
	}
	if rm.Position == 0 {
		rep.AsOf = 0
	}
	problems := rep.Problems
	for _, p := range rep.Pools {
		got, ok := rm.Pools[p.PoolID]
		want := [3]int64{p.Allocated, p.Distributed, p.Returned}
		if !ok || got != want {
			problems = append(problems, fmt.Sprintf("read model pool %s: allocated/distributed/returned %v, event store says %v", p.PoolID, got, want))
		}
	}
	for _, u := range rep.Users {
		got := rm.Users[u.UserID]
		if got != [2]int64{u.Earned, u.Reversed} {
			problems = append(problems, fmt.Sprintf("read model user %s (%s): earned/reversed %v, event store says [%d %d]", u.UserID, u.ExternalID, got, u.Earned, u.Reversed))
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(out, "MISMATCH:", p)
		}
		return fmt.Errorf("%d discrepancies as of position %d", len(problems), rep.AsOf)
	}
	fmt.Fprintf(out, "reconciled as of position %d: %d pools and %d users agree with the event store; no pool overdrawn, no user negative\n",
		rep.AsOf, len(rep.Pools), len(rep.Users))
	return nil
}

func auditVerify(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("audit verify", "audit verify [--database-url URL]")
	quiet := fs.Bool("quiet", false, "print only the verdict")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	start := time.Now()
	rep, err := eventstore.Verify(ctx, pool, func(n int64) {
		if !*quiet {
			fmt.Fprintf(out, "verified %d events\n", n)
		}
	})
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("hash chain BROKEN at position %d: %s (%d events verified before it)", rep.FirstBad, rep.Reason, rep.Checked)
	}
	fmt.Fprintf(out, "hash chain OK: %d events, head %d, verified in %s\n", rep.Checked, rep.Head, time.Since(start).Round(time.Millisecond))
	return nil
}

func runEvents(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "events", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"export": eventsExport,
	}, "usage: ledgerctl events export [--partner ID] [--environment ENV] [--stream ID] [--from N] [--to N] [--output FILE]")
}

func eventsExport(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("events export", "events export [--partner ID] [--environment ENV] [--stream ID] [--from N] [--to N] [--output FILE]")
	var f eventstore.Filter
	fs.StringVar(&f.PartnerID, "partner", "", "only this partner's events")
	fs.StringVar(&f.Environment, "environment", "", "only this environment (sandbox or production)")
	fs.StringVar(&f.StreamID, "stream", "", "only this stream")
	fs.Int64Var(&f.FromPosition, "from", 1, "first position (inclusive)")
	fs.Int64Var(&f.ToPosition, "to", 0, "last position (inclusive; 0 = head)")
	output := fs.String("output", "-", "file to write (- for standard output)")
	if err := parse(fs, args); err != nil {
		return err
	}
	// An empty range would export nothing and exit 0, which reads as "no
	// such events" rather than "wrong command line".
	if f.FromPosition < 0 || f.ToPosition < 0 {
		return fmt.Errorf("--from %d --to %d: positions are not negative", f.FromPosition, f.ToPosition)
	}
	if f.ToPosition != 0 && f.FromPosition > f.ToPosition {
		return fmt.Errorf("--from %d is after --to %d: the range is empty", f.FromPosition, f.ToPosition)
	}
	pool, err := connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	w := out
	var file *os.File
	if *output != "-" {
		if file, err = os.Create(*output); err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	n, err := eventstore.Export(ctx, pool, f, func(e events.Event) error { return enc.Encode(e) })
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return err
		}
		fmt.Fprintf(out, "exported %d events to %s\n", n, *output)
	} else {
		fmt.Fprintf(os.Stderr, "exported %d events\n", n)
	}
	return nil
}
