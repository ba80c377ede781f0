package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
)

func runPartners(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "partners", map[string]command{
		"approve":  {summary: "approve a partner (production keys start working)", run: partnersApprove},
		"suspend":  {summary: "suspend a partner (every key gets 403)", run: partnersSuspend},
		"set-tier": {summary: "set a partner's rate-limit tier", run: partnersSetTier},
	}, args, out)
}

func partnerArg(name, usage string, args []string, extra func(*flag.FlagSet)) (string, []string, error) {
	fs := newFlags(name, usage)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", nil, err
	}
	if fs.NArg() < 1 || !strings.HasPrefix(fs.Arg(0), "ptr_") {
		fs.Usage()
		return "", nil, fmt.Errorf("%s: a partner id (ptr_…) is required", name)
	}
	return fs.Arg(0), fs.Args()[1:], nil
}

func partnersApprove(ctx context.Context, args []string, out io.Writer) error {
	id, rest, err := partnerArg("partners approve", "partners approve PARTNER_ID", args, nil)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("partners approve: unexpected arguments")
	}
	return withStore(ctx, func(s *ledger.Store) error {
		if _, err := ledger.ApprovePartner(ctx, s, events.Metadata{Actor: "ledgerctl"}, id); err != nil {
			return err
		}
		fmt.Fprintf(out, "partner %s is ACTIVE\n", id)
		return nil
	})
}

func partnersSuspend(ctx context.Context, args []string, out io.Writer) error {
	var reason *string
	id, rest, err := partnerArg("partners suspend", "partners suspend [--reason R] PARTNER_ID", args, func(fs *flag.FlagSet) {
		reason = fs.String("reason", "", "why the partner is suspended (recorded in the event)")
	})
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("partners suspend: unexpected arguments (flags go before the id)")
	}
	return withStore(ctx, func(s *ledger.Store) error {
		if _, err := ledger.SuspendPartner(ctx, s, events.Metadata{Actor: "ledgerctl"}, id, *reason); err != nil {
			return err
		}
		fmt.Fprintf(out, "partner %s is SUSPENDED\n", id)
		return nil
	})
}

func partnersSetTier(ctx context.Context, args []string, out io.Writer) error {
	id, rest, err := partnerArg("partners set-tier", "partners set-tier PARTNER_ID STANDARD|PROFESSIONAL|ENTERPRISE", args, nil)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errors.New("partners set-tier: give the partner id and one tier")
	}
	tier := strings.ToUpper(rest[0])
	return withStore(ctx, func(s *ledger.Store) error {
		if _, err := ledger.SetPartnerTier(ctx, s, events.Metadata{Actor: "ledgerctl"}, id, tier); err != nil {
			return err
		}
		fmt.Fprintf(out, "partner %s tier is %s\n", id, tier)
		return nil
	})
}

func withStore(ctx context.Context, fn func(*ledger.Store) error) error {
	s, closeFn, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(s)
}
