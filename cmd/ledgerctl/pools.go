package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func init() {
	register(group{name: "pools", summary: "token pool allocation requests (pending, approve ID, reject ID)", run: runPools})
}

const poolsHelp = `usage: ledgerctl pools <pending|approve|reject> [flags]

  pending                       list allocation requests waiting for a decision
  approve REQUEST_ID            grant the request: the pool's allocation grows by its amount
                                (a production pool that does not exist yet is provisioned)
  reject REQUEST_ID [--reason]  refuse the request`

func runPools(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "pools", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"pending": poolsPending,
		"approve": func(ctx context.Context, args []string, out io.Writer) error {
			return poolsDecide(ctx, args, out, true)
		},
		"reject": func(ctx context.Context, args []string, out io.Writer) error {
			return poolsDecide(ctx, args, out, false)
		},
	}, poolsHelp)
}

func poolsPending(ctx context.Context, args []string, out io.Writer) error {
	fs, dbURL := newFlags("pools pending", "pools pending [--database-url URL]")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT r.payload->>'requestId', r.partner_id, r.environment, r.payload->>'poolId', (r.payload->>'amount')::bigint, r.recorded_at
		FROM events r WHERE r.event_type = 'pool.allocation_requested'
		AND NOT EXISTS (SELECT 1 FROM events d WHERE d.stream_id = r.stream_id
			AND d.event_type IN ('pool.allocation_approved','pool.allocation_rejected') AND d.payload->>'requestId' = r.payload->>'requestId')
		ORDER BY r.position`)
	if err != nil {
		return err
	}
	defer rows.Close()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUEST\tPARTNER\tENV\tPOOL\tAMOUNT\tREQUESTED")
	n := 0
	for rows.Next() {
		var id, partner, env, poolID string
		var amount int64
		var at any
		if err := rows.Scan(&id, &partner, &env, &poolID, &amount, &at); err != nil {
			return err
		}
		if t, ok := at.(time.Time); ok {
			at = t.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%v\n", id, partner, env, poolID, amount, at)
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	tw.Flush()
	fmt.Fprintf(out, "%d pending request(s)\n", n)
	return nil
}

func poolsDecide(ctx context.Context, args []string, out io.Writer, approve bool) error {
	verb := map[bool]string{true: "approve", false: "reject"}[approve]
	fs, dbURL := newFlags("pools "+verb, "pools "+verb+" REQUEST_ID [--reason TEXT] [--by NAME]")
	reason := fs.String("reason", "", "why (shown to the partner on rejection)")
	by := fs.String("by", "operator", "who decided, recorded in the event")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	reqID := fs.Arg(0)
	pool, err := connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	var partner, env, poolID string
	err = pool.QueryRow(ctx, `SELECT partner_id, environment, payload->>'poolId' FROM events
		WHERE event_type = 'pool.allocation_requested' AND payload->>'requestId' = $1`, reqID).Scan(&partner, &env, &poolID)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("no allocation request %s", reqID)
	}
	if err != nil {
		return err
	}
	store := eventstore.OpenStore(pool, eventstore.StoreOptions{})
	defer store.Close()
	res, err := ledger.NewService(store, ledger.Options{}).DecideAllocation(ctx, eventstore.Tenant{PartnerID: partner, Environment: env}, events.Metadata{Actor: "ledgerctl:" + *by},
		poolID, reqID, approve, *by, *reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s (partner %s, %s, pool %s) at position %d\n", map[bool]string{true: "approved", false: "rejected"}[approve], reqID, partner, env, poolID, res.Position)
	return nil
}
