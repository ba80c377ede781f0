package eventstore_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/bus"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

func testEvent(pos int64, partner, typ string) events.Event {
	e := events.Event{Position: pos, StreamID: "note-x", StreamVersion: pos, ID: uuid.New(), Type: typ, SchemaVersion: 1,
		PartnerID: partner, Environment: "sandbox", Payload: json.RawMessage(`{"n":1}`), Metadata: json.RawMessage(`{}`),
		RecordedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), PrevHash: events.GenesisHash}
	e.Hash = events.ComputeHash(&e)
	return e
}

// A run message carries its events exactly, with headers that let tools
// and the relay's re-sync read positions without decoding.
func TestMessageCarriesARunOfEvents(t *testing.T) {
	t.Parallel()
	evs := []events.Event{testEvent(7, "p1", "test.note"), testEvent(8, "p1", "test.other"), testEvent(9, "p1", "test.note")}
	msg, err := eventstore.Message(bus.Config{}, evs...)
	require.NoError(t, err)
	require.Equal(t, bus.EncodingRun, msg.Header.Get(bus.HeaderEncoding))
	require.Equal(t, "7", msg.Header.Get(bus.HeaderFirstPosition))
	require.Equal(t, "9", msg.Header.Get(bus.HeaderPosition))
	require.Equal(t, "3", msg.Header.Get(bus.HeaderCount))
	require.Equal(t, "test.note,test.other", msg.Header.Get(bus.HeaderType))
	require.Equal(t, "ledger.events.p1.sandbox.run", msg.Subject)
	got, err := eventstore.EventsOf(msg.Header, msg.Data)
	require.NoError(t, err)
	require.Equal(t, evs, got)

	// A truncated body or a count that disagrees is refused, not half-read.
	_, err = eventstore.EventsOf(msg.Header, msg.Data[:len(msg.Data)-3])
	require.Error(t, err)
	bad := nats.Header{}
	for k, v := range msg.Header {
		bad[k] = v
	}
	bad.Set(bus.HeaderCount, "2")
	_, err = eventstore.EventsOf(bad, msg.Data)
	require.Error(t, err)
}

// Runs never mixes tenants in one message (a consumer can filter by
// tenant), keeps position order, and bounds a message's size.
func TestRunsSplitByTenantAndSize(t *testing.T) {
	t.Parallel()
	var evs []events.Event
	for i := int64(1); i <= 600; i++ {
		partner := "p1"
		if i > 300 && i <= 310 {
			partner = "p2"
		}
		evs = append(evs, testEvent(i, partner, "test.note"))
	}
	// Three events of 100 KB at the end: the byte bound splits them, since
	// all three would pass 256 KB.
	big := json.RawMessage(`{"pad":"` + strings.Repeat("x", 100<<10) + `"}`)
	for i := int64(601); i <= 603; i++ {
		e := testEvent(i, "p1", "test.note")
		e.Payload = big
		e.Hash = events.ComputeHash(&e)
		evs = append(evs, e)
	}
	runs, err := eventstore.Runs(bus.Config{}, evs)
	require.NoError(t, err)
	next := 0
	for _, r := range runs {
		require.Equal(t, next, r.First, "runs cover every event once, in order")
		require.LessOrEqual(t, r.First, r.Last)
		got, err := eventstore.EventsOf(r.Msg.Header, r.Msg.Data)
		require.NoError(t, err)
		require.Equal(t, evs[r.First:r.Last+1], got)
		for _, e := range got {
			require.Equal(t, got[0].PartnerID, e.PartnerID, "one tenant per message")
		}
		require.LessOrEqual(t, len(got), 256)
		require.LessOrEqual(t, len(r.Msg.Data), 256<<10, "a run stays within its byte bound")
		require.Equal(t, len(r.Msg.Data), cap(r.Msg.Data), "a body is allocated once, at its size")
		require.Equal(t, got[0].ID.String()+":"+strconv.FormatInt(got[len(got)-1].Position, 10), r.Msg.Header.Get(nats.MsgIdHdr))
		next = r.Last + 1
	}
	require.Equal(t, len(evs), next)
	// p1 1..256, p1 257..300, p2 301..310, p1 311..566, p1 567..602 (two
	// big ones fit), then 603 alone
	require.Len(t, runs, 6)
}

// Consumers still read the one-event envelopes earlier releases
// published, binary and JSON, which a stream may still hold.
func TestEventsOfReadsEarlierEnvelopes(t *testing.T) {
	t.Parallel()
	e := testEvent(7, "p1", "test.note")
	bin, err := e.MarshalBinary()
	require.NoError(t, err)
	got, err := eventstore.EventsOf(nats.Header{bus.HeaderEncoding: []string{bus.EncodingBinary}}, bin)
	require.NoError(t, err)
	require.Equal(t, []events.Event{e}, got)

	old, err := json.Marshal(e)
	require.NoError(t, err)
	got, err = eventstore.EventsOf(nats.Header{}, old)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, e.Hash, events.ComputeHash(&got[0]), "a JSON envelope still verifies")
}

// BenchmarkRuns splits a group commit's worth of events (200 of one
// tenant, payloads of ~400 bytes) into relay messages.
func BenchmarkRuns(b *testing.B) {
	pad := json.RawMessage(`{"pad":"` + strings.Repeat("x", 400) + `"}`)
	evs := make([]events.Event, 200)
	for i := range evs {
		evs[i] = testEvent(int64(i+1), "p1", "test.note")
		evs[i].Payload = pad
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eventstore.Runs(bus.Config{}, evs); err != nil {
			b.Fatal(err)
		}
	}
}
