package ledger_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// The actions one group commit rewards from one pool are paid by one
// pool.debited, placed after the last of them: the pool stream gains one
// version, its amount is their sum, it names them in order, and every
// action's result includes it.
func TestDebitsOfOneCommitAreOneEvent(t *testing.T) {
	t.Parallel()
	s, m := memLedger(t)
	sc := memTenant(t, s, 1000)
	poolStream := ledger.PoolStream(ledger.DefaultPoolID(sc))
	before, versionBefore := len(m.Events()), len(m.Stream(poolStream))
	items, err := s.SubmitBulk(context.Background(), sc, events.Metadata{RequestID: "req_bulk"},
		[]ledger.ActionInput{action("a", "3", "alice"), action("b", "4", "bob"), action("c", "5", "alice")})
	require.NoError(t, err)
	evs := m.Events()[before:]
	require.Equal(t, []string{"enduser.created", "action.completed", "enduser.created", "action.completed", "action.completed", "pool.debited"}, types(evs))

	debit := evs[len(evs)-1]
	pl, err := events.Decode(debit)
	require.NoError(t, err)
	ids := []string{items[0].Outcome.ActionID, items[1].Outcome.ActionID, items[2].Outcome.ActionID}
	require.Equal(t, events.PoolDebited{PoolID: ledger.DefaultPoolID(sc), ActionIDs: ids, Amount: 12}, pl)
	require.Equal(t, int64(versionBefore+1), debit.StreamVersion, "one version for the three debits")
	for i, it := range items {
		require.NoError(t, it.Err)
		require.Equal(t, debit.Position, it.Outcome.Position, "item %d is done once its debit is", i)
	}

	// The state decided in memory is the state folded from the log.
	out, err := s.SubmitAction(context.Background(), sc, events.Metadata{}, action("d", "1000", "carol"))
	require.Equal(t, "INSUFFICIENT_POOL", code(err))
	require.Contains(t, err.Error(), "988 tokens available")
	require.Equal(t, ledger.StatusFailed, out.Status)
	p := &ledger.Pool{}
	for _, e := range m.Stream(poolStream) {
		require.NoError(t, p.Apply(e))
	}
	require.Equal(t, int64(988), p.Available())
	log := m.Events()
	for i, e := range log {
		require.Equal(t, int64(i+1), e.Position)
		require.Equal(t, events.ComputeHash(&e), e.Hash)
		if i > 0 {
			require.Equal(t, log[i-1].Hash, e.PrevHash)
		}
	}
}

// A debit never merges across another event of its pool: a low-balance
// warning between two debits keeps them apart, so the pool stream still
// reads in the order things happened.
func TestDebitsDoNotMergeAcrossOtherPoolEvents(t *testing.T) {
	t.Parallel()
	s, m := memLedger(t)
	sc := eventstore.Tenant{PartnerID: "ptr_mem", Environment: ledger.EnvSandbox}
	_, _, err := s.ProvisionPool(context.Background(), sc, events.Metadata{}, ledger.PoolInput{Allocated: 100, LowBalanceThreshold: 50})
	require.NoError(t, err)
	poolStream := ledger.PoolStream(ledger.DefaultPoolID(sc))
	before := len(m.Stream(poolStream))
	_, err = s.SubmitBulk(context.Background(), sc, events.Metadata{},
		[]ledger.ActionInput{action("a", "10", "alice"), action("b", "45", "bob"), action("c", "5", "carol"), action("d", "5", "dave")})
	require.NoError(t, err)
	pool := m.Stream(poolStream)[before:]
	require.Equal(t, []string{"pool.debited", "pool.low_balance", "pool.debited"}, types(pool))
	amounts := make([]int64, 0, 2)
	for _, e := range []events.Event{pool[0], pool[2]} {
		var d events.PoolDebited
		require.NoError(t, json.Unmarshal(e.Payload, &d))
		amounts = append(amounts, d.Amount)
		require.Equal(t, e.StreamVersion, pool[0].StreamVersion+int64(len(amounts)-1)*2)
	}
	require.Equal(t, []int64{55, 10}, amounts)
}

// A campaign's budget debits of one commit are one event too, and the
// budget decided in memory is the one folded from the log: item i of a
// bulk sees the budget the items before it spent.
func TestCampaignBudgetDebitsOfOneCommitAreOneEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, m := memLedger(t)
	sc := memTenant(t, s, 1000)
	budget := int64(20)
	c, err := s.CreateCampaign(ctx, sc, events.Metadata{}, ledger.CampaignInput{Name: "Double", Status: "ACTIVE", Multiplier: "2", TokenBudget: &budget})
	require.NoError(t, err)
	before := len(m.Stream(ledger.CampaignsStream(sc)))
	items, err := s.SubmitBulk(ctx, sc, events.Metadata{}, []ledger.ActionInput{action("a", "3", "alice"), action("b", "4", "bob"), action("c", "5", "carol")})
	require.NoError(t, err)
	require.NoError(t, items[0].Err)
	require.NoError(t, items[1].Err)
	require.Equal(t, "CAMPAIGN_BUDGET_EXHAUSTED", code(items[2].Err), "6 + 8 spent, 10 more would pass 20")

	camp := m.Stream(ledger.CampaignsStream(sc))[before:]
	require.Equal(t, []string{"campaign.budget_debited"}, types(camp))
	pl, err := events.Decode(camp[0])
	require.NoError(t, err)
	require.Equal(t, events.CampaignBudgetDebited{CampaignID: c.CampaignID,
		ActionIDs: []string{items[0].Outcome.ActionID, items[1].Outcome.ActionID}, Amount: 14}, pl)
	cs := &ledger.Campaigns{}
	for _, e := range m.Stream(ledger.CampaignsStream(sc)) {
		require.NoError(t, cs.Apply(e))
	}
	require.Equal(t, int64(14), cs.ByID[c.CampaignID].Net())
}
