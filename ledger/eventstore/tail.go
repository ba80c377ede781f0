package eventstore

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/sirgiving/ledger/events"
)

// Tail keeps the events this process committed most recently, exactly as
// they were appended, so the relay in the same process can publish them
// without reading back from PostgreSQL what the committer had in memory
// a moment before (most of the relay's reads under load). It answers only
// with a run that starts right after the position asked for and has no
// gap; anything else (another process's appends, a tail that has moved
// on) is read from the event store as before, so it can make the relay
// cheaper but never make it skip an event.
type Tail struct {
	mu  sync.Mutex
	evs []events.Event // in position order; contiguous runs, with gaps between
	max int
	// pendingFrom is the first position of the batch being appended (0:
	// none); settled closes when its append has committed or failed. The
	// relay's wake-up (NOTIFY) can arrive before the committer records a
	// batch here; a relay that finds its next position pending waits for
	// the outcome instead of reading the batch back from PostgreSQL.
	pendingFrom int64
	settled     chan struct{}
}

// tailSize bounds the events a Tail holds: a few seconds of load.
const tailSize = 8192

// pendingWait bounds how long After waits for a pending append.
const pendingWait = time.Second

// NewTail returns an empty tail holding up to tailSize events.
func NewTail() *Tail { return &Tail{max: tailSize} }

// stage announces that a batch starting at position first is being
// appended.
func (t *Tail) stage(first int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settleLocked()
	t.pendingFrom, t.settled = first, make(chan struct{})
}

// settle ends the pending batch: evs are the events it committed, nil
// when it did not commit.
func (t *Tail) settle(evs []events.Event) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addLocked(evs)
	t.settleLocked()
}

func (t *Tail) settleLocked() {
	if t.settled != nil {
		close(t.settled)
	}
	t.pendingFrom, t.settled = 0, nil
}

// addLocked records events just committed, in position order, after every
// event added before. Eviction drops a quarter of the tail at once, so
// its cost is spread over many batches.
func (t *Tail) addLocked(evs []events.Event) {
	if len(evs) == 0 {
		return
	}
	if n := len(t.evs); n > 0 && t.evs[n-1].Position >= evs[0].Position {
		t.evs = t.evs[:0] // the head went back (a restored database): start over
	}
	if len(evs) >= t.max {
		evs = evs[len(evs)-t.max:]
	}
	if len(t.evs)+len(evs) > t.max {
		drop := max(len(t.evs)+len(evs)-t.max, t.max/4)
		t.evs = append(t.evs[:0], t.evs[min(drop, len(t.evs)):]...)
	}
	t.evs = append(t.evs, evs...)
}

// After returns up to limit events from position after+1 on, with no
// gap, or nil when the tail does not hold after+1. When after+1 is the
// start of a batch being appended, it first waits (up to pendingWait, or
// until ctx ends) for that append to settle.
func (t *Tail) After(ctx context.Context, after int64, limit int) []events.Event {
	if t == nil || limit <= 0 {
		return nil
	}
	t.mu.Lock()
	if t.pendingFrom == after+1 && t.settled != nil && !t.holds(after+1) {
		ch := t.settled
		t.mu.Unlock()
		timer := time.NewTimer(pendingWait)
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		t.mu.Lock()
	}
	defer t.mu.Unlock()
	i := sort.Search(len(t.evs), func(i int) bool { return t.evs[i].Position > after })
	if i == len(t.evs) || t.evs[i].Position != after+1 {
		return nil
	}
	j := i + 1
	for j < len(t.evs) && j-i < limit && t.evs[j].Position == t.evs[j-1].Position+1 {
		j++
	}
	return append([]events.Event(nil), t.evs[i:j]...)
}

func (t *Tail) holds(p int64) bool {
	i := sort.Search(len(t.evs), func(i int) bool { return t.evs[i].Position >= p })
	return i < len(t.evs) && t.evs[i].Position == p
}

// reset forgets every event held. The relay calls it whenever it re-syncs
// (at leadership, after any failure: a database that failed over breaks
// its connection) and the store when it finds the head behind what it
// committed: events this process committed may then be gone from the
// database, and only what the database holds may be published.
func (t *Tail) reset() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.evs = t.evs[:0]
}

// Last is the position of the last event added, 0 if none.
func (t *Tail) Last() int64 {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.evs) == 0 {
		return 0
	}
	return t.evs[len(t.evs)-1].Position
}
