package events_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
)

// renamed is at schema version 2: version 1 called the field "value".
type renamed struct {
	Amount int64 `json:"amount"`
}

func (renamed) EventType() string { return "test.renamed" }

func init() {
	events.Register[renamed](2, func(old json.RawMessage) (json.RawMessage, error) {
		var v1 struct {
			Value int64 `json:"value"`
		}
		if err := json.Unmarshal(old, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]int64{"amount": v1.Value})
	})
}

func TestOldSchemaVersionsAreUpcastOnRead(t *testing.T) {
	t.Parallel()
	p, err := events.Decode(events.Event{Type: "test.renamed", SchemaVersion: 1, Payload: []byte(`{"value":42}`)})
	require.NoError(t, err)
	require.Equal(t, renamed{Amount: 42}, p)

	p, err = events.Decode(events.Event{Type: "test.renamed", SchemaVersion: 2, Payload: []byte(`{"amount":7}`)})
	require.NoError(t, err)
	require.Equal(t, renamed{Amount: 7}, p)

	typ, ver, body, err := events.Encode(renamed{Amount: 5})
	require.NoError(t, err)
	require.Equal(t, "test.renamed", typ)
	require.Equal(t, 2, ver)
	require.JSONEq(t, `{"amount":5}`, string(body))

	_, err = events.Decode(events.Event{Type: "test.renamed", SchemaVersion: 3, Payload: []byte(`{}`)})
	require.ErrorContains(t, err, "newer than this binary")
	_, err = events.Decode(events.Event{Type: "test.unknown", SchemaVersion: 1, Payload: []byte(`{}`)})
	require.ErrorContains(t, err, "not registered")
}

func TestHashCoversEveryStoredField(t *testing.T) {
	t.Parallel()
	base := events.Event{
		Position: 3, StreamID: "s", StreamVersion: 1, ID: uuid.New(), Type: "t", SchemaVersion: 1,
		PartnerID: "p", Environment: "sandbox", Payload: []byte(`{}`), Metadata: []byte(`{}`),
		RecordedAt: time.Unix(1700000000, 123456000).UTC(), PrevHash: events.GenesisHash,
	}
	h := events.ComputeHash(&base)
	mutations := map[string]func(e *events.Event){
		"position":  func(e *events.Event) { e.Position++ },
		"stream":    func(e *events.Event) { e.StreamID = "s2" },
		"version":   func(e *events.Event) { e.StreamVersion++ },
		"id":        func(e *events.Event) { e.ID = uuid.New() },
		"type":      func(e *events.Event) { e.Type = "u" },
		"schema":    func(e *events.Event) { e.SchemaVersion++ },
		"partner":   func(e *events.Event) { e.PartnerID = "q" },
		"env":       func(e *events.Event) { e.Environment = "production" },
		"payload":   func(e *events.Event) { e.Payload = []byte(`{"a":1}`) },
		"metadata":  func(e *events.Event) { e.Metadata = []byte(`{"a":1}`) },
		"recorded":  func(e *events.Event) { e.RecordedAt = e.RecordedAt.Add(time.Microsecond) },
		"prev hash": func(e *events.Event) { e.PrevHash = h },
		// Field boundaries are length-prefixed: moving bytes between
		// adjacent fields must change the hash too.
		"boundary": func(e *events.Event) { e.PartnerID, e.Environment = "psand", "box" },
	}
	for name, mutate := range mutations {
		e := base
		mutate(&e)
		require.NotEqual(t, h, events.ComputeHash(&e), name)
	}
	same := base
	same.RecordedAt = same.RecordedAt.Add(300 * time.Nanosecond) // below PostgreSQL's precision
	require.Equal(t, h, events.ComputeHash(&same))
}

// A pool.debited written before debits were coalesced (version 1, one
// actionId) reads as a debit for a list of that one action.
func TestPoolDebitedVersion1ReadsAsOneAction(t *testing.T) {
	t.Parallel()
	pl, err := events.Decode(events.Event{Type: "pool.debited", SchemaVersion: 1,
		Payload: json.RawMessage(`{"poolId":"pool_1","actionId":"act_1","amount":7}`)})
	require.NoError(t, err)
	require.Equal(t, events.PoolDebited{PoolID: "pool_1", ActionIDs: []string{"act_1"}, Amount: 7}, pl)
}

// Coalescing two debits of one pool sums them and keeps the actions in
// order; debits of different pools, other payloads and a merge past the
// bound are refused.
func TestPoolDebitedCoalesce(t *testing.T) {
	t.Parallel()
	a := events.PoolDebited{PoolID: "pool_1", ActionIDs: []string{"act_1"}, Amount: 3}
	b := events.PoolDebited{PoolID: "pool_1", ActionIDs: []string{"act_2", "act_3"}, Amount: 4}
	got, ok := a.Coalesce(b)
	require.True(t, ok)
	requireSamePayload(t, events.PoolDebited{PoolID: "pool_1", ActionIDs: []string{"act_1", "act_2", "act_3"}, Amount: 7}, got)
	require.Equal(t, []string{"act_1"}, a.ActionIDs, "the parts are not changed")
	require.Equal(t, []string{"act_2", "act_3"}, b.ActionIDs, "the parts are not changed")

	_, ok = a.Coalesce(events.PoolDebited{PoolID: "pool_2", ActionIDs: []string{"act_2"}, Amount: 1})
	require.False(t, ok)
	_, ok = a.Coalesce(events.PoolCredited{PoolID: "pool_1", ActionID: "act_2", Amount: 1})
	require.False(t, ok)
	full := events.PoolDebited{PoolID: "pool_1", ActionIDs: make([]string, events.MaxDebitActions), Amount: 1}
	_, ok = full.Coalesce(a)
	require.False(t, ok)
}

// A group commit merges a hot pool's debits one after the other, each
// result merged once more (eventstore.Coalescer). The chain must cost
// about one copy per id, not one per id per merge: the merges share a
// few arrays, grown as the list grows, and every earlier result and
// every emitted debit still reads as it did.
func TestDebitChainGrowsOneList(t *testing.T) {
	t.Parallel()
	var chain []events.PoolDebited
	var cur events.Payload = events.PoolDebited{PoolID: "pool_1", ActionIDs: []string{"act_0"}, Amount: 1}
	emitted := []events.PoolDebited{cur.(events.PoolDebited)}
	arrays := map[*string]bool{}
	for i := 1; i < events.MaxDebitActions; i++ {
		next := events.PoolDebited{PoolID: "pool_1", ActionIDs: []string{fmt.Sprint("act_", i)}, Amount: 1}
		emitted = append(emitted, next)
		merged, ok := cur.(events.PoolDebited).Coalesce(next)
		require.True(t, ok)
		d := merged.(events.PoolDebited)
		chain = append(chain, d)
		arrays[&d.ActionIDs[0]] = true
		cur = merged
	}
	last := cur.(events.PoolDebited)
	require.Len(t, last.ActionIDs, events.MaxDebitActions)
	require.EqualValues(t, events.MaxDebitActions, last.Amount)
	for i, id := range last.ActionIDs {
		require.Equal(t, fmt.Sprint("act_", i), id)
	}
	for i, d := range chain {
		require.Len(t, d.ActionIDs, i+2, "an earlier merge still reads as it did")
		require.Equal(t, last.ActionIDs[:i+2], d.ActionIDs)
	}
	for i, d := range emitted {
		require.Equal(t, []string{fmt.Sprint("act_", i)}, d.ActionIDs, "an emitted debit is never written to")
	}
	require.LessOrEqual(t, len(arrays), 10, "999 merges share a few arrays (one each before)")
	_, ok := last.Coalesce(events.PoolDebited{PoolID: "pool_1", ActionIDs: []string{"act_x"}, Amount: 1})
	require.False(t, ok, "past MaxDebitActions")
}

// requireSamePayload compares payloads as they are stored: by encoding.
func requireSamePayload(t *testing.T, want, got events.Payload) {
	t.Helper()
	_, _, wb, err := events.Encode(want)
	require.NoError(t, err)
	_, _, gb, err := events.Encode(got)
	require.NoError(t, err)
	require.JSONEq(t, string(wb), string(gb))
	require.Equal(t, want.EventType(), got.EventType())
}

// campaign.budget_debited follows pool.debited: version 1 reads as a list
// of one action, and debits of one campaign coalesce.
func TestCampaignBudgetDebitedVersion1AndCoalesce(t *testing.T) {
	t.Parallel()
	pl, err := events.Decode(events.Event{Type: "campaign.budget_debited", SchemaVersion: 1,
		Payload: json.RawMessage(`{"campaignId":"cmp_1","actionId":"act_1","amount":7}`)})
	require.NoError(t, err)
	a := events.CampaignBudgetDebited{CampaignID: "cmp_1", ActionIDs: []string{"act_1"}, Amount: 7}
	require.Equal(t, a, pl)
	got, ok := a.Coalesce(events.CampaignBudgetDebited{CampaignID: "cmp_1", ActionIDs: []string{"act_2"}, Amount: 2})
	require.True(t, ok)
	requireSamePayload(t, events.CampaignBudgetDebited{CampaignID: "cmp_1", ActionIDs: []string{"act_1", "act_2"}, Amount: 9}, got)
	_, ok = a.Coalesce(events.CampaignBudgetDebited{CampaignID: "cmp_2", ActionIDs: []string{"act_2"}, Amount: 2})
	require.False(t, ok)
	_, ok = a.Coalesce(events.PoolDebited{PoolID: "cmp_1", ActionIDs: []string{"act_2"}, Amount: 2})
	require.False(t, ok)
}

// BenchmarkDebitChain merges a hot pool's MaxDebitActions one-action
// debits as one group commit does.
func BenchmarkDebitChain(b *testing.B) {
	ids := make([]events.PoolDebited, events.MaxDebitActions)
	for i := range ids {
		ids[i] = events.PoolDebited{PoolID: "pool_1", ActionIDs: []string{fmt.Sprint("act_", i)}, Amount: 1}
	}
	b.ReportAllocs()
	for b.Loop() {
		var cur events.Payload = ids[0]
		for _, next := range ids[1:] {
			cur, _ = cur.(events.PoolDebited).Coalesce(next)
		}
	}
}
