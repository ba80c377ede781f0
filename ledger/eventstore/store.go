// Package eventstore is the engine under the reward domain: the PostgreSQL
// event store with its group committer and optimistic concurrency, reads,
// the hash chain's verification, the relay to JetStream, and their
// metrics. It also holds the vocabulary every layer shares: the Tenant,
// the error kinds (*Error), and the Querier. It imports events and the
// broker configuration, nothing of the domain: aggregates register
// themselves by stream prefix, and commands arrive as Decide functions.
package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sirgiving/ledger/events"
)

// Tenant is the partner and environment an event, a command or a query
// belongs to: the one tenant type of every layer. Operator-level facts use
// an empty Environment; system facts an empty PartnerID too.
type Tenant struct {
	PartnerID   string
	Environment string
}

// Aggregate is the in-memory state of one stream, rebuilt by applying the
// stream's events in order. Apply must be deterministic and must not do I/O.
type Aggregate interface {
	Apply(e events.Event) error
}

// PayloadApplier is an Aggregate that can also fold an event from the
// payload value its command emitted. The store uses it for the events it
// has just encoded itself, so a hot stream's state is not rebuilt by
// decoding the JSON it encoded a moment before (a tenth of the committer's
// CPU); ApplyPayload(e, p) must leave the state exactly as Apply(e) would,
// and Apply stays the path for everything read from the store.
type PayloadApplier interface {
	Aggregate
	ApplyPayload(e events.Event, p events.Payload) error
}

// Coalescer is a payload that may absorb the next event of its own stream
// when one group commit decides both, so the batch appends one event
// where it would have appended two. The committer asks only when both were
// emitted with Session.EmitCoalescing and nothing else was emitted to the
// stream between them (the later one's slot is the stream's last in the
// batch), and the merged event takes the later
// one's place in the log: a reader never sees its effect before the
// events decided ahead of it. Coalesce must return a payload whose fold,
// for every reader (aggregates, read models, audits), equals folding the
// receiver and then next, of the same event type; ok false keeps them
// apart. The merge is encoded once, when the batch is sealed, so a merge
// that cannot be encoded fails the whole batch: Coalesce must only build
// values its parts' type always encodes. The committer calls Coalesce on
// a value at most once (a merged or refused receiver is never the
// stream's last slot again), so a merge may reuse what an earlier merge
// built for it, but must leave both parts reading as they did.
type Coalescer interface {
	Coalesce(next events.Payload) (merged events.Payload, ok bool)
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
// Decide may run more than once for one command (when another process
// appended first, the batch is re-decided on fresh state), so results it
// passes out through captured variables must be assigned, not accumulated.
type Command struct {
	Tenant   Tenant
	Metadata events.Metadata
	Decide   func(s *Session) error
	// Prefetch names streams Decide will load. The committer loads every
	// uncached one of a whole group in one query before deciding, instead
	// of one round trip per stream inside the serial decide loop. Streams
	// Decide loads without naming them here still work.
	Prefetch []string
	// Fresh names streams Decide will load that are new but for a rare
	// case, such as the stream of an action named by a partner's
	// idempotency key, which exists only when the key is reused. An
	// uncached one is decided as empty without a read, which takes one
	// index probe per stream off the committer's serial path. A wrong guess
	// is never kept: the append's (stream_id, stream_version) key refuses a
	// batch that writes a stream that was not new, a fresh stream the batch
	// leaves unwritten is read before any answer goes out, and in both
	// cases the batch is decided again from what the store holds.
	Fresh []string
}

// Result tells a caller what its command appended. Position is the global
// position of its last event (a coalesced event counts for every command
// in it), or, when it appended nothing, the head its group commit left (at
// or after the head it was decided against): a read model at or past
// Position reflects the command.
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
	// Tail, if set, receives every batch this store commits, for a relay
	// in the same process (RelayOptions.Tail).
	Tail *Tail
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

	reqs      chan []*request // bundles: each is decided whole, in order, in one batch
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closed    bool
	closeMu   sync.RWMutex

	// Owned by the committer goroutine.
	cache     map[string]*Stream
	knownHead int64
	knownHash []byte
	headKnown bool
	// guessesOffFor is how many more batches read their Fresh streams
	// rather than guess them new, after a wrong guess.
	guessesOffFor int
	// appendBuf holds the encoded arguments of the append being sent.
	appendBuf []byte
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
		reqs:    make(chan []*request, opts.MaxBatch*4),
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
	out, err := s.ExecuteAll(ctx, []Command{cmd})
	if err != nil {
		return Result{}, err
	}
	return out[0].Result, out[0].Err
}

// Outcome is one command's share of ExecuteAll: what it appended, or the
// error that refused it alone.
type Outcome struct {
	Result Result
	Err    error
}

// ExecuteAll runs cmds as one bundle: they are decided one after another,
// in the order given, with nothing between them — each sees every event the
// ones before it emitted — and they commit in the same transaction. Each
// command still succeeds or fails on its own: a refusal fails that command
// only. The error is for the bundle as a whole (the store is closed, ctx
// ended before it was queued, or the transaction failed, in which case
// every Outcome carries it too).
func (s *Store) ExecuteAll(ctx context.Context, cmds []Command) ([]Outcome, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return nil, ErrStoreClosed
	}
	bundle := make([]*request, len(cmds))
	for i, cmd := range cmds {
		bundle[i] = &request{ctx: ctx, cmd: cmd, resp: make(chan response, 1)}
	}
	select {
	case s.reqs <- bundle:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return nil, ctx.Err()
	}
	out := make([]Outcome, len(bundle))
	for i, r := range bundle {
		select {
		case o := <-r.resp:
			out[i] = Outcome{Result: o.res, Err: o.err}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := out[0].Err; err != nil && !isRefusal(err) {
		return out, err
	}
	return out, nil
}

// isRefusal tells a command's own refusal (a domain *Error) from a failure
// of the whole group commit.
func isRefusal(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Append appends payloads to one stream if it is at expectedVersion
// (ExpectAny skips the check). A mismatch fails with ErrConcurrency and
// appends nothing; other commands in the same group commit are unaffected.
func (s *Store) Append(ctx context.Context, scope Tenant, meta events.Metadata, streamID string, expectedVersion int64, payloads ...events.Payload) (Result, error) {
	return s.Execute(ctx, Command{Tenant: scope, Metadata: meta, Decide: func(ss *Session) error {
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
	var held []*request // a bundle that did not fit the last batch
	for {
		var batch []*request
		if held != nil {
			batch, held = held, nil
		} else {
			select {
			case b := <-s.reqs:
				batch = append([]*request(nil), b...)
			case <-s.quit:
				// Drain what was queued before Close so no accepted caller hangs.
				for {
					select {
					case b := <-s.reqs:
						s.commit(append([]*request(nil), b...))
					default:
						return
					}
				}
			}
		}
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case b := <-s.reqs:
				if len(batch)+len(b) > s.opts.MaxBatch {
					// A bundle is never split across transactions.
					held = append([]*request(nil), b...)
					break fill
				}
				batch = append(batch, b...)
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
	scope  Tenant
	drafts []draft
	loaded map[string]*Stream
}

type draft struct {
	streamID string
	scope    Tenant
	payload  events.Payload
	// coalesce: emitted with EmitCoalescing, so it may merge (Coalescer).
	coalesce bool
}

// Tenant is the tenant of the command being decided.
func (s *Session) Tenant() Tenant { return s.scope }

// Now is the time the batch is recorded at.
func (s *Session) Now() time.Time { return s.b.now }

// Load returns streamID's state as of every event committed or decided
// before this command. It does not include this command's own emits.
func (s *Session) Load(streamID string) (*Stream, error) {
	if st, ok := s.loaded[streamID]; ok {
		return st, nil
	}
	if err := CheckStreamID(streamID); err != nil {
		return nil, err
	}
	st, err := s.b.load(streamID)
	if err != nil {
		return nil, infraError{err}
	}
	s.loaded[streamID] = st
	return st, nil
}

// maxStreamID bounds a stream id; ids are derived by the domain and never
// come near it.
const maxStreamID = 512

// CheckStreamID refuses a stream id PostgreSQL could not store or compare:
// invalid UTF-8, a NUL, or an absurd length. A command that names one fails
// alone with INVALID_ID before any query, so its bytes can never fail the
// group commit it shares with other callers.
func CheckStreamID(id string) error {
	if id == "" || len(id) > maxStreamID || !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
		return &Error{Kind: KindInvalid, Code: "INVALID_ID", Message: "the id is not a valid identifier"}
	}
	return nil
}

// Emit records an event for streamID in the command's scope. Nothing is
// visible to Load until the command's Decide returns nil.
func (s *Session) Emit(streamID string, p events.Payload) {
	s.drafts = append(s.drafts, draft{streamID: streamID, scope: s.scope, payload: p})
}

// EmitCoalescing is Emit for a payload that may merge with the stream's
// previous event of the same group commit when that one was emitted this
// way too (see Coalescer). Only a command that does not care at which
// version its event lands may use it: Append's expected version, for one,
// would not hold for an event merged into another's.
func (s *Session) EmitCoalescing(streamID string, p events.Payload) {
	s.drafts = append(s.drafts, draft{streamID: streamID, scope: s.scope, payload: p, coalesce: true})
}

// EmitFor is Emit with an explicit tenant, for operator commands that
// act on a partner's streams.
func (s *Session) EmitFor(streamID string, scope Tenant, p events.Payload) {
	s.drafts = append(s.drafts, draft{streamID: streamID, scope: scope, payload: p})
}

// batchState is what deciding one group sees: the cached stream states,
// how to read streams that are not cached, and the batch's clock.
type batchState struct {
	cache map[string]*Stream
	// read returns the events of the given streams, in stream order.
	read    func(ids []string) ([]events.Event, error)
	now     time.Time
	touched map[string]bool
	// assumed are the Fresh streams cached as empty without a read; they
	// are also in touched, so a failed batch forgets them.
	assumed []string
}

func (b *batchState) load(streamID string) (*Stream, error) {
	if st, ok := b.cache[streamID]; ok {
		return st, nil
	}
	if err := b.loadStreams([]string{streamID}); err != nil {
		return nil, err
	}
	return b.cache[streamID], nil
}

// loadStreams reads the given streams in one query, folds each into its
// aggregate and caches it (a stream with no events caches as version 0).
func (b *batchState) loadStreams(ids []string) error {
	evs, err := b.read(ids)
	if err != nil {
		return fmt.Errorf("ledger: load %v: %w", ids, err)
	}
	states := make(map[string]*Stream, len(ids))
	for _, id := range ids {
		states[id] = &Stream{ID: id, State: newAggregate(id)}
	}
	for _, e := range evs {
		st := states[e.StreamID]
		if st.State != nil {
			if err := st.State.Apply(e); err != nil {
				return fmt.Errorf("ledger: apply %s v%d: %w", e.StreamID, e.StreamVersion, err)
			}
		}
		st.Version = e.StreamVersion
	}
	for id, st := range states {
		b.cache[id] = st
	}
	return nil
}

// prefetch loads, in one query, every stream the batch's commands named in
// Prefetch or Fresh that is not cached yet; with assume, the Fresh ones
// are cached as empty instead of read (see Command.Fresh).
func (b *batchState) prefetch(live []*request, assume bool) error {
	var ids []string
	seen := map[string]bool{}
	for _, r := range live {
		for _, id := range r.cmd.Fresh {
			if _, ok := b.cache[id]; ok || seen[id] || CheckStreamID(id) != nil {
				continue
			}
			seen[id] = true
			if !assume {
				ids = append(ids, id)
				continue
			}
			b.cache[id] = &Stream{ID: id, State: newAggregate(id)}
			b.touched[id] = true
			b.assumed = append(b.assumed, id)
		}
		for _, id := range r.cmd.Prefetch {
			if _, ok := b.cache[id]; ok || seen[id] {
				continue
			}
			if CheckStreamID(id) != nil {
				continue // its command fails alone when it loads it
			}
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return b.loadStreams(ids)
}

// checkAssumed reads the streams the batch assumed new and left unwritten
// (a command that refused, or replayed another stream, without writing
// its fresh one), and reports errGuessedWrong if any is not empty: the
// answers decided on it could be wrong. Those it wrote need no read: the
// append refuses them if they were not new.
func (b *batchState) checkAssumed() error {
	var unwritten []string
	for _, id := range b.assumed {
		if b.cache[id].Version == 0 {
			unwritten = append(unwritten, id)
		}
	}
	if len(unwritten) == 0 {
		return nil
	}
	evs, err := b.read(unwritten)
	if err != nil {
		return infraError{fmt.Errorf("ledger: load %v: %w", unwritten, err)}
	}
	if len(evs) > 0 {
		return errGuessedWrong
	}
	return nil
}

// decided is the outcome of deciding one batch against the cache.
type decided struct {
	results []response
	evs     []events.Event
	events  int
	last    int64
	hash    []byte
	touched map[string]bool
	guessed bool // some Fresh stream was decided as empty without a read
}

// decideBatch runs every command of the batch, in order, against the
// cached state as of knownHead. Loads of cold streams go through q.
func (s *Store) decideBatch(ctx context.Context, q Querier, live []*request, assume bool) (*decided, error) {
	d := &decided{touched: map[string]bool{}}
	b := &batchState{cache: s.cache, now: s.opts.Now().UTC().Truncate(time.Microsecond), touched: d.touched,
		read: func(ids []string) ([]events.Event, error) { return readStreams(ctx, q, ids) }}
	if err := b.prefetch(live, assume); err != nil {
		return d, err
	}
	d.guessed = len(b.assumed) > 0
	cmds := make([]Command, len(live))
	for i, r := range live {
		cmds[i] = r.cmd
	}
	evs, outs, last, hash, err := decideAll(b, cmds, s.knownHead, s.knownHash, func(err error) {
		s.log.Error("a command failed on its own; its group commit goes on", "err", err)
	})
	if err != nil {
		return d, err
	}
	if err := b.checkAssumed(); err != nil {
		return d, err
	}
	d.last, d.hash, d.events, d.evs = last, hash, len(evs), evs
	d.results = make([]response, len(outs))
	for i, o := range outs {
		d.results[i] = response{res: o.Result, err: o.Err}
	}
	return d, nil
}

// decideAll decides cmds in order against b, each seeing the ones before
// it, and seals what they emitted into events continuing the chain after
// head and hash. A command that fails alone gets its error in its Outcome
// (internal ones are also passed to logInternal); only a failed read of
// the store (infraError) fails them all. It returns the events, in log
// order, each command's outcome, and the new head and hash.
func decideAll(b *batchState, cmds []Command, head int64, hash []byte, logInternal func(error)) ([]events.Event, []Outcome, int64, []byte, error) {
	// Most commands emit an event of their own and a coalesced debit (a
	// merge appends a slot): room for two each spares the regrowth copies
	// of a slice of ~350-byte slots.
	sl := slots{s: make([]slot, 0, 2*len(cmds)), last: make(map[string]int, len(cmds))}
	outs := make([]Outcome, len(cmds))
	refs := make([][]int, len(cmds))
	for i, cmd := range cmds {
		ref, err := decide(b, cmd, &sl)
		if err != nil {
			if isInfra(err) {
				return nil, nil, head, hash, err
			}
			if e := (*Error)(nil); errors.As(err, &e) && e.Kind == KindInternal {
				logInternal(err)
			}
			outs[i] = Outcome{Result: Result{Position: head}, Err: err}
			continue
		}
		refs[i] = ref
	}
	last := head
	sealed, err := sl.seal(b.now, &last, &hash)
	if err != nil {
		return nil, nil, head, hash, infraError{err}
	}
	evs := make([]events.Event, 0, len(sealed))
	for _, e := range sealed {
		if e.Position != 0 {
			evs = append(evs, e)
		}
	}
	for i, ref := range refs {
		if outs[i].Err != nil {
			continue
		}
		// A command that appended nothing was decided against the batch's
		// head; one whose event was merged into a later one is done once
		// that event is.
		res := Result{Position: last}
		if len(ref) > 0 {
			res.Events = sl.eventsOf(ref, sealed)
			res.Position = res.Events[len(res.Events)-1].Position
		}
		outs[i].Result = res
	}
	return evs, outs, last, hash, nil
}

// commit decides and appends one batch. The fast path decides against the
// cache and appends in one statement that checks the head did not move;
// if another process appended meanwhile, the cache is brought up to date
// and the batch re-decided. After two misses it takes the head lock first,
// which guarantees progress under any contention.
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
	var d *decided
	var err error
	committed := false
	defer func() {
		if committed {
			s.opts.Tail.settle(d.evs)
		} else {
			s.opts.Tail.settle(nil)
		}
	}()
	assume := s.guessesOffFor == 0
	if !assume {
		s.guessesOffFor--
	}
	for attempt := 0; ; attempt++ {
		if attempt < 2 {
			d, err = s.commitOptimistic(ctx, live, assume)
		} else {
			d, err = s.commitLocked(ctx, live)
		}
		if d != nil && err != nil {
			// Whatever the batch applied to cached state never committed.
			for k := range d.touched {
				delete(s.cache, k)
			}
		}
		if errors.Is(err, errGuessedWrong) {
			// Decide again with every stream read. Guessing stays off for
			// a while, so a caller reusing old keys on purpose costs the
			// others at most one extra round per guessesOffAfterMiss
			// batches.
			assume, s.guessesOffFor = false, guessesOffAfterMiss
			s.metrics.wrongGuesses.Inc()
			continue
		}
		if err == nil || !errors.Is(err, errHeadMoved) {
			break
		}
		// Another process appended: perhaps to a stream guessed new, as
		// when two processes take the same new idempotency key. Read them.
		assume = false
		s.metrics.retries.Inc()
	}
	if err != nil {
		s.headKnown = false
		s.metrics.errors.Inc()
		for _, r := range live {
			r.resp <- response{err: fmt.Errorf("ledger: append failed: %w", err)}
		}
		return
	}
	if d.events > 0 {
		s.knownHead, s.knownHash = d.last, d.hash
		committed = true
	}
	if len(s.cache) > s.opts.CacheSize {
		s.cache = map[string]*Stream{}
	}
	s.metrics.observe(len(live), d.events, time.Since(start))
	for i, r := range live {
		r.resp <- d.results[i]
	}
}

var errHeadMoved = errors.New("ledger: event head moved")

// errGuessedWrong: a stream a batch decided as new (Command.Fresh) was not.
var errGuessedWrong = errors.New("ledger: a stream guessed new was not")

// guessesOffAfterMiss is how many batches after a wrong guess read every
// Fresh stream instead of guessing.
const guessesOffAfterMiss = 64

// streamVersionKey is the events table's unique (stream_id,
// stream_version) constraint: the one a wrong guess runs into.
const streamVersionKey = "events_stream_id_stream_version_key"

// guessedWrong reports whether err is the append refusing a batch that
// wrote a stream it guessed new.
func guessedWrong(d *decided, err error) bool {
	var pgErr *pgconn.PgError
	return d.guessed && errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == streamVersionKey
}

func (s *Store) commitOptimistic(ctx context.Context, live []*request, assume bool) (*decided, error) {
	if !s.headKnown {
		if err := s.refreshHead(ctx, s.pool); err != nil {
			return nil, err
		}
	}
	d, err := s.decideBatch(ctx, s.pool, live, assume)
	if err != nil {
		return d, err
	}
	if d.events == 0 {
		// Nothing to append, but the refusals and replays were decided on
		// cached state: confirm no other process appended since, or a
		// refusal could be stale (a campaign created through a replica
		// reported missing here).
		var head int64
		if err := s.pool.QueryRow(ctx, `SELECT position FROM event_head`).Scan(&head); err != nil {
			return d, err
		}
		if head != s.knownHead {
			if err := s.refreshHead(ctx, s.pool); err != nil {
				return d, err
			}
			return d, errHeadMoved
		}
		return d, nil
	}
	s.opts.Tail.stage(s.knownHead + 1)
	if err := s.execAppend(ctx, nil, d.evs); err != nil {
		if guessedWrong(d, err) {
			return d, errGuessedWrong
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "40001" {
			if rerr := s.refreshHead(ctx, s.pool); rerr != nil {
				return d, rerr
			}
			return d, errHeadMoved
		}
		return d, err
	}
	return d, nil
}

func (s *Store) commitLocked(ctx context.Context, live []*request) (*decided, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, `SELECT 1 FROM event_head FOR UPDATE`); err != nil {
		return nil, err
	}
	if err := s.refreshHead(ctx, tx); err != nil {
		return nil, err
	}
	d, err := s.decideBatch(ctx, tx, live, false)
	if err != nil {
		return d, err
	}
	if d.events > 0 {
		s.opts.Tail.stage(s.knownHead + 1)
		if err := s.execAppend(ctx, tx.Conn(), d.evs); err != nil {
			return d, err
		}
	}
	return d, tx.Commit(ctx)
}

// refreshHead reads the head and drops cached streams that another
// process appended to since this process last knew the head, so decisions
// never use stale state.
func (s *Store) refreshHead(ctx context.Context, q Querier) error {
	var head int64
	var hash []byte
	if err := q.QueryRow(ctx, `SELECT position, hash FROM event_head`).Scan(&head, &hash); err != nil {
		return err
	}
	if s.headKnown && head < s.knownHead {
		s.opts.Tail.reset() // what this process committed may be gone (a failover)
	}
	switch {
	case !s.headKnown || head < s.knownHead || head-s.knownHead > 10000:
		s.cache = map[string]*Stream{}
	case head > s.knownHead && len(s.cache) > 0:
		rows, err := q.Query(ctx, `SELECT DISTINCT stream_id FROM events WHERE position > $1 AND position <= $2`, s.knownHead, head)
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
	}
	s.knownHead, s.knownHash, s.headKnown = head, hash, true
	return nil
}

type infraError struct{ err error }

func (e infraError) Error() string { return e.err.Error() }
func (e infraError) Unwrap() error { return e.err }

func isInfra(err error) bool {
	var ie infraError
	return errors.As(err, &ie)
}

// decide runs one command and, if it succeeds, puts its events into the
// batch's slots (merging where a payload coalesces) and applies them to
// the cached stream states. It returns the command's slots.
func decide(b *batchState, cmd Command, sl *slots) ([]int, error) {
	sess := &Session{b: b, scope: cmd.Tenant, loaded: map[string]*Stream{}}
	if err := runDecide(cmd, sess); err != nil {
		return nil, err
	}
	if len(sess.drafts) == 0 {
		return nil, nil
	}
	enc, meta, err := encodeDrafts(sess, cmd)
	if err != nil {
		return nil, err
	}
	// Apply after the whole command encoded, so a failed command never
	// leaves half its events in the cached state.
	ref := make([]int, 0, len(enc))
	for i, e := range enc {
		dr := sess.drafts[i]
		st := sess.loaded[dr.streamID]
		e.StreamVersion = st.Version + 1
		j, merged := sl.add(dr, e, meta)
		if !merged {
			st.Version = e.StreamVersion
		}
		e.StreamVersion = sl.s[j].version
		ref = append(ref, j)
		b.touched[dr.streamID] = true
		if st.State != nil {
			var err error
			if pa, ok := st.State.(PayloadApplier); ok {
				err = pa.ApplyPayload(e, dr.payload)
			} else {
				err = st.State.Apply(e)
			}
			if err != nil {
				return nil, infraError{fmt.Errorf("ledger: apply %s to %s: %w", e.Type, e.StreamID, err)}
			}
		}
	}
	return ref, nil
}

// runDecide runs cmd's Decide and sorts what went wrong: a refusal or a
// failure of the command's own (a panic, an unexpected error) fails that
// command alone; only a failed read of the store (infraError) fails the
// group.
func runDecide(cmd Command, sess *Session) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &Error{Kind: KindInternal, Code: "INTERNAL", Message: "internal error", Err: fmt.Errorf("command panicked: %v", p)}
		}
	}()
	err = cmd.Decide(sess)
	switch {
	case err == nil, isInfra(err), isRefusal(err), errors.Is(err, context.Canceled):
		return err
	default:
		return &Error{Kind: KindInternal, Code: "INTERNAL", Message: "internal error", Err: err}
	}
}

// encodeDrafts encodes a decided command's emits and its metadata. It
// touches no shared state, so a payload that cannot be encoded, or an
// emit to a stream id that cannot be stored, fails the command alone. The
// events it returns have no place in the log yet: slots.seal gives them
// one.
func encodeDrafts(sess *Session, cmd Command) ([]events.Event, []byte, error) {
	fail := func(err error) error {
		return &Error{Kind: KindInternal, Code: "INTERNAL", Message: "internal error", Err: err}
	}
	meta, err := jsonMarshal(cmd.Metadata)
	if err != nil {
		return nil, nil, fail(fmt.Errorf("encode metadata: %w", err))
	}
	evs := make([]events.Event, 0, len(sess.drafts))
	for _, d := range sess.drafts {
		if _, err := sess.Load(d.streamID); err != nil {
			return nil, nil, err
		}
		typ, ver, body, err := events.Encode(d.payload)
		if err != nil {
			return nil, nil, fail(err)
		}
		evs = append(evs, events.Event{StreamID: d.streamID, Type: typ, SchemaVersion: ver,
			PartnerID: d.scope.PartnerID, Environment: d.scope.Environment,
			Payload: body, Metadata: meta, RecordedAt: sess.b.now})
	}
	return evs, meta, nil
}

// slots are the events of one group commit in the order they will take in
// the log, before they have positions.
type slots struct {
	s []slot
	// last is each stream's latest slot: only it may absorb a later emit.
	last map[string]int
}

type slot struct {
	draft   draft
	event   events.Event // without position, id or hashes until sealed
	version int64
	// movedTo is where a slot merged into a later one went (once final
	// has walked it, the slot it ended up in); 0 while live (a slot never
	// moves to index 0).
	movedTo int
	// merged: the payload is a merge, encoded when the batch is sealed.
	merged bool
}

// add puts e, the encoded form of dr, into the batch, merged into the
// stream's latest slot when both payloads agree (Coalescer). A merge
// moves the combined event to the end, the place of its later part. It
// reports the slot and whether e was merged (the stream gained no
// version).
func (sl *slots) add(dr draft, e events.Event, meta []byte) (int, bool) {
	if sl.last == nil {
		sl.last = map[string]int{}
	}
	if j, ok := sl.last[dr.streamID]; ok {
		prev := &sl.s[j]
		if c, ok := prev.draft.payload.(Coalescer); ok && prev.draft.coalesce && dr.coalesce && prev.draft.scope == dr.scope {
			if merged, ok := c.Coalesce(dr.payload); ok && merged.EventType() == e.Type {
				// Encoded once, when the batch is sealed: encoding at each
				// merge re-encoded a growing list (quadratic in the
				// actions a hot pool's debit pays for).
				me := e
				me.Payload, me.Metadata = nil, meta
				version := prev.version
				prev.movedTo = len(sl.s)
				sl.s = append(sl.s, slot{draft: draft{streamID: dr.streamID, scope: dr.scope, payload: merged, coalesce: true}, event: me, version: version, merged: true})
				sl.last[dr.streamID] = len(sl.s) - 1
				return len(sl.s) - 1, true
			}
		}
	}
	sl.s = append(sl.s, slot{draft: dr, event: e, version: e.StreamVersion})
	sl.last[dr.streamID] = len(sl.s) - 1
	return len(sl.s) - 1, false
}

// seal gives every live slot its place in the chain after position pos and
// hash prev, and moves both to the last event. The result is indexed like
// the slots; a merged-away slot's entry has position 0.
func (sl *slots) seal(now time.Time, pos *int64, prev *[]byte) ([]events.Event, error) {
	out := make([]events.Event, len(sl.s))
	for j := range sl.s {
		x := &sl.s[j]
		if x.movedTo != 0 {
			continue
		}
		if x.merged {
			// Coalescer promises a payload of its parts' type; failing to
			// encode one is a bug in it, and fails the batch.
			_, ver, body, err := events.Encode(x.draft.payload)
			if err != nil {
				return nil, fmt.Errorf("ledger: encode a coalesced %s: %w", x.event.Type, err)
			}
			x.event.SchemaVersion, x.event.Payload, x.merged = ver, body, false
		}
		*pos++
		e := x.event
		e.Position, e.StreamVersion, e.ID, e.RecordedAt, e.PrevHash = *pos, x.version, newEventID(), now, *prev
		e.Hash = events.ComputeHash(&e)
		*prev = e.Hash
		out[j] = e
	}
	return out, nil
}

// final is the slot j's event ended up in. A hot pool's debit moves once
// per merge, so the first command's debit is a chain as long as the
// batch; each slot walked is pointed straight at the end, which keeps
// the batch's walks linear rather than quadratic.
func (sl *slots) final(j int) int {
	end := j
	for sl.s[end].movedTo != 0 {
		end = sl.s[end].movedTo
	}
	for j != end {
		next := sl.s[j].movedTo
		sl.s[j].movedTo = end
		j = next
	}
	return end
}

// eventsOf is the sealed events a command's slots ended up in, in log
// order, each once.
func (sl *slots) eventsOf(ref []int, sealed []events.Event) []events.Event {
	// Sorted, then compacted: no map to build for each of a batch's
	// commands.
	idx := make([]int, 0, len(ref))
	for _, j := range ref {
		idx = append(idx, sl.final(j))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	out := make([]events.Event, len(idx))
	for k, j := range idx {
		out[k] = sealed[j]
	}
	return out
}

// newEventID returns a time-ordered (version 7) UUID. Random (version 4)
// ids scattered every insert across the whole events_event_id_key index,
// each one dirtying a random leaf page (and writing it in full to the WAL
// after each checkpoint); ids that grow with time land on the index's
// right edge, as positions do. Nothing orders by an event id or needs it
// unguessable: it is a unique name (the JetStream de-duplication id, the
// seed of derived ids), and 62 random bits beside the millisecond and a
// per-process sequence keep it unique.
func newEventID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// readStreams returns every event of the given streams, ordered by stream
// and version.
//
// Each stream is its own lookup of the (stream_id, stream_version) index.
// The plainer `stream_id = ANY($1)` lets the planner pick a sequential scan
// of the whole log whenever its statistics are stale — after a burst of
// appends, before autovacuum has analyzed — and that scan sat in the
// committer's path: 190 ms instead of under 1 ms for 50 new streams on a
// 30,000-event store.
func readStreams(ctx context.Context, q Querier, ids []string) ([]events.Event, error) {
	rows, err := q.Query(ctx, selectStreams, ids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanEvent)
}

// selectStreams reads whole streams, stream by stream, each in version order.
const selectStreams = `SELECT e.position, e.stream_id, e.stream_version, e.event_id, e.event_type, e.schema_version,
	e.partner_id, e.environment, e.payload::text, e.metadata::text, e.recorded_at, e.prev_hash, e.hash
	FROM unnest($1::text[]) AS s(id)
	CROSS JOIN LATERAL (SELECT * FROM events WHERE stream_id = s.id ORDER BY stream_version) e`

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
