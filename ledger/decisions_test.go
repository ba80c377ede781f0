package ledger_test

// Decisions tested in memory: the domain's commands run through
// eventstore.Memory, which uses the same decide path as the PostgreSQL
// store, so each test is state + command → events (or a typed refusal),
// with no database. The end-to-end tests beside these cover the same rules
// against PostgreSQL and under concurrency.

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

var clock = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func memLedger(t *testing.T) (*ledger.Service, *eventstore.Memory) {
	t.Helper()
	m := eventstore.NewMemory(func() time.Time { return clock })
	return ledger.NewService(m, ledger.Options{MasterKey: make([]byte, 32)}), m
}

func memTenant(t *testing.T, s *ledger.Service, tokens int64) eventstore.Tenant {
	t.Helper()
	sc := eventstore.Tenant{PartnerID: "ptr_mem", Environment: ledger.EnvSandbox}
	_, _, err := s.ProvisionPool(context.Background(), sc, events.Metadata{}, ledger.PoolInput{Allocated: tokens})
	require.NoError(t, err)
	return sc
}

func types(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func code(err error) string {
	if err == nil {
		return ""
	}
	return eventstore.AsError(err).Code
}

func TestDecideSubmitRewardsSplitsAndDebits(t *testing.T) {
	t.Parallel()
	s, m := memLedger(t)
	sc := memTenant(t, s, 1000)
	before := len(m.Events())
	out, err := s.SubmitAction(context.Background(), sc, events.Metadata{}, action("order-1", "49.99", "alice", "bob", "carol"))
	require.NoError(t, err)
	require.Equal(t, ledger.StatusCompleted, out.Status)
	require.Equal(t, int64(50), out.TokensDistributed)
	require.Len(t, out.TransactionIDs, 3)
	evs := m.Events()[before:]
	require.Equal(t, []string{"enduser.created", "enduser.created", "enduser.created", "action.completed", "pool.debited"}, types(evs))
	var done events.ActionCompleted
	require.NoError(t, json.Unmarshal(evs[3].Payload, &done))
	require.Equal(t, []int64{17, 17, 16}, []int64{done.Stakeholders[0].Tokens, done.Stakeholders[1].Tokens, done.Stakeholders[2].Tokens})
	require.Equal(t, *out.Completed, done)
}

func TestDecideReplayAndReusedKey(t *testing.T) {
	t.Parallel()
	s, m := memLedger(t)
	sc := memTenant(t, s, 1000)
	ctx := context.Background()
	first, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("k", "10", "alice"))
	require.NoError(t, err)
	n := len(m.Events())

	again, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("k", "10", "alice"))
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, *first.Completed, *again.Completed)
	require.Len(t, m.Events(), n, "a replay appends nothing")

	// Every fingerprinted member, changed alone, makes the key a reuse.
	changes := map[string]func(*ledger.ActionInput){
		"amount":          func(in *ledger.ActionInput) { in.Amount = "11" },
		"currency":        func(in *ledger.ActionInput) { in.Currency = "EUR" },
		"actionType":      func(in *ledger.ActionInput) { in.ActionType = "DONATION" },
		"stakeholders":    func(in *ledger.ActionInput) { in.Stakeholders[0].PartnerUserID = "bob" },
		"metadata":        func(in *ledger.ActionInput) { in.Metadata = json.RawMessage(`{"x":1}`) },
		"tokenPoolId":     func(in *ledger.ActionInput) { in.TokenPoolID = ledger.DefaultPoolID(sc) },
		"campaignId":      func(in *ledger.ActionInput) { in.CampaignID = "cmp_x" },
		"autoCreateUsers": func(in *ledger.ActionInput) { in.AutoCreateUsers = false },
	}
	for field, change := range changes {
		in := action("k", "10", "alice")
		change(&in)
		_, err := s.SubmitAction(ctx, sc, events.Metadata{}, in)
		require.Equal(t, "IDEMPOTENCY_KEY_REUSED", code(err), field)
	}
	require.Len(t, m.Events(), n, "refusals append nothing")
}

func TestDecideEmptyPoolRecordsAFailedActionThatCanBeRetried(t *testing.T) {
	t.Parallel()
	s, m := memLedger(t)
	sc := memTenant(t, s, 5)
	ctx := context.Background()
	out, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("big", "10", "alice"))
	require.Equal(t, "INSUFFICIENT_POOL", code(err))
	require.Equal(t, ledger.StatusFailed, out.Status)
	evs := m.Events()
	require.Equal(t, "action.failed", evs[len(evs)-1].Type)

	_, _, err = s.ProvisionPool(ctx, sc, events.Metadata{}, ledger.PoolInput{PoolID: "pool_more", Allocated: 100})
	require.NoError(t, err)
	in := action("big", "10", "alice")
	in.TokenPoolID = "pool_more"
	_, err = s.SubmitAction(ctx, sc, events.Metadata{}, in)
	require.Equal(t, "IDEMPOTENCY_KEY_REUSED", code(err), "a retry must send the same body")
	out, err = s.SubmitAction(ctx, sc, events.Metadata{}, action("big", "10", "alice"))
	require.Equal(t, "INSUFFICIENT_POOL", code(err), "the same body is decided again, not replayed")
	require.Equal(t, ledger.StatusFailed, out.Status)
}

func TestDecideUnknownUserWithoutAutoCreate(t *testing.T) {
	t.Parallel()
	s, m := memLedger(t)
	sc := memTenant(t, s, 100)
	n := len(m.Events())
	in := action("k", "10", "ghost")
	in.AutoCreateUsers = false
	_, err := s.SubmitAction(context.Background(), sc, events.Metadata{}, in)
	require.Equal(t, "USER_NOT_FOUND", code(err))
	require.Equal(t, eventstore.KindUnprocessable, eventstore.AsError(err).Kind)
	require.Len(t, m.Events(), n)
}

func TestDecideReverseOnceReturnsTokens(t *testing.T) {
	t.Parallel()
	s, m := memLedger(t)
	sc := memTenant(t, s, 100)
	ctx := context.Background()
	out, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("k", "30", "alice"))
	require.NoError(t, err)
	res, err := s.ReverseAction(ctx, sc, events.Metadata{}, out.ActionID, "refund")
	require.NoError(t, err)
	require.Equal(t, []string{"action.reversed", "pool.credited"}, types(res.Events))
	_, err = s.ReverseAction(ctx, sc, events.Metadata{}, out.ActionID, "again")
	require.Equal(t, "ALREADY_REVERSED", code(err))
	other := eventstore.Tenant{PartnerID: "ptr_other", Environment: ledger.EnvSandbox}
	_, err = s.ReverseAction(ctx, other, events.Metadata{}, out.ActionID, "")
	require.Equal(t, "ACTION_NOT_FOUND", code(err), "another tenant's action does not exist for it")

	p := &ledger.Pool{}
	for _, e := range m.Stream(ledger.PoolStream(ledger.DefaultPoolID(sc))) {
		require.NoError(t, p.Apply(e))
	}
	require.Equal(t, int64(100), p.Available())
}

// A bulk is one decision over its items in order: a repeated key is a
// replay of the first use (same body) or a reuse (other body), and when
// the pool runs out exactly the later items fail.
func TestDecideBulkInOrder(t *testing.T) {
	t.Parallel()
	s, _ := memLedger(t)
	sc := memTenant(t, s, 100)
	var ins []ledger.ActionInput
	for i := 0; i < 12; i++ {
		ins = append(ins, action("bulk-"+string(rune('a'+i)), "10", "alice"))
	}
	items, err := s.SubmitBulk(context.Background(), sc, events.Metadata{}, ins)
	require.NoError(t, err)
	for i, it := range items {
		if i < 10 {
			require.NoError(t, it.Err, i)
			require.Equal(t, ledger.StatusCompleted, it.Outcome.Status)
		} else {
			require.Equal(t, "INSUFFICIENT_POOL", code(it.Err), i)
		}
	}

	s2, _ := memLedger(t)
	sc2 := memTenant(t, s2, 100)
	first := action("dup", "10", "alice")
	other := action("dup", "20", "alice")
	items, err = s2.SubmitBulk(context.Background(), sc2, events.Metadata{}, []ledger.ActionInput{first, first, other})
	require.NoError(t, err)
	require.NoError(t, items[0].Err)
	require.False(t, items[0].Outcome.Replayed)
	require.NoError(t, items[1].Err)
	require.True(t, items[1].Outcome.Replayed)
	require.Equal(t, *items[0].Outcome.Completed, *items[1].Outcome.Completed)
	require.Equal(t, "IDEMPOTENCY_KEY_REUSED", code(items[2].Err), "the first body wins")
}

func TestDecideCampaignMultiplierAndBudget(t *testing.T) {
	t.Parallel()
	s, _ := memLedger(t)
	sc := memTenant(t, s, 10000)
	ctx := context.Background()
	budget := int64(50)
	_, err := s.CreateCampaign(ctx, sc, events.Metadata{}, ledger.CampaignInput{Name: "Double", Status: ledger.CampaignActive,
		Multiplier: "2", ActionTypes: []string{"PURCHASE"}, Budget: &budget})
	require.NoError(t, err)
	out, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("a", "20", "alice"))
	require.NoError(t, err)
	require.Equal(t, int64(40), out.TokensDistributed)
	_, err = s.SubmitAction(ctx, sc, events.Metadata{}, action("b", "20", "alice"))
	require.Equal(t, "CAMPAIGN_BUDGET_EXHAUSTED", code(err), "40 of 50 spent; 40 more does not fit")
}

func TestDecideKeysAndPartnerLifecycle(t *testing.T) {
	t.Parallel()
	s, _ := memLedger(t)
	ctx := context.Background()
	userID, _, err := s.CreatePortalUser(ctx, events.Metadata{}, "Owner@Example.com", "password-123")
	require.NoError(t, err)
	_, _, err = s.CreatePortalUser(ctx, events.Metadata{}, "owner@example.com ", "password-456")
	require.Equal(t, "EMAIL_TAKEN", code(err), "emails compare normalized")
	_, _, err = s.CreatePortalUser(ctx, events.Metadata{}, "short@example.com", "short")
	require.Equal(t, "VALIDATION_ERROR", code(err))

	k, res, err := s.CreateAPIKey(ctx, events.Metadata{}, userID, "laptop", ledger.EnvSandbox, nil)
	require.NoError(t, err)
	require.True(t, k.PartnerCreated)
	require.NotEmpty(t, k.PoolID, "the first sandbox key provisions the sandbox pool")
	require.Contains(t, types(res.Events), "pool.provisioned")
	require.Regexp(t, `^sk_test_[0-9a-f]{64}$`, k.SecretKey)

	_, err = s.RevokeAPIKey(ctx, events.Metadata{}, k.PartnerID, k.KeyID)
	require.NoError(t, err)
	_, err = s.RevokeAPIKey(ctx, events.Metadata{}, k.PartnerID, k.KeyID)
	require.Equal(t, "KEY_NOT_FOUND", code(err))
	_, err = s.SetPartnerTier(ctx, events.Metadata{}, k.PartnerID, "GOLD")
	require.Equal(t, "VALIDATION_ERROR", code(err))
	res, err = s.SuspendPartner(ctx, events.Metadata{}, k.PartnerID, "fraud")
	require.NoError(t, err)
	require.Equal(t, []string{"partner.suspended"}, types(res.Events))
	res, err = s.SuspendPartner(ctx, events.Metadata{}, k.PartnerID, "again")
	require.NoError(t, err)
	require.Empty(t, res.Events, "suspending a suspended partner changes nothing")
}

type refuseAll struct{}

func (refuseAll) RefuseHost(context.Context, string) (string, error) {
	return "10.0.0.1 is private", nil
}

func TestDecideWebhookRegistration(t *testing.T) {
	t.Parallel()
	m := eventstore.NewMemory(nil)
	s := ledger.NewService(m, ledger.Options{MasterKey: make([]byte, 32), WebhookHosts: refuseAll{}})
	sc := eventstore.Tenant{PartnerID: "ptr_1", Environment: ledger.EnvProduction}
	_, err := s.RegisterWebhook(context.Background(), sc, events.Metadata{}, ledger.RegisterWebhook{URL: "https://hooks.example/x", ReceiveAllEvents: true})
	require.Equal(t, "VALIDATION_ERROR", code(err))
	require.Contains(t, eventstore.AsError(err).Details[0].Issue, "10.0.0.1 is private")
	_, err = s.RegisterWebhook(context.Background(), sc, events.Metadata{}, ledger.RegisterWebhook{URL: "http://hooks.example/x", ReceiveAllEvents: true})
	require.Equal(t, "VALIDATION_ERROR", code(err), "production requires https")
	require.Empty(t, m.Events())

	open := ledger.NewService(m, ledger.Options{MasterKey: make([]byte, 32)})
	reg, err := open.RegisterWebhook(context.Background(), sc, events.Metadata{}, ledger.RegisterWebhook{URL: "https://hooks.example/x", EventTypes: []string{"action.completed", "action.completed"}})
	require.NoError(t, err)
	require.Equal(t, []string{"action.completed"}, reg.Event.EventTypes, "duplicates collapse")
	require.NotContains(t, string(m.Events()[0].Payload), reg.Secret, "the secret is stored sealed")
	other := eventstore.Tenant{PartnerID: "ptr_2", Environment: ledger.EnvProduction}
	_, err = open.DeleteWebhook(context.Background(), other, events.Metadata{}, reg.Event.WebhookID)
	require.Equal(t, "WEBHOOK_NOT_FOUND", code(err))
}

// The idempotency fingerprint is stored with every action, so its encoding
// is frozen: a replay of an action recorded by an earlier release must
// still match. This pins it.
func TestFingerprintEncodingIsFrozen(t *testing.T) {
	t.Parallel()
	s, _ := memLedger(t)
	sc := memTenant(t, s, 1000)
	in := action("frozen", "49.990", "alice", "bob")
	in.Stakeholders[0].UserEmail = "a@example.com"
	in.Metadata = json.RawMessage(`{"order": "o-1"}`)
	out, err := s.SubmitAction(context.Background(), sc, events.Metadata{}, in)
	require.NoError(t, err)
	require.Equal(t, "4e0de1df41a17b675352b224be9dde8e68f1dd1393767d7131c2b13beba9e51d", out.Completed.RequestHash)
}

// Partner-chosen ids hold printable text only: the HTTP layer refuses
// control characters and invalid UTF-8 in a path or query, so such an id
// could be created but never named again.
func TestDecidePartnerChosenIdsArePrintable(t *testing.T) {
	t.Parallel()
	s, m := memLedger(t)
	sc := memTenant(t, s, 1000)
	ctx := context.Background()
	n := len(m.Events())
	for _, bad := range []string{"k\n", "a\tb", "\x7f", "\u0085", "\xff"} {
		var e *eventstore.Error
		_, err := s.SubmitAction(ctx, sc, events.Metadata{}, action(bad, "10", "alice"))
		require.ErrorAs(t, err, &e, "%q", bad)
		require.Equal(t, "idempotencyKey", e.Details[0].Field, "%q", bad)
		_, err = s.SubmitAction(ctx, sc, events.Metadata{}, action("k", "10", bad))
		require.ErrorAs(t, err, &e, "%q", bad)
		require.Equal(t, "stakeholders[0].partnerUserId", e.Details[0].Field, "%q", bad)
		_, err = s.CreateUser(ctx, sc, events.Metadata{}, ledger.UserInput{ExternalID: bad})
		require.ErrorAs(t, err, &e, "%q", bad)
		require.Equal(t, "partnerUserId", e.Details[0].Field, "%q", bad)
	}
	require.Len(t, m.Events(), n, "refusals append nothing")
	_, err := s.SubmitAction(ctx, sc, events.Metadata{}, action("Zoë ☃ order 1", "10", "Zoë ☃"))
	require.NoError(t, err)
}
