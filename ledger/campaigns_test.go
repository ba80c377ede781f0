package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func campaignState(t *testing.T, db *testenv.DB, sc eventstore.Tenant) *ledger.Campaigns {
	t.Helper()
	evs, err := eventstore.ReadStream(context.Background(), db.Pool, ledger.CampaignsStream(sc))
	require.NoError(t, err)
	cs := &ledger.Campaigns{}
	for _, e := range evs {
		require.NoError(t, cs.Apply(e))
	}
	return cs
}

func TestCampaignArithmeticTiersAndSplits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openLedger(t, db)
	sc := newTenant(t, s, "sandbox", 100000)
	budget := int64(100000)
	c, err := s.CreateCampaign(ctx, sc, events.Metadata{}, ledger.CampaignInput{Name: "Double", Status: "ACTIVE", Multiplier: "2",
		ActionTypes: []string{"PURCHASE"}, TokenBudget: &budget,
		Tiers:  []ledger.TierInput{{MinAmount: "100", Multiplier: "3"}},
		Splits: []ledger.SplitInput{{StakeholderTypeCode: "CUSTOMER", Percentage: "70"}, {StakeholderTypeCode: "MERCHANT", Percentage: "30"}}})
	require.NoError(t, err)

	in := action("c1", "49.99", "alice")
	in.Stakeholders = append(in.Stakeholders, ledger.StakeholderInput{StakeholderTypeCode: "MERCHANT", PartnerUserID: "shop"})
	o, err := s.SubmitAction(ctx, sc, events.Metadata{}, in)
	require.NoError(t, err)
	require.Equal(t, int64(100), o.TokensDistributed) // 49.99 × 2 = 99.98 → 100; 70/30
	in = action("c2", "100", "alice", "bob")
	in.Stakeholders = append(in.Stakeholders, ledger.StakeholderInput{StakeholderTypeCode: "MERCHANT", PartnerUserID: "shop"})
	o, err = s.SubmitAction(ctx, sc, events.Metadata{}, in)
	require.NoError(t, err)
	require.Equal(t, int64(300), o.TokensDistributed) // tier: 100 × 3; CUSTOMER 105+105, MERCHANT 90
	evs, err := eventstore.ReadStream(ctx, db.Pool, ledger.ActionStream(o.ActionID))
	require.NoError(t, err)
	p, err := events.Decode(evs[0])
	require.NoError(t, err)
	done := p.(events.ActionCompleted)
	require.Equal(t, c.CampaignID, done.CampaignID)
	require.Equal(t, []int64{105, 105, 90}, []int64{done.Stakeholders[0].Tokens, done.Stakeholders[1].Tokens, done.Stakeholders[2].Tokens})

	// Another action type falls back to the default rule.
	don := action("c3", "10", "alice")
	don.ActionType = "DONATION"
	o, err = s.SubmitAction(ctx, sc, events.Metadata{}, don)
	require.NoError(t, err)
	require.Equal(t, int64(10), o.TokensDistributed)

	// Reversal returns tokens to the budget.
	_, err = s.ReverseAction(ctx, sc, events.Metadata{}, ledger.ActionID(sc, "c2"), "")
	require.NoError(t, err)
	require.Equal(t, int64(100), campaignState(t, db, sc).ByID[c.CampaignID].Net())
}

func TestCampaignBudgetRaceNeverOverspends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openLedger(t, db)
	sc := newTenant(t, s, "sandbox", 1_000_000)
	budget := int64(7 * 20)
	c, err := s.CreateCampaign(ctx, sc, events.Metadata{}, ledger.CampaignInput{Name: "Capped", Status: "ACTIVE", TokenBudget: &budget})
	require.NoError(t, err)
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.SubmitAction(ctx, sc, events.Metadata{}, action(fmt.Sprint("b", i), "20", "u"))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[eventstore.AsError(err).Code]++
			} else {
				codes["OK"]++
			}
		}(i)
	}
	wg.Wait()
	require.Equal(t, map[string]int{"OK": 7, "CAMPAIGN_BUDGET_EXHAUSTED": 33}, codes)
	require.Equal(t, budget, campaignState(t, db, sc).ByID[c.CampaignID].Net())
}

func TestOneActiveCampaignAndScheduler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openLedger(t, db)
	sc := newTenant(t, s, "sandbox", 1000)

	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.CreateCampaign(ctx, sc, events.Metadata{}, ledger.CampaignInput{Name: fmt.Sprint("c", i), Status: "ACTIVE"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[eventstore.AsError(err).Code]++
			} else {
				codes["OK"]++
			}
		}(i)
	}
	wg.Wait()
	require.Equal(t, map[string]int{"OK": 1, "CAMPAIGN_ALREADY_ACTIVE": 9}, codes)
	active := campaignState(t, db, sc).Active
	require.NotEmpty(t, active)

	// A scheduled campaign waits while another is active, starts once it ends.
	start := time.Now().Add(-time.Minute)
	end := time.Now().Add(time.Hour)
	sch, err := s.CreateCampaign(ctx, sc, events.Metadata{}, ledger.CampaignInput{Name: "later", Status: "SCHEDULED", StartsAt: &start, EndsAt: &end})
	require.NoError(t, err)
	changed, err := s.AdvanceCampaign(ctx, sc, sch.CampaignID)
	require.NoError(t, err)
	require.False(t, changed)
	ended := "ENDED"
	_, err = s.UpdateCampaign(ctx, sc, events.Metadata{}, active, ledger.CampaignPatch{Status: &ended})
	require.NoError(t, err)
	_, err = s.UpdateCampaign(ctx, sc, events.Metadata{}, active, ledger.CampaignPatch{Status: &ended})
	require.Equal(t, "CAMPAIGN_ENDED", eventstore.AsError(err).Code)

	// Several schedulers race: exactly one transition happens.
	var n int
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, err := s.AdvanceCampaign(ctx, sc, sch.CampaignID)
			require.NoError(t, err)
			if ch {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, n)
	require.Equal(t, sch.CampaignID, campaignState(t, db, sc).Active)

	// Validation: splits must add to 100.
	_, err = s.CreateCampaign(ctx, sc, events.Metadata{}, ledger.CampaignInput{Name: "bad",
		Splits: []ledger.SplitInput{{StakeholderTypeCode: "A", Percentage: "50"}, {StakeholderTypeCode: "B", Percentage: "40"}}})
	require.Equal(t, "splits", eventstore.AsError(err).Details[0].Field)
}
