package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/migrations"
	"github.com/sirgiving/ledger/projections"
)

func init() {
	register(group{name: "migrate", summary: "apply pending database migrations", run: runMigrate})
	register(group{name: "projections", summary: "projection status and rebuilds (status, rebuild NAME)", run: runProjections})
	register(group{name: "audit", summary: "verify the event hash chain (verify)", run: runAudit})
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
	fmt.Fprintln(tw, "PROJECTION\tPOSITION\tHEAD\tLAG\tUPDATED")
	for _, s := range sts {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Name, s.Position, s.Head, s.Lag, s.UpdatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
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
		"verify": auditVerify,
	}, "usage: ledgerctl audit verify [--database-url URL]\n\n  verify   walk the hash chain from the first event and name the first event that fails")
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
	rep, err := ledger.Verify(ctx, pool, func(n int64) {
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
	var f ledger.Filter
	fs.StringVar(&f.PartnerID, "partner", "", "only this partner's events")
	fs.StringVar(&f.Environment, "environment", "", "only this environment (sandbox or production)")
	fs.StringVar(&f.StreamID, "stream", "", "only this stream")
	fs.Int64Var(&f.FromPosition, "from", 1, "first position (inclusive)")
	fs.Int64Var(&f.ToPosition, "to", 0, "last position (inclusive; 0 = head)")
	output := fs.String("output", "-", "file to write (- for standard output)")
	if err := parse(fs, args); err != nil {
		return err
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
	n, err := ledger.Export(ctx, pool, f, func(e events.Event) error { return enc.Encode(e) })
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
