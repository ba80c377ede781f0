package projections

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func rewardAction(key, amount string, users ...string) ledger.ActionInput {
	in := ledger.ActionInput{IdempotencyKey: key, ActionType: "PURCHASE", Amount: amount, Currency: "USD", AutoCreateUsers: true}
	for _, u := range users {
		in.Stakeholders = append(in.Stakeholders, ledger.StakeholderInput{StakeholderTypeCode: "CUSTOMER", PartnerUserID: u, UserEmail: u + "@example.com"})
	}
	return in
}

// dumpRewards renders every rewards table as text, in key order.
func dumpRewards(t *testing.T, db *testenv.DB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, tbl := range []string{"users", "balances", "actions", "transactions", "pools", "allocation_requests", "campaigns"} {
		rows, err := db.Pool.Query(context.Background(), `SELECT t::text FROM `+Table(RewardsName, tbl)+` t ORDER BY t::text`)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		out[tbl] = lines
	}
	return out
}

func TestRewardsReadModelTenancyReadYourWritesAndRebuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	store := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(store.Close)
	s := ledger.NewService(store, ledger.Options{})
	r, err := NewRunner(db.Pool, nil, RunnerOptions{Idle: 20 * time.Millisecond}, Rewards{})
	require.NoError(t, err)
	runRunner(t, r)

	a := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: "sandbox"}
	aProd := eventstore.Tenant{PartnerID: a.PartnerID, Environment: "production"}
	b := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: "sandbox"}
	for _, sc := range []eventstore.Tenant{a, b} {
		_, _, err := s.ProvisionPool(ctx, sc, events.Metadata{}, ledger.PoolInput{Allocated: 1000, LowBalanceThreshold: 900})
		require.NoError(t, err)
	}
	ta, tb := a, b
	wait := func(tn eventstore.Tenant) { require.NoError(t, WaitTenant(ctx, db.Pool, tn, 30*time.Second)) }

	// Read-your-writes: right after each command the read reflects it.
	o1, err := s.SubmitAction(ctx, a, events.Metadata{}, rewardAction("k1", "49.99", "alice", "bob", "carol"))
	require.NoError(t, err)
	wait(ta)
	bal, err := GetBalance(ctx, db.Pool, ta, "alice")
	require.NoError(t, err)
	require.Equal(t, int64(17), bal.Balance)
	act, err := GetAction(ctx, db.Pool, ta, o1.ActionID)
	require.NoError(t, err)
	require.Equal(t, "COMPLETED", act.Status)
	require.Equal(t, int64(50), act.TokensDistributed)
	require.Equal(t, "49.99", act.Amount)

	_, err = s.ReverseAction(ctx, a, events.Metadata{}, o1.ActionID, "refund")
	require.NoError(t, err)
	wait(ta)
	bal, err = GetBalance(ctx, db.Pool, ta, "alice")
	require.NoError(t, err)
	require.Equal(t, BalanceView{PartnerUserID: "alice", Balance: 0, TotalEarned: 17, TotalReversed: 17, UpdatedAt: bal.UpdatedAt}, bal)
	act, err = GetAction(ctx, db.Pool, ta, o1.ActionID)
	require.NoError(t, err)
	require.Equal(t, "REVERSED", act.Status)

	for i := 0; i < 5; i++ {
		_, err := s.SubmitAction(ctx, a, events.Metadata{}, rewardAction(fmt.Sprint("a", i), "10", "alice", "dave"))
		require.NoError(t, err)
		_, err = s.SubmitAction(ctx, b, events.Metadata{}, rewardAction(fmt.Sprint("b", i), "7", "alice"))
		require.NoError(t, err)
	}
	_, err = s.SubmitAction(ctx, aProd, events.Metadata{}, rewardAction("p1", "7", "alice")) // no production pool: FAILED
	require.Error(t, err)
	md := []byte(`{"tier":"gold"}`)
	_, err = s.UpdateUser(ctx, a, events.Metadata{}, "alice", ledger.UserPatch{Metadata: md})
	require.NoError(t, err)
	req, err := s.RequestAllocation(ctx, aProd, events.Metadata{}, ledger.AllocationInput{Amount: 300, Reason: "launch"})
	require.NoError(t, err)
	wait(ta)
	wait(tb)
	require.NoError(t, WaitTenant(ctx, db.Pool, aProd, 30*time.Second))

	u, err := GetUser(ctx, db.Pool, ta, "alice")
	require.NoError(t, err)
	require.JSONEq(t, `{"tier":"gold"}`, string(u.Metadata))
	bal, err = GetBalance(ctx, db.Pool, ta, "alice")
	require.NoError(t, err)
	require.Equal(t, int64(25), bal.Balance)
	users, total, err := ListUsers(ctx, db.Pool, ta, "ALICE@", Window{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, int64(1), total)
	require.Equal(t, "alice", users[0].PartnerUserID)

	// Tenancy: B and A's production never see A's sandbox data.
	bBal, err := GetBalance(ctx, db.Pool, tb, "alice")
	require.NoError(t, err)
	require.Equal(t, int64(35), bBal.Balance)
	_, err = GetAction(ctx, db.Pool, tb, o1.ActionID)
	require.Equal(t, "ACTION_NOT_FOUND", eventstore.AsError(err).Code)
	acts, total, err := ListActions(ctx, db.Pool, tb, ActionFilter{}, Window{Limit: 100})
	require.NoError(t, err)
	require.Equal(t, int64(5), total)
	require.Len(t, acts, 5)
	txns, _, err := ListTransactions(ctx, db.Pool, tb, TransactionFilter{}, Window{Limit: 100})
	require.NoError(t, err)
	for _, tx := range txns {
		_, err := GetTransaction(ctx, db.Pool, ta, tx.ID)
		require.Equal(t, "TRANSACTION_NOT_FOUND", eventstore.AsError(err).Code)
	}
	prodT := aProd
	_, err = GetUser(ctx, db.Pool, prodT, "dave")
	require.Equal(t, "USER_NOT_FOUND", eventstore.AsError(err).Code)
	prodActs, _, err := ListActions(ctx, db.Pool, prodT, ActionFilter{Status: "FAILED"}, Window{Limit: 10})
	require.NoError(t, err)
	require.Len(t, prodActs, 1)
	require.Equal(t, "INSUFFICIENT_POOL", prodActs[0].Failure.Code)
	reqs, _, err := ListAllocationRequests(ctx, db.Pool, prodT, "", Window{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, req.RequestID, reqs[0].ID)
	require.Equal(t, "launch", *reqs[0].Reason)
	require.Equal(t, "PENDING", reqs[0].Status)
	reqs, _, err = ListAllocationRequests(ctx, db.Pool, ta, "", Window{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, reqs)

	// Filters.
	dave, _, err := ListActions(ctx, db.Pool, ta, ActionFilter{UserID: "dave"}, Window{Limit: 100})
	require.NoError(t, err)
	require.Len(t, dave, 5)
	rev, _, err := ListTransactions(ctx, db.Pool, ta, TransactionFilter{Type: "REVERSAL"}, Window{Limit: 100})
	require.NoError(t, err)
	require.Len(t, rev, 3)
	future := time.Now().Add(time.Hour)
	none, _, err := ListActions(ctx, db.Pool, ta, ActionFilter{From: &future}, Window{Limit: 100})
	require.NoError(t, err)
	require.Empty(t, none)

	// Pools reconcile: allocated = available + distributed − returned.
	pools, _, err := ListPools(ctx, db.Pool, ta, Window{Limit: 10})
	require.NoError(t, err)
	require.Len(t, pools, 1)
	p := pools[0]
	require.Equal(t, int64(1000), p.Allocated)
	require.Equal(t, int64(100), p.Distributed)
	require.Equal(t, int64(50), p.Returned)
	require.Equal(t, p.Allocated, p.Available+p.Distributed-p.Returned)
	require.Equal(t, "ACTIVE", p.Status)

	// Campaigns are in the read model too.
	budget := int64(1000)
	cmp, err := s.CreateCampaign(ctx, a, events.Metadata{}, ledger.CampaignInput{Name: "x3", Status: "ACTIVE", Multiplier: "3", TokenBudget: &budget})
	require.NoError(t, err)
	_, err = s.SubmitAction(ctx, a, events.Metadata{}, rewardAction("camp", "10", "alice"))
	require.NoError(t, err)
	wait(ta)
	cv, err := ActiveCampaign(ctx, db.Pool, ta)
	require.NoError(t, err)
	require.Equal(t, cmp.CampaignID, cv.ID)
	require.Equal(t, int64(30), cv.TokensDistributed)
	_, err = ActiveCampaign(ctx, db.Pool, tb)
	require.Equal(t, "NO_ACTIVE_CAMPAIGN", eventstore.AsError(err).Code)

	// Rebuild from the event store reproduces every table exactly.
	before := dumpRewards(t, db)
	pos, err := Rebuild(ctx, db.Pool, Rewards{}, nil)
	require.NoError(t, err)
	head, err := eventstore.ReadHead(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, head, pos)
	require.Equal(t, before, dumpRewards(t, db))
	require.NotEmpty(t, before["transactions"])
}
