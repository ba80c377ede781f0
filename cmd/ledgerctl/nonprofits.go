package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/nonprofits"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/projections"
)

func init() {
	register(group{name: "nonprofits", summary: "the nonprofit directory donations go to (import FILE)", run: runNonprofits})
	register(group{name: "donations", summary: "donations the providers cannot report (refund ID)", run: runDonations})
}

const nonprofitsHelp = `usage: ledgerctl nonprofits import [--format csv|jsonl] [--batch N] FILE

  import FILE   list the nonprofits of FILE (CSV with a header row, or JSON lines), adding new
                ones and updating changed ones; a file with a bad row imports nothing and says
                which rows are wrong. Columns / members: slug, name, ein, description,
                websiteUrl, logoUrl, city, state, country, categories (CSV: separated by ";").`

func runNonprofits(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "nonprofits", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"import": nonprofitsImport,
	}, nonprofitsHelp)
}

func nonprofitsImport(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("nonprofits import", "nonprofits import [--format csv|jsonl] [--batch N] [--database-url URL] FILE")
	format := fs.String("format", "", "csv or jsonl (default: from the file name; .csv is CSV)")
	batch := fs.Int("batch", 500, "nonprofits per recorded command")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *batch < 1 {
		fs.Usage()
		return errUsage
	}
	file := fs.Arg(0)
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if *format == "" {
		*format = nonprofits.FormatOf(file)
	}
	if *format != nonprofits.FormatCSV && *format != nonprofits.FormatJSONLines {
		return fmt.Errorf("--format must be csv or jsonl, not %q", *format)
	}
	list, err := nonprofits.Parse(f, *format)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	source := "import " + filepath.Base(file)
	return withLedger(ctx, *dbURL, ledger.Options{}, func(s *ledger.Service) error {
		changed := 0
		for i := 0; i < len(list); i += *batch {
			end := min(i+*batch, len(list))
			n, _, err := s.ListNonprofits(ctx, events.Metadata{Actor: "ledgerctl"}, source, list[i:end])
			if err != nil {
				return fmt.Errorf("rows %d-%d: %w", i+1, end, err)
			}
			changed += n
			fmt.Fprintf(out, "\rimported %d/%d nonprofits (%d new or changed)", end, len(list), changed)
		}
		fmt.Fprintf(out, "\rimported %d/%d nonprofits (%d new or changed)\n", len(list), len(list), changed)
		return nil
	})
}

const donationsHelp = `usage: ledgerctl donations refund [--reason R] DONATION_ID

  refund DONATION_ID   record that a completed donation was paid back (for providers that do not
                       notify refunds, such as Every.org): its reward is reversed and partners
                       hear donation.refunded`

func runDonations(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "donations", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"refund": donationsRefund,
	}, donationsHelp)
}

func donationsRefund(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("donations refund", "donations refund [--reason R] [--database-url URL] DONATION_ID")
	reason := fs.String("reason", "refunded by the provider", "why (recorded in the event and the webhook)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || !strings.HasPrefix(fs.Arg(0), "don_") {
		fs.Usage()
		return errUsage
	}
	id := fs.Arg(0)
	return withLedgerPool(ctx, *dbURL, ledger.Options{}, func(s *ledger.Service, pool *pgxpool.Pool) error {
		t, ok, err := projections.StreamTenant(ctx, pool, ledger.DonationStream(id))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no donation %s", id)
		}
		var provider string
		err = pool.QueryRow(ctx, `SELECT payload->>'provider' FROM events WHERE stream_id = $1 AND stream_version = 1`, ledger.DonationStream(id)).Scan(&provider)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("no donation %s", id)
		} else if err != nil {
			return err
		}
		res, err := s.RecordDonationNotice(ctx, t, events.Metadata{Actor: "ledgerctl"},
			ledger.DonationNotice{DonationID: id, Provider: provider, Kind: ledger.NoticeRefunded, Reason: *reason})
		if err != nil {
			return err
		}
		if !res.Recorded {
			fmt.Fprintf(out, "donation %s was already refunded\n", id)
			return nil
		}
		fmt.Fprintf(out, "donation %s is REFUNDED; %d tokens reversed\n", id, res.Tokens)
		return nil
	})
}
