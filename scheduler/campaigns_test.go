package scheduler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/app"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// One tenant's scheduled campaigns that cannot start (another of its
// campaigns is ACTIVE) must not keep the scheduler from starting other
// tenants' campaigns, however many of them there are.
func TestBlockedScheduledCampaignsDoNotStarveOtherTenants(t *testing.T) {
	t.Parallel()
	// No background scheduler or projectors: the test drives both.
	srv := apptest.Start(t, func(c *app.Config) { c.DisableBackground = true })
	ctx := context.Background()
	meta := events.Metadata{Actor: "test"}
	create := func(sc eventstore.Tenant, status string, startsAt *time.Time, name string) string {
		t.Helper()
		out, err := srv.Ledger.CreateCampaign(ctx, sc, meta, ledger.CampaignInput{Name: name, Status: status, StartsAt: startsAt})
		require.NoError(t, err)
		return out.CampaignID
	}

	noisy := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: ledger.EnvSandbox}
	active := create(noisy, ledger.CampaignActive, nil, "running")
	longAgo := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	var blocked []string
	for i := 0; i < 150; i++ {
		blocked = append(blocked, create(noisy, ledger.CampaignScheduled, &longAgo, fmt.Sprintf("blocked %d", i)))
	}
	// A blocked campaign whose end has passed is still due: it ends.
	ended := longAgo.Add(time.Hour)
	expired, err := srv.Ledger.CreateCampaign(ctx, noisy, meta, ledger.CampaignInput{Name: "expired", Status: ledger.CampaignScheduled, StartsAt: &longAgo, EndsAt: &ended})
	require.NoError(t, err)
	quiet := eventstore.Tenant{PartnerID: eventstore.NewID("ptr"), Environment: ledger.EnvSandbox}
	recently := time.Now().Add(-time.Minute)
	due := create(quiet, ledger.CampaignScheduled, &recently, "due")

	rebuild := func() {
		t.Helper()
		_, err := projections.Rebuild(ctx, srv.Pool, projections.Rewards{}, nil)
		require.NoError(t, err)
	}
	status := func(sc eventstore.Tenant, id string) string {
		t.Helper()
		c, err := projections.GetCampaign(ctx, srv.Pool, sc, id)
		require.NoError(t, err)
		return c.Status
	}
	rebuild()
	require.NoError(t, srv.Campaigns.AdvanceDue(ctx))
	rebuild()
	require.Equal(t, ledger.CampaignActive, status(quiet, due))
	require.Equal(t, ledger.CampaignActive, status(noisy, active))
	require.Equal(t, ledger.CampaignEnded, status(noisy, expired.CampaignID))
	for _, id := range blocked {
		require.Equal(t, ledger.CampaignScheduled, status(noisy, id))
	}
}
