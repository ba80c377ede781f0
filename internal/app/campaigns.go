package app

import (
	"context"
	"time"

	"github.com/sirgiving/ledger/projections"
)

// campaignTick is how often the scheduler looks for campaigns whose start
// or end has come.
const campaignTick = time.Second

// runCampaignScheduler starts and ends scheduled campaigns on time. It
// finds candidates in the read model and issues AdvanceCampaign, which
// re-checks the schedule against the event store's state; so every ledgerd
// process may run it, and a lagging read model only delays, never
// double-applies, a transition.
func (a *App) runCampaignScheduler(ctx context.Context) {
	t := time.NewTicker(campaignTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.AdvanceDueCampaigns(ctx); err != nil && ctx.Err() == nil {
			a.Log.Warn("campaign scheduler: listing due campaigns failed", "err", err)
		}
	}
}

// campaignBatch bounds the campaigns one scheduler pass advances.
const campaignBatch = 100

// AdvanceDueCampaigns is one pass of the campaign scheduler: it advances
// up to a batch of the campaigns the read model says are due. It returns
// only the listing's error; failed advances are logged and retried on the
// next pass.
func (a *App) AdvanceDueCampaigns(ctx context.Context) error {
	due, err := projections.DueCampaigns(ctx, a.Pool, time.Now(), campaignBatch)
	if err != nil {
		return err
	}
	for _, d := range due {
		if _, err := a.Store.AdvanceCampaign(ctx, d.Scope, d.CampaignID); err != nil && ctx.Err() == nil {
			a.Log.Warn("campaign scheduler: advance failed", "campaign", d.CampaignID, "err", err)
		}
	}
	return nil
}
