// Package ledger is the write side of the service: the PostgreSQL event
// store with its group committer, the aggregates rebuilt from it, and the
// commands that decide, against current state, which events to append.
// It knows nothing of HTTP; transports map its *Error kinds to their own codes.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sirgiving/ledger/events"
)

// Scope is the tenant an event belongs to. Operator-level facts use an
// empty Environment; system facts an empty PartnerID too.
type Scope struct {
	PartnerID   string
	Environment string
}

// Aggregate is the in-memory state of one stream, rebuilt by applying the
// stream's events in order. Apply must be deterministic and must not do I/O.
type Aggregate interface {
	Apply(e events.Event) error
}

// Stream is a stream's state as a command sees it: Version 0 means the
// stream has no events yet. State is nil for streams whose id prefix has no
// registered aggregate.
type Stream struct {
	ID      string
	Version int64
	State   Aggregate
}

// Command is one decision: Decide reads streams through the Session and
// emits the events to append. Decide runs inside the group committer, one
// command at a time, so it sees every event committed or decided before it
// and no other writer can interleave; it must be quick and do no I/O beyond
// Session.Load. Returning an error discards everything the command emitted.
type Command struct {
	Scope    Scope
	Metadata events.Metadata
	Decide   func(s *Session) error
}

// Result tells a caller what its command appended. Position is the global
// position of its last event, or, when it appended nothing, the head it was
// decided against: a read model at or past Position reflects the command.
type Result struct {
	Events   []events.Event
	Position int64
}

// ExpectAny, passed as expected version to Append, skips the version check.
const ExpectAny int64 = -1

var (
	aggregatesMu sync.RWMutex
	aggregates   = map[string]func() Aggregate{}
)

// RegisterAggregate makes streams whose id starts with prefix load as the
// aggregate built by factory. Domain files call it from init.
func RegisterAggregate(prefix string, factory func() Aggregate) {
	aggregatesMu.Lock()
	defer aggregatesMu.Unlock()
	if _, dup := aggregates[prefix]; dup {
		panic("ledger: duplicate aggregate prefix " + prefix)
	}
	aggregates[prefix] = factory
}

func newAggregate(streamID string) Aggregate {
	aggregatesMu.RLock()
	defer aggregatesMu.RUnlock()
	best := ""
	for p := range aggregates {
		if strings.HasPrefix(streamID, p) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return nil
	}
	return aggregates[best]()
}

// StoreOptions tunes the store. Zero values pick safe defaults.
type StoreOptions struct {
	// MaxBatch caps how many commands share one transaction (default 256).
	MaxBatch int
	// CacheSize caps how many stream states stay in memory (default 100000).
	CacheSize int
	// Registerer receives the store's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock; tests may pin it.
	Now func() time.Time
}

// Store is the PostgreSQL event store. Every write goes through a single
// committer goroutine per process that groups concurrent commands into one
// transaction (one fsync), serialised across processes by the event_head
// row lock. That lock is held from position assignment to COMMIT, so
// positions are gap-free in commit order and readers never see a lower
// position appear after a higher one.
type Store struct {
	pool    *pgxpool.Pool
	opts    StoreOptions
	log     *slog.Logger
	metrics *storeMetrics

	reqs      chan *request
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closed    bool
	closeMu   sync.RWMutex

	// Owned by the committer goroutine.
	cache     map[string]*Stream
	knownHead int64
	headKnown bool
}

type request struct {
	ctx  context.Context
	cmd  Command
	resp chan response
}

type response struct {
	res Result
	err error
}

// OpenStore starts a store on pool. Close it to stop the committer.
func OpenStore(pool *pgxpool.Pool, opts StoreOptions) *Store {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{
		pool:    pool,
		opts:    opts,
		log:     opts.Logger,
		metrics: newStoreMetrics(opts.Registerer),
		reqs:    make(chan *request, opts.MaxBatch*4),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		cache:   map[string]*Stream{},
	}
	go s.run()
	return s
}

// Pool is the connection pool the store writes through.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close stops accepting commands, finishes those already queued, and waits
// for the committer to exit.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.quit)
	})
	<-s.done
}

// Execute runs cmd in the next group commit and returns once its events are
// durable (COMMIT has returned) or it failed. An error from Decide is
// returned unchanged. If ctx ends while waiting, the command may still
// commit; the caller learns ctx.Err().
func (s *Store) Execute(ctx context.Context, cmd Command) (Result, error) {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return Result{}, ErrStoreClosed
	}
	r := &request{ctx: ctx, cmd: cmd, resp: make(chan response, 1)}
	select {
	case s.reqs <- r:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return Result{}, ctx.Err()
	}
	select {
	case out := <-r.resp:
		return out.res, out.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Append appends payloads to one stream if it is at expectedVersion
// (ExpectAny skips the check). A mismatch fails with ErrConcurrency and
// appends nothing; other commands in the same group commit are unaffected.
func (s *Store) Append(ctx context.Context, scope Scope, meta events.Metadata, streamID string, expectedVersion int64, payloads ...events.Payload) (Result, error) {
	return s.Execute(ctx, Command{Scope: scope, Metadata: meta, Decide: func(ss *Session) error {
		st, err := ss.Load(streamID)
		if err != nil {
			return err
		}
		if expectedVersion != ExpectAny && st.Version != expectedVersion {
			return ErrConcurrency
		}
		for _, p := range payloads {
			ss.Emit(streamID, p)
		}
		return nil
	}})
}

func (s *Store) run() {
	defer close(s.done)
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-s.quit:
			// Drain what was queued before Close so no accepted caller hangs.
			for {
				select {
				case r := <-s.reqs:
					s.commit([]*request{r})
				default:
					return
				}
			}
		}
		batch := []*request{first}
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// Session is a command's view of the store inside one group commit.
type Session struct {
	b      *batchState
	scope  Scope
	drafts []draft
	loaded map[string]*Stream
}

type draft struct {
	streamID string
	scope    Scope
	payload  events.Payload
}

// Scope is the tenant of the command being decided.
func (s *Session) Scope() Scope { return s.scope }

// Now is the time the batch is recorded at.
func (s *Session) Now() time.Time { return s.b.now }

// Load returns streamID's state as of every event committed or decided
// before this command. It does not include this command's own emits.
func (s *Session) Load(streamID string) (*Stream, error) {
	if st, ok := s.loaded[streamID]; ok {
		return st, nil
	}
	st, err := s.b.load(streamID)
	if err != nil {
		return nil, err
	}
	s.loaded[streamID] = st
	return st, nil
}

// Emit records an event for streamID in the command's scope. Nothing is
// visible to Load until the command's Decide returns nil.
func (s *Session) Emit(streamID string, p events.Payload) {
	s.drafts = append(s.drafts, draft{streamID: streamID, scope: s.scope, payload: p})
}

// EmitScoped is Emit with an explicit tenant, for operator commands that
// act on a partner's streams.
func (s *Session) EmitScoped(streamID string, scope Scope, p events.Payload) {
	s.drafts = append(s.drafts, draft{streamID: streamID, scope: scope, payload: p})
}

type batchState struct {
	s       *Store
	ctx     context.Context
	tx      pgx.Tx
	now     time.Time
	touched map[string]bool
}

func (b *batchState) load(streamID string) (*Stream, error) {
	if st, ok := b.s.cache[streamID]; ok {
		return st, nil
	}
	st := &Stream{ID: streamID, State: newAggregate(streamID)}
	rows, err := b.tx.Query(b.ctx, selectEvents+` WHERE stream_id = $1 ORDER BY stream_version`, streamID)
	if err != nil {
		return nil, fmt.Errorf("ledger: load %s: %w", streamID, err)
	}
	evs, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("ledger: load %s: %w", streamID, err)
	}
	for _, e := range evs {
		if st.State != nil {
			if err := st.State.Apply(e); err != nil {
				return nil, fmt.Errorf("ledger: apply %s v%d: %w", streamID, e.StreamVersion, err)
			}
		}
		st.Version = e.StreamVersion
	}
	b.s.cache[streamID] = st
	return st, nil
}

// commit decides and appends one batch in one transaction.
func (s *Store) commit(batch []*request) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.resp <- response{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}

	results := make([]response, len(live))
	touched := map[string]bool{}
	fail := func(err error) {
		for k := range touched {
			delete(s.cache, k)
		}
		s.headKnown = false
		s.metrics.errors.Inc()
		for _, r := range live {
			r.resp <- response{err: fmt.Errorf("ledger: append failed: %w", err)}
		}
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		fail(err)
		return
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit

	var head int64
	var headHash []byte
	if err := tx.QueryRow(ctx, `SELECT position, hash FROM event_head FOR UPDATE`).Scan(&head, &headHash); err != nil {
		fail(err)
		return
	}
	if err := s.syncCache(ctx, tx, head); err != nil {
		fail(err)
		return
	}

	b := &batchState{s: s, ctx: ctx, tx: tx, now: s.opts.Now().UTC().Truncate(time.Microsecond), touched: touched}
	var rows [][]any
	pos, prev := head, headHash
	for i, r := range live {
		evs, err := s.decide(b, r.cmd, &pos, &prev)
		if err != nil {
			if isInfra(err) {
				fail(err)
				return
			}
			results[i] = response{err: err, res: Result{Position: head}}
			continue
		}
		for _, e := range evs {
			rows = append(rows, []any{
				e.Position, e.StreamID, e.StreamVersion, pgtype.UUID{Bytes: e.ID, Valid: true}, e.Type, int32(e.SchemaVersion),
				e.PartnerID, e.Environment, string(e.Payload), string(e.Metadata), e.RecordedAt, e.PrevHash, e.Hash,
			})
		}
		p := pos
		if len(evs) > 0 {
			p = evs[len(evs)-1].Position
		}
		results[i] = response{res: Result{Events: evs, Position: p}}
	}

	if len(rows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromRows(rows)); err != nil {
			fail(err)
			return
		}
		batchSQL := &pgx.Batch{}
		batchSQL.Queue(`UPDATE event_head SET position = $1, hash = $2`, pos, prev)
		batchSQL.Queue(`SELECT pg_notify('ledger_events', $1)`, fmt.Sprint(pos))
		if err := tx.SendBatch(ctx, batchSQL).Close(); err != nil {
			fail(err)
			return
		}
	}
	if err := tx.Commit(ctx); err != nil {
		fail(err)
		return
	}
	s.knownHead, s.headKnown = pos, true
	if len(s.cache) > s.opts.CacheSize {
		s.cache = map[string]*Stream{}
	}
	s.metrics.observe(len(live), len(rows), time.Since(start))
	for i, r := range live {
		r.resp <- results[i]
	}
}

// syncCache drops cached streams that another process appended to since
// this process last committed, so decisions never use stale state.
func (s *Store) syncCache(ctx context.Context, tx pgx.Tx, head int64) error {
	if s.headKnown && head == s.knownHead {
		return nil
	}
	if !s.headKnown || head-s.knownHead > 10000 || len(s.cache) == 0 {
		s.cache = map[string]*Stream{}
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT stream_id FROM events WHERE position > $1 AND position <= $2`, s.knownHead, head)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range ids {
		delete(s.cache, id)
	}
	return nil
}

type infraError struct{ err error }

func (e infraError) Error() string { return e.err.Error() }
func (e infraError) Unwrap() error { return e.err }

func isInfra(err error) bool {
	var ie infraError
	return errors.As(err, &ie)
}

// decide runs one command and, if it succeeds, assigns positions, versions
// and hashes to its events and applies them to the cached stream states.
func (s *Store) decide(b *batchState, cmd Command, pos *int64, prev *[]byte) (evs []events.Event, err error) {
	sess := &Session{b: b, scope: cmd.Scope, loaded: map[string]*Stream{}}
	defer func() {
		if p := recover(); p != nil {
			err = infraError{fmt.Errorf("ledger: command panicked: %v", p)}
		}
	}()
	if err := cmd.Decide(sess); err != nil {
		var le *Error
		if errors.As(err, &le) || errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, infraError{err}
	}
	if len(sess.drafts) == 0 {
		return nil, nil
	}
	meta, err := jsonMarshal(cmd.Metadata)
	if err != nil {
		return nil, err
	}
	versions := map[string]int64{}
	for _, d := range sess.drafts {
		if _, ok := versions[d.streamID]; ok {
			continue
		}
		st, err := sess.Load(d.streamID)
		if err != nil {
			return nil, infraError{err}
		}
		versions[d.streamID] = st.Version
	}
	evs = make([]events.Event, 0, len(sess.drafts))
	for _, d := range sess.drafts {
		typ, ver, body, err := events.Encode(d.payload)
		if err != nil {
			return nil, infraError{err}
		}
		versions[d.streamID]++
		*pos++
		e := events.Event{
			Position: *pos, StreamID: d.streamID, StreamVersion: versions[d.streamID],
			ID: uuid.New(), Type: typ, SchemaVersion: ver,
			PartnerID: d.scope.PartnerID, Environment: d.scope.Environment,
			Payload: body, Metadata: meta, RecordedAt: b.now, PrevHash: *prev,
		}
		e.Hash = events.ComputeHash(&e)
		*prev = e.Hash
		evs = append(evs, e)
	}
	// Apply after the whole command decided, so a failed Decide never leaves
	// half its events in the cached state.
	for _, e := range evs {
		st := sess.loaded[e.StreamID]
		b.touched[e.StreamID] = true
		if st.State != nil {
			if err := st.State.Apply(e); err != nil {
				return nil, infraError{fmt.Errorf("ledger: apply %s to %s: %w", e.Type, e.StreamID, err)}
			}
		}
		st.Version = e.StreamVersion
	}
	return evs, nil
}

var eventColumns = []string{"position", "stream_id", "stream_version", "event_id", "event_type", "schema_version",
	"partner_id", "environment", "payload", "metadata", "recorded_at", "prev_hash", "hash"}

const selectEvents = `SELECT position, stream_id, stream_version, event_id, event_type, schema_version,
	partner_id, environment, payload::text, metadata::text, recorded_at, prev_hash, hash FROM events`

func scanEvent(row pgx.CollectableRow) (events.Event, error) {
	var e events.Event
	var id pgtype.UUID
	var payload, meta string
	var schema int32
	err := row.Scan(&e.Position, &e.StreamID, &e.StreamVersion, &id, &e.Type, &schema,
		&e.PartnerID, &e.Environment, &payload, &meta, &e.RecordedAt, &e.PrevHash, &e.Hash)
	e.ID = id.Bytes
	e.SchemaVersion = int(schema)
	e.Payload = []byte(payload)
	e.Metadata = []byte(meta)
	e.RecordedAt = e.RecordedAt.UTC()
	return e, err
}
