package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func countEvents(t *testing.T, db *testenv.DB, typ string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE event_type = $1`, typ).Scan(&n))
	return n
}

func TestNonprofitsImport(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	csv := writeFile(t, "orgs.csv", "slug,name,ein,city,state,categories\n"+
		"american-red-cross,American National Red Cross,53-0196605,Washington,DC,disaster-relief;health\n"+
		"feeding-america,Feeding America,36-3673599,Chicago,IL,hunger\n")
	code, out, errOut := ctl(t, "nonprofits", "import", "--database-url", db.URL, csv)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "imported 2/2 nonprofits (2 new or changed)\n")
	require.Equal(t, 2, countEvents(t, db, "nonprofit.listed"))
	// The same file again records nothing.
	code, out, _ = ctl(t, "nonprofits", "import", csv, "--database-url", db.URL)
	require.Equal(t, 0, code)
	require.Contains(t, out, "(0 new or changed)")
	require.Equal(t, 2, countEvents(t, db, "nonprofit.listed"))

	// JSON lines, with a bad row: nothing is imported, and the rows are named.
	bad := writeFile(t, "orgs.jsonl", `{"slug":"khan-academy","name":"Khan Academy","ein":"26-1544963"}
{"slug":"Bad Slug","name":"x"}
{"slug":"mozilla-foundation","name":"Mozilla Foundation","ein":"20-0097189","websiteUrl":"ftp://mozilla"}
not json
`)
	code, _, errOut = ctl(t, "nonprofits", "import", "--database-url", db.URL, bad)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "3 problems, nothing imported")
	require.Contains(t, errOut, "line 2 (Bad Slug): slug:")
	require.Contains(t, errOut, "line 3 (mozilla-foundation): websiteUrl: must be an https URL")
	require.Contains(t, errOut, "line 4: not a JSON object")
	require.Equal(t, 2, countEvents(t, db, "nonprofit.listed"))
}

func TestPartnersConfigureAndDonationsRefund(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	store := eventstore.OpenStore(db.Pool, eventstore.StoreOptions{})
	t.Cleanup(store.Close)
	s := ledger.NewService(store, ledger.Options{MasterKey: make([]byte, 32), Checkout: stubCheckout{}})
	uid, _, err := s.CreatePortalUser(ctx, events.Metadata{}, "owner@example.com", "password-1")
	require.NoError(t, err)
	k, _, err := s.CreateAPIKey(ctx, events.Metadata{}, uid, "k", ledger.EnvSandbox, nil)
	require.NoError(t, err)

	code, out, errOut := ctl(t, "partners", "configure", k.PartnerID, "--features", "DONATIONS", "--tips", "on", "--tip-percent", "12", "--database-url", db.URL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "configured")
	var cfg events.WidgetConfigured
	var raw []byte
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT payload::text FROM events WHERE event_type = 'widget.configured'`).Scan(&raw))
	require.NoError(t, json.Unmarshal(raw, &cfg))
	require.Equal(t, events.WidgetConfigured{PartnerID: k.PartnerID, EnabledFeatures: []string{"DONATIONS"}, TipEnabled: true, TipDefaultPercent: 12, Actor: "ledgerctl"}, cfg)
	code, _, errOut = ctl(t, "partners", "configure", k.PartnerID, "--features", "COFFEE", "--database-url", db.URL)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `"COFFEE" is not a feature`)

	_, _, err = s.ListNonprofits(ctx, events.Metadata{}, "test", []ledger.NonprofitInput{{Slug: "feeding-america", Name: "Feeding America"}})
	require.NoError(t, err)
	sc := eventstore.Tenant{PartnerID: k.PartnerID, Environment: ledger.EnvSandbox}
	link, err := s.CreateDonationLink(ctx, sc, events.Metadata{}, ledger.DonationInput{NonprofitSlug: "feeding-america", Amount: 1000,
		Currency: "USD", Frequency: "once", Provider: "every.org", DonorEmail: "ada@example.com"})
	require.NoError(t, err)
	code, _, errOut = ctl(t, "donations", "refund", link.Draft.ID, "--database-url", db.URL)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "NOT_REFUNDABLE")
	_, err = s.RecordDonationNotice(ctx, sc, events.Metadata{}, ledger.DonationNotice{DonationID: link.Draft.ID, Provider: "every.org", Kind: ledger.NoticeCompleted})
	require.NoError(t, err)
	code, out, errOut = ctl(t, "donations", "refund", link.Draft.ID, "--reason", "chargeback", "--database-url", db.URL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "REFUNDED; 10 tokens reversed")
	code, out, _ = ctl(t, "donations", "refund", link.Draft.ID, "--database-url", db.URL)
	require.Equal(t, 0, code)
	require.Contains(t, out, "already refunded")
	require.Equal(t, 1, countEvents(t, db, "donation.refunded"))
	code, _, errOut = ctl(t, "donations", "refund", "don_00000000000000000000000000000000", "--database-url", db.URL)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no donation")
}

// stubCheckout takes every donation with a link naming it.
type stubCheckout struct{}

func (stubCheckout) Open(_ context.Context, d ledger.DonationDraft) (ledger.CheckoutLink, error) {
	return ledger.CheckoutLink{Provider: d.Provider, URL: "https://pay.example/" + d.ID}, nil
}
