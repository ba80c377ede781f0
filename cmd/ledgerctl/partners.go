package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
)

func init() {
	register(group{name: "partners", summary: "partner approval, suspension, tier and widget configuration (approve, suspend, set-tier, configure)", run: runPartners})
}

const partnersHelp = `usage: ledgerctl partners <approve|suspend|set-tier|configure> [flags]

  approve PARTNER_ID                 make the partner ACTIVE: production keys start working
  suspend [--reason R] PARTNER_ID    every key of the partner gets 403 PARTNER_SUSPENDED
  set-tier PARTNER_ID TIER           STANDARD, PROFESSIONAL or ENTERPRISE (sets the rate limit)
  configure PARTNER_ID [--features DONATIONS,ACTIONS] [--tips on|off] [--tip-percent N]
                                     what the partner's widget offers (GET /v1/partner/config)`

func runPartners(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "partners", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"approve":   partnersApprove,
		"suspend":   partnersSuspend,
		"set-tier":  partnersSetTier,
		"configure": partnersConfigure,
	}, partnersHelp)
}

// partnerArgs parses flags and returns the partner id and the arguments
// after it; want is how many of those there must be.
func partnerArgs(fs *flag.FlagSet, args []string, want int) (string, []string, error) {
	if err := parse(fs, args); err != nil {
		return "", nil, err
	}
	if fs.NArg() != 1+want || !strings.HasPrefix(fs.Arg(0), "ptr_") {
		fs.Usage()
		return "", nil, errUsage
	}
	return fs.Arg(0), fs.Args()[1:], nil
}

func partnersApprove(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("partners approve", "partners approve [--database-url URL] PARTNER_ID")
	id, _, err := partnerArgs(fs, args, 0)
	if err != nil {
		return err
	}
	return withLedger(ctx, *dbURL, ledger.Options{}, func(s *ledger.Service) error {
		if _, err := s.ApprovePartner(ctx, events.Metadata{Actor: "ledgerctl"}, id); err != nil {
			return err
		}
		fmt.Fprintf(out, "partner %s is ACTIVE\n", id)
		return nil
	})
}

func partnersSuspend(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("partners suspend", "partners suspend [--reason R] [--database-url URL] PARTNER_ID")
	reason := fs.String("reason", "", "why the partner is suspended (recorded in the event)")
	id, _, err := partnerArgs(fs, args, 0)
	if err != nil {
		return err
	}
	return withLedger(ctx, *dbURL, ledger.Options{}, func(s *ledger.Service) error {
		if _, err := s.SuspendPartner(ctx, events.Metadata{Actor: "ledgerctl"}, id, *reason); err != nil {
			return err
		}
		fmt.Fprintf(out, "partner %s is SUSPENDED\n", id)
		return nil
	})
}

func partnersSetTier(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("partners set-tier", "partners set-tier [--database-url URL] PARTNER_ID STANDARD|PROFESSIONAL|ENTERPRISE")
	id, rest, err := partnerArgs(fs, args, 1)
	if err != nil {
		return err
	}
	tier := strings.ToUpper(rest[0])
	// Checked here too so the operator sees the valid tiers without a
	// database round trip, whatever the domain's message says.
	if !ledger.ValidTier(tier) {
		return fmt.Errorf("unknown tier %q: valid tiers are %s, %s and %s", rest[0], ledger.TierStandard, ledger.TierProfessional, ledger.TierEnterprise)
	}
	return withLedger(ctx, *dbURL, ledger.Options{}, func(s *ledger.Service) error {
		if _, err := s.SetPartnerTier(ctx, events.Metadata{Actor: "ledgerctl"}, id, tier); err != nil {
			return err
		}
		fmt.Fprintf(out, "partner %s tier is %s\n", id, tier)
		return nil
	})
}

func partnersConfigure(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("partners configure", "partners configure [--features LIST] [--tips on|off] [--tip-percent N] [--database-url URL] PARTNER_ID")
	features := fs.String("features", "", "comma-separated features the widget offers: DONATIONS, ACTIONS (\"none\" for neither; unset: unchanged)")
	tips := fs.String("tips", "", "on or off: whether donations may carry a tip (unset: unchanged)")
	tipPercent := fs.Int64("tip-percent", -1, "the tip the widget proposes, a whole percentage 0-100 (unset: unchanged)")
	id, _, err := partnerArgs(fs, args, 0)
	if err != nil {
		return err
	}
	var patch ledger.WidgetConfigPatch
	switch f := strings.TrimSpace(*features); f {
	case "":
	case "none":
		patch.Features = []string{}
	default:
		for _, x := range strings.Split(f, ",") {
			patch.Features = append(patch.Features, strings.ToUpper(strings.TrimSpace(x)))
		}
	}
	switch *tips {
	case "":
	case "on", "off":
		on := *tips == "on"
		patch.TipEnabled = &on
	default:
		return fmt.Errorf("--tips must be on or off, not %q", *tips)
	}
	if *tipPercent >= 0 {
		patch.TipDefaultPercent = tipPercent
	}
	if patch.Features == nil && patch.TipEnabled == nil && patch.TipDefaultPercent == nil {
		fs.Usage()
		return errUsage
	}
	return withLedger(ctx, *dbURL, ledger.Options{}, func(s *ledger.Service) error {
		if _, err := s.ConfigurePartner(ctx, events.Metadata{Actor: "ledgerctl"}, id, patch); err != nil {
			return err
		}
		fmt.Fprintf(out, "partner %s configured\n", id)
		return nil
	})
}
