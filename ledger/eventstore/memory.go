package eventstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sirgiving/ledger/events"
)

// Memory is an in-process event store for unit tests of decisions: it runs
// a Command through the very decide path the PostgreSQL Store uses (the
// same Session, stream states, positions, versions and hash chain) against
// a log held in memory. It has no group commit and no durability; commands
// run one at a time, in call order.
type Memory struct {
	mu    sync.Mutex
	log   []events.Event
	cache map[string]*Stream
	hash  []byte
	now   func() time.Time
}

// NewMemory returns an empty in-memory store whose clock is now (nil:
// time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{cache: map[string]*Stream{}, now: now}
}

// Execute decides cmd against the log and appends what it emitted. A
// refusal appends nothing and is returned unchanged, as Store does.
func (m *Memory) Execute(ctx context.Context, cmd Command) (Result, error) {
	out, err := m.ExecuteAll(ctx, []Command{cmd})
	if err != nil {
		return Result{}, err
	}
	return out[0].Result, out[0].Err
}

// ExecuteAll decides cmds in order, each seeing the ones before it, and
// appends all they emitted together, as Store.ExecuteAll does.
func (m *Memory) ExecuteAll(ctx context.Context, cmds []Command) ([]Outcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	head := int64(len(m.log))
	b := &batchState{cache: m.cache, read: m.read, now: m.now().UTC().Truncate(time.Microsecond), touched: map[string]bool{}}
	evs, out, _, hash, err := decideAll(b, cmds, head, m.hash, func(error) {})
	if err != nil {
		for id := range b.touched {
			delete(m.cache, id) // refolded from the log on the next load
		}
		var ie infraError
		if errors.As(err, &ie) {
			return nil, ie.err
		}
		return nil, err
	}
	m.log = append(m.log, evs...)
	m.hash = hash
	return out, nil
}

func (m *Memory) read(ids []string) ([]events.Event, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var out []events.Event
	for _, e := range m.log {
		if want[e.StreamID] {
			out = append(out, e)
		}
	}
	return out, nil
}

// Events returns a copy of the whole log in position order.
func (m *Memory) Events() []events.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]events.Event(nil), m.log...)
}

// Stream returns the events of one stream in version order.
func (m *Memory) Stream(id string) []events.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs, _ := m.read([]string{id})
	return evs
}
