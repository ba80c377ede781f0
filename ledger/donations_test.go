package ledger_test

// Donation decisions in memory (see decisions_test.go): link creation,
// completion exactly once with its reward, refunds, and the refusals; and
// against PostgreSQL, racing notices from two processes.

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// testCheckout stands in for the providers: every provider is configured
// and its link names the donation.
type testCheckout struct{}

func (testCheckout) Open(_ context.Context, d ledger.DonationDraft) (ledger.CheckoutLink, error) {
	if d.Provider == "every.org" && d.Tenant.Environment == ledger.EnvSandbox {
		return ledger.CheckoutLink{}, ledger.ErrProviderNotConfigured(d.Provider, d.Tenant.Environment)
	}
	return ledger.CheckoutLink{Provider: d.Provider, URL: "https://pay.example/" + d.ID, Ref: "ref_" + d.ID}, nil
}

func donationLedger(t *testing.T) (*ledger.Service, *eventstore.Memory, eventstore.Tenant) {
	t.Helper()
	m := eventstore.NewMemory(func() time.Time { return clock })
	s := ledger.NewService(m, ledger.Options{MasterKey: make([]byte, 32), Checkout: testCheckout{}})
	ctx := context.Background()
	uid, _, err := s.CreatePortalUser(ctx, events.Metadata{}, "owner@example.com", "password-1")
	require.NoError(t, err)
	k, _, err := s.CreateAPIKey(ctx, events.Metadata{}, uid, "widget", ledger.EnvSandbox, nil)
	require.NoError(t, err)
	sc := eventstore.Tenant{PartnerID: k.PartnerID, Environment: ledger.EnvSandbox}
	_, _, err = s.ListNonprofits(context.Background(), events.Metadata{}, "test", []ledger.NonprofitInput{
		{Slug: "american-red-cross", Name: "American Red Cross", EIN: "53-0196605"},
	})
	require.NoError(t, err)
	return s, m, sc
}

func donation(amount int64) ledger.DonationInput {
	return ledger.DonationInput{NonprofitSlug: "american-red-cross", Amount: amount, Currency: "USD", Frequency: "once",
		Provider: "stripe", DonorEmail: "Ada@Example.com", FirstName: "Ada", LastName: "Lovelace"}
}

func TestDecideDonationCompletesOnceAndRewardsWithoutTheTip(t *testing.T) {
	t.Parallel()
	s, m, sc := donationLedger(t)
	ctx := context.Background()
	on, pct := true, int64(10)
	_, err := s.ConfigurePartner(ctx, events.Metadata{}, sc.PartnerID, ledger.WidgetConfigPatch{TipEnabled: &on, TipDefaultPercent: &pct})
	require.NoError(t, err)
	in := donation(2550)
	tip := int64(10)
	in.TipPercent = &tip
	link, err := s.CreateDonationLink(ctx, sc, events.Metadata{}, in)
	require.NoError(t, err)
	require.Equal(t, int64(255), link.Draft.TipAmount) // 10 % of 25.50, half up
	require.Equal(t, "American Red Cross", link.Draft.NonprofitName)
	require.Equal(t, "https://pay.example/"+link.Draft.ID, link.Link.URL)

	before := len(m.Events())
	n := ledger.DonationNotice{DonationID: link.Draft.ID, Provider: "stripe", Kind: ledger.NoticeCompleted, Ref: "pi_1"}
	out, err := s.RecordDonationNotice(ctx, sc, events.Metadata{}, n)
	require.NoError(t, err)
	require.True(t, out.Recorded)
	require.Equal(t, ledger.DonationCompleted, out.Status)
	require.Equal(t, int64(26), out.Tokens) // 25.50 USD → 26 tokens; the tip earns nothing
	require.Equal(t, ledger.ActionID(sc, ledger.DonationActionKey(link.Draft.ID)), out.ActionID)
	evs := m.Events()[before:]
	require.Equal(t, []string{"enduser.created", "action.completed", "pool.debited", "donation.completed"}, types(evs))
	var act events.ActionCompleted
	require.NoError(t, json.Unmarshal(evs[1].Payload, &act))
	require.Equal(t, "DONATION", act.ActionType)
	require.Equal(t, "25.5", act.Amount)
	require.Equal(t, "ada@example.com", act.Stakeholders[0].PartnerUserID)

	// The provider repeats itself: nothing more is recorded.
	n2 := len(m.Events())
	again, err := s.RecordDonationNotice(ctx, sc, events.Metadata{}, n)
	require.NoError(t, err)
	require.False(t, again.Recorded)
	require.Equal(t, int64(26), again.Tokens)
	require.Len(t, m.Events(), n2)
	// A late cancellation changes nothing either.
	late, err := s.RecordDonationNotice(ctx, sc, events.Metadata{}, ledger.DonationNotice{DonationID: link.Draft.ID, Provider: "stripe", Kind: ledger.NoticeCancelled})
	require.NoError(t, err)
	require.False(t, late.Recorded)
	require.Equal(t, ledger.DonationCompleted, late.Status)

	// A refund reverses the reward, once.
	ref, err := s.RecordDonationNotice(ctx, sc, events.Metadata{}, ledger.DonationNotice{DonationID: link.Draft.ID, Provider: "stripe", Kind: ledger.NoticeRefunded})
	require.NoError(t, err)
	require.True(t, ref.Recorded)
	require.Equal(t, []string{"action.reversed", "pool.credited", "donation.refunded"}, types(m.Events()[n2:]))
	n3 := len(m.Events())
	ref2, err := s.RecordDonationNotice(ctx, sc, events.Metadata{}, ledger.DonationNotice{DonationID: link.Draft.ID, Provider: "stripe", Kind: ledger.NoticeRefunded})
	require.NoError(t, err)
	require.False(t, ref2.Recorded)
	require.Len(t, m.Events(), n3)
}

func TestDecideDonationCampaignMultiplierApplies(t *testing.T) {
	t.Parallel()
	s, _, sc := donationLedger(t)
	ctx := context.Background()
	_, err := s.CreateCampaign(ctx, sc, events.Metadata{}, ledger.CampaignInput{Name: "Double donations", Multiplier: "2",
		ActionTypes: []string{"DONATION"}, Status: "ACTIVE"})
	require.NoError(t, err)
	link, err := s.CreateDonationLink(ctx, sc, events.Metadata{}, donation(1000))
	require.NoError(t, err)
	out, err := s.RecordDonationNotice(ctx, sc, events.Metadata{}, ledger.DonationNotice{DonationID: link.Draft.ID, Provider: "stripe", Kind: ledger.NoticeCompleted})
	require.NoError(t, err)
	require.Equal(t, int64(20), out.Tokens)
}

func TestDecideDonationRefusals(t *testing.T) {
	t.Parallel()
	s, m, sc := donationLedger(t)
	ctx := context.Background()
	bad := func(mut func(*ledger.DonationInput)) string {
		in := donation(2500)
		mut(&in)
		_, err := s.CreateDonationLink(ctx, sc, events.Metadata{}, in)
		require.Error(t, err)
		return code(err)
	}
	before := len(m.Events())
	require.Equal(t, "VALIDATION_ERROR", bad(func(in *ledger.DonationInput) { in.Amount = 99 }))
	require.Equal(t, "VALIDATION_ERROR", bad(func(in *ledger.DonationInput) { in.Amount = ledger.DefaultMaxDonationAmount + 1 }))
	require.Equal(t, "VALIDATION_ERROR", bad(func(in *ledger.DonationInput) { in.Currency = "XYZ" }))
	require.Equal(t, "VALIDATION_ERROR", bad(func(in *ledger.DonationInput) { in.Frequency = "weekly" }))
	require.Equal(t, "VALIDATION_ERROR", bad(func(in *ledger.DonationInput) { in.Provider = "paypal" }))
	require.Equal(t, "VALIDATION_ERROR", bad(func(in *ledger.DonationInput) { in.DonorEmail = "not an email" }))
	require.Equal(t, "NONPROFIT_NOT_FOUND", bad(func(in *ledger.DonationInput) { in.NonprofitSlug = "no-such-org" }))
	require.Equal(t, "PROVIDER_NOT_CONFIGURED", bad(func(in *ledger.DonationInput) { in.Provider = "every.org" }))
	require.Len(t, m.Events(), before, "a refused link records nothing")

	// Tips only when the partner's widget takes them; donations only when on.
	require.Equal(t, "TIPS_DISABLED", bad(func(in *ledger.DonationInput) { tip := int64(100); in.TipAmount = &tip }))
	_, err := s.ConfigurePartner(ctx, events.Metadata{}, sc.PartnerID, ledger.WidgetConfigPatch{Features: []string{"ACTIONS"}})
	require.NoError(t, err)
	require.Equal(t, "DONATIONS_DISABLED", bad(func(*ledger.DonationInput) {}))
	_, err = s.ConfigurePartner(ctx, events.Metadata{}, sc.PartnerID, ledger.WidgetConfigPatch{Features: []string{"ACTIONS", "DONATIONS"}})
	require.NoError(t, err)
	_, err = s.ConfigurePartner(ctx, events.Metadata{}, sc.PartnerID, ledger.WidgetConfigPatch{Features: []string{"COFFEE"}})
	require.Equal(t, "VALIDATION_ERROR", code(err))
	link, err := s.CreateDonationLink(ctx, sc, events.Metadata{}, donation(2500))
	require.NoError(t, err)

	// Notices about another tenant's or another provider's donation: not found.
	other := eventstore.Tenant{PartnerID: "ptr_other", Environment: ledger.EnvSandbox}
	_, err = s.RecordDonationNotice(ctx, other, events.Metadata{}, ledger.DonationNotice{DonationID: link.Draft.ID, Provider: "stripe", Kind: ledger.NoticeCompleted})
	require.Equal(t, "DONATION_NOT_FOUND", code(err))
	_, err = s.RecordDonationNotice(ctx, sc, events.Metadata{}, ledger.DonationNotice{DonationID: link.Draft.ID, Provider: "every.org", Kind: ledger.NoticeCompleted})
	require.Equal(t, "DONATION_NOT_FOUND", code(err))
	// A refund before the payment: refused.
	_, err = s.RecordDonationNotice(ctx, sc, events.Metadata{}, ledger.DonationNotice{DonationID: link.Draft.ID, Provider: "stripe", Kind: ledger.NoticeRefunded})
	require.Equal(t, "NOT_REFUNDABLE", code(err))
}

func TestDecideNonprofitListingIsIdempotentAndValidated(t *testing.T) {
	t.Parallel()
	s, m := memLedger(t)
	ctx := context.Background()
	list := []ledger.NonprofitInput{{Slug: "doctors-without-borders", Name: "Doctors Without Borders", EIN: "13-3433452", Categories: []string{"health"}}}
	n, _, err := s.ListNonprofits(ctx, events.Metadata{}, "test", list)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	before := len(m.Events())
	n, _, err = s.ListNonprofits(ctx, events.Metadata{}, "again", list)
	require.NoError(t, err)
	require.Equal(t, 0, n)
	require.Len(t, m.Events(), before)
	list[0].Description = "Medical humanitarian aid"
	n, _, err = s.ListNonprofits(ctx, events.Metadata{}, "update", list)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	_, _, err = s.ListNonprofits(ctx, events.Metadata{}, "bad", []ledger.NonprofitInput{{Slug: "Bad Slug", Name: "x", EIN: "12"}})
	require.Equal(t, "VALIDATION_ERROR", code(err))
	require.Equal(t, []eventstore.FieldIssue{{Field: "nonprofits[0].ein", Issue: "must be a US EIN such as 53-0196605"},
		{Field: "nonprofits[0].slug", Issue: "must be 1 to 100 lower-case letters, digits and dashes, starting with a letter or digit"}},
		eventstore.AsError(err).Details)
}

// However many notifications of one payment race (a provider retrying
// while its first delivery is still being answered, two ledgerd
// processes), the donation completes once and its donor is rewarded once.
func TestDonationCompletesOnceUnderConcurrentNotices(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	open := func(pool *pgxpool.Pool) *ledger.Service {
		st := eventstore.OpenStore(pool, eventstore.StoreOptions{})
		t.Cleanup(st.Close)
		return ledger.NewService(st, ledger.Options{MasterKey: make([]byte, 32), Checkout: testCheckout{}})
	}
	s1, s2 := open(db.Pool), open(db.NewPool(t)) // two processes
	ctx := context.Background()
	uid, _, err := s1.CreatePortalUser(ctx, events.Metadata{}, "owner@example.com", "password-1")
	require.NoError(t, err)
	k, _, err := s1.CreateAPIKey(ctx, events.Metadata{}, uid, "widget", ledger.EnvSandbox, nil)
	require.NoError(t, err)
	sc := eventstore.Tenant{PartnerID: k.PartnerID, Environment: ledger.EnvSandbox}
	_, _, err = s1.ListNonprofits(ctx, events.Metadata{}, "test", []ledger.NonprofitInput{{Slug: "american-red-cross", Name: "American Red Cross"}})
	require.NoError(t, err)
	link, err := s1.CreateDonationLink(ctx, sc, events.Metadata{}, donation(4999))
	require.NoError(t, err)

	const n = 16
	var wg sync.WaitGroup
	outs := make([]ledger.DonationNoticeOutcome, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := s1
			if i%2 == 1 {
				s = s2
			}
			outs[i], errs[i] = s.RecordDonationNotice(ctx, sc, events.Metadata{}, ledger.DonationNotice{DonationID: link.Draft.ID, Provider: "stripe", Kind: ledger.NoticeCompleted})
		}()
	}
	wg.Wait()
	first := 0
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, int64(50), outs[i].Tokens)
		if outs[i].Recorded {
			first++
		}
	}
	require.Equal(t, 1, first)
	var completions, rewards int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE event_type = 'donation.completed'),
		count(*) FILTER (WHERE event_type = 'action.completed') FROM events`).Scan(&completions, &rewards))
	require.Equal(t, 1, completions)
	require.Equal(t, 1, rewards)
}
