package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// Balances can be computed as of any past position from the event store
// alone, and reconcile checks the ledger's arithmetic and the read model.
func TestAuditBalancesAsOfAndReconcile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	submit := func(key, amount string, users ...string) string {
		var sh []map[string]any
		for _, u := range users {
			sh = append(sh, map[string]any{"stakeholderTypeCode": "CUSTOMER", "partnerUserId": u})
		}
		var out struct{ ActionID string }
		code := p.JSON(t, http.MethodPost, "/v1/partner/actions/submit", map[string]any{
			"idempotencyKey": key, "actionType": "PURCHASE", "amount": amount, "currency": "USD",
			"stakeholders": sh, "autoCreateUsers": true,
		}, &out)
		require.Equal(t, http.StatusOK, code)
		return out.ActionID
	}
	first := submit("a1", "10.00", "alice")
	before, err := eventstore.ReadHead(ctx, srv.Pool)
	require.NoError(t, err)
	submit("a2", "7.00", "alice", "bob")
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodPost, "/v1/partner/actions/"+first+"/reverse", map[string]any{"reason": "refund"}, nil))
	head, err := eventstore.ReadHead(ctx, srv.Pool)
	require.NoError(t, err)
	require.NoError(t, projections.WaitFor(ctx, srv.Pool, head, projections.RewardsName))

	code, out, errOut := ctl(t, "audit", "balances", "--database-url", srv.DB.URL, "--at", fmt.Sprint(before), "--user", "alice")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `alice\s+\S+\s+sandbox\s+10\s+0\s+10`, out, "as of the first action, alice had earned 10")

	code, out, errOut = ctl(t, "audit", "balances", "--database-url", srv.DB.URL, "--user", "alice")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `alice\s+\S+\s+sandbox\s+14\s+10\s+4`, out, "now: 10 + 4 earned, 10 reversed")

	code, out, errOut = ctl(t, "audit", "reconcile", "--database-url", srv.DB.URL)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "reconciled as of position")

	// A read model that drifted from the event store is caught.
	_, err = srv.Pool.Exec(ctx, `UPDATE `+projections.Table(projections.RewardsName, "balances")+` SET total_earned = total_earned + 1 WHERE external_id = 'bob'`)
	require.NoError(t, err)
	code, out, _ = ctl(t, "audit", "reconcile", "--database-url", srv.DB.URL)
	require.Equal(t, 1, code)
	require.Contains(t, out, "MISMATCH: read model user")
}

// The fold catches an event log whose arithmetic does not add up, even
// when every hash verifies (the events were appended, not edited).
func TestAuditFindsInconsistentArithmetic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := apptest.Start(t)
	sc := eventstore.Tenant{PartnerID: "ptr_x", Environment: "sandbox"}
	_, err := srv.Store.Append(ctx, sc, events.Metadata{}, "action-act_bad", 0, events.ActionCompleted{
		ActionID: "act_bad", PoolID: "pool_nowhere", TokensDistributed: 5, Status: "COMPLETED",
		Stakeholders: []events.ActionReward{{UserID: "pusr_1", PartnerUserID: "u1", Tokens: 4}},
	})
	require.NoError(t, err)
	rep, err := ledger.AuditBalances(ctx, srv.Pool, eventstore.Filter{}, 0)
	require.NoError(t, err)
	joined := strings.Join(rep.Problems, "\n")
	require.Contains(t, joined, "do not add up to 5")
	require.Contains(t, joined, "pool pool_nowhere: distributed 0 but its actions rewarded 5")
	require.Contains(t, joined, "users hold 4 but pools paid out 0 net")
	require.Contains(t, joined, "action act_bad at position")
	require.Contains(t, joined, "no pool.debited pays for it")
}

// A bulk request is one commit paid by one debit after its last action.
// Balances as of a position inside it show the actions before the cut and
// find nothing wrong: no reader ever saw that state, and the debit past
// the cut pays for them. At the head, an action no debit pays for is a
// problem (TestAuditFindsInconsistentArithmetic).
func TestAuditAsOfInsideACommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := apptest.Start(t)
	p := srv.NewPartner(t, "sandbox")
	before, err := eventstore.ReadHead(ctx, srv.Pool)
	require.NoError(t, err)
	item := func(key, amount, user string) map[string]any {
		return map[string]any{"idempotencyKey": key, "actionType": "PURCHASE", "amount": amount, "currency": "USD", "autoCreateUsers": true,
			"stakeholders": []map[string]any{{"stakeholderTypeCode": "CUSTOMER", "partnerUserId": user}}}
	}
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodPost, "/v1/partner/actions/bulk",
		map[string]any{"actions": []map[string]any{item("b1", "10.00", "alice"), item("b2", "5.00", "bob")}}, nil))
	var types []string
	_, err = eventstore.Export(ctx, srv.Pool, eventstore.Filter{FromPosition: before + 1}, func(e events.Event) error {
		types = append(types, e.Type)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"enduser.created", "action.completed", "enduser.created", "action.completed", "pool.debited"}, types)

	cut := before + 4 // bob's action: both actions rewarded, the debit not yet
	rep, err := ledger.AuditBalances(ctx, srv.Pool, eventstore.Filter{}, cut)
	require.NoError(t, err)
	require.Empty(t, rep.Problems)
	earned := map[string]int64{}
	for _, u := range rep.Users {
		earned[u.ExternalID] = u.Earned
	}
	require.Equal(t, map[string]int64{"alice": 10, "bob": 5}, earned)
	rep, err = ledger.AuditBalances(ctx, srv.Pool, eventstore.Filter{}, 0)
	require.NoError(t, err)
	require.Empty(t, rep.Problems)

	// A reversal is action.reversed then pool.credited in one commit: a
	// cut between them finds nothing wrong either, and shows alice's
	// tokens taken back.
	head, err := eventstore.ReadHead(ctx, srv.Pool)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, p.JSON(t, http.MethodPost, "/v1/partner/actions/"+ledger.ActionID(eventstore.Tenant{PartnerID: p.PartnerID, Environment: "sandbox"}, "b1")+"/reverse",
		map[string]any{"reason": "refund"}, nil))
	rep, err = ledger.AuditBalances(ctx, srv.Pool, eventstore.Filter{}, head+1)
	require.NoError(t, err)
	require.Empty(t, rep.Problems)
	for _, u := range rep.Users {
		if u.ExternalID == "alice" {
			require.Equal(t, int64(0), u.Balance())
		}
	}
}
