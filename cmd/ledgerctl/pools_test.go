package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func TestPoolsApproveReject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	store := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(store.Close)
	s := ledger.NewService(store, ledger.Options{})
	sc := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: "production"}
	a, err := s.RequestAllocation(ctx, sc, events.Metadata{}, ledger.AllocationInput{Amount: 500})
	require.NoError(t, err)
	require.Equal(t, "PENDING", a.Status)
	b, err := s.RequestAllocation(ctx, sc, events.Metadata{}, ledger.AllocationInput{Amount: 700})
	require.NoError(t, err)
	store.Close()

	code, out, errOut := ctl(t, "pools", "pending", "--database-url", db.URL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "2 pending")
	code, out, errOut = ctl(t, "pools", "approve", "--database-url", db.URL, a.RequestID)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "approved "+a.RequestID)
	code, _, errOut = ctl(t, "pools", "approve", "--database-url", db.URL, a.RequestID)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "REQUEST_ALREADY_DECIDED")
	code, _, errOut = ctl(t, "pools", "reject", b.RequestID, "--reason", "too much at once", "--database-url", db.URL)
	require.Equal(t, 0, code, errOut)
	var reason string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT payload->>'reason' FROM events WHERE event_type = 'pool.allocation_rejected'`).Scan(&reason))
	require.Equal(t, "too much at once", reason, "the flag after the request id is the one recorded")
	code, out, _ = ctl(t, "pools", "pending", "--database-url", db.URL)
	require.Equal(t, 0, code)
	require.Contains(t, out, "0 pending")

	// The production pool now exists with the approved allocation.
	store2 := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(store2.Close)
	s2 := ledger.NewService(store2, ledger.Options{})
	o, err := s2.SubmitAction(ctx, sc, events.Metadata{}, ledger.ActionInput{IdempotencyKey: "k", ActionType: "PURCHASE", Amount: "499.5",
		Currency: "USD", AutoCreateUsers: true, Stakeholders: []ledger.StakeholderInput{{StakeholderTypeCode: "CUSTOMER", PartnerUserID: "u"}}})
	require.NoError(t, err)
	require.Equal(t, int64(500), o.TokensDistributed)
}
