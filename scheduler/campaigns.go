// Package scheduler runs the ledger's clock-driven commands: campaigns
// that start and end on a schedule. It finds candidates in a read model
// and issues domain commands that re-check the schedule against the event
// store, so every ledgerd process may run it and a lagging read model only
// delays, never double-applies, a transition.
package scheduler

import (
	"context"
	"log/slog"
	"time"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// campaignTick is how often the scheduler looks for campaigns whose start
// or end has come.
const campaignTick = time.Second

// campaignBatch bounds the campaigns one scheduler pass advances.
const campaignBatch = 100

// Campaigns starts and ends scheduled campaigns on time.
type Campaigns struct {
	Ledger *ledger.Service
	// DB is where the campaigns read model is queried.
	DB  eventstore.Querier
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Run advances due campaigns once a second until ctx ends.
func (c *Campaigns) Run(ctx context.Context) {
	t := time.NewTicker(campaignTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.AdvanceDue(ctx); err != nil && ctx.Err() == nil {
			c.log().Warn("campaign scheduler: listing due campaigns failed", "err", err)
		}
	}
}

// AdvanceDue is one pass of the scheduler: it advances up to a batch of
// the campaigns the read model says are due. It returns only the listing's
// error; failed advances are logged and retried on the next pass.
func (c *Campaigns) AdvanceDue(ctx context.Context) error {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	due, err := projections.DueCampaigns(ctx, c.DB, now(), campaignBatch)
	if err != nil {
		return err
	}
	for _, d := range due {
		if _, err := c.Ledger.AdvanceCampaign(ctx, d.Tenant, d.CampaignID); err != nil && ctx.Err() == nil {
			c.log().Warn("campaign scheduler: advance failed", "campaign", d.CampaignID, "err", err)
		}
	}
	return nil
}

func (c *Campaigns) log() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}
