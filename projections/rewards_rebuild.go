package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/pgbin"
)

// NewBulkLoad implements BulkLoader. A rebuild's fresh tables are its own
// until the swap, so the rewards load goes further than ApplyBatch: new
// users, actions and transactions are appended with binary COPY rather than
// parsed out of arrays and upserted, and balances, pools and campaigns are
// summed in memory across pages and written once, at the end (or before an
// event ApplyBatch leaves to applyRewards, which may read or change them).
func (Rewards) NewBulkLoad() BulkLoad { return newRewardsLoad(maxHeldBalances) }

func newRewardsLoad(maxHeld int) *rewardsLoad {
	return &rewardsLoad{maxHeld: maxHeld, retried: map[string]bool{}}
}

// maxHeldBalances bounds the balance rows a rewards bulk load sums in
// memory: past it, a page's end writes them out, so memory stays flat
// however many users the log has.
const maxHeldBalances = 200000

// rewardsLoad is the rewards model's BulkLoad.
type rewardsLoad struct {
	maxHeld int // balance rows held before a page's end writes them

	// Summed changes, held across pages until a flush of all.
	rewardSums

	// Rows of the current page since its last flush. An action's first
	// event (version 1 of its own stream) creates its row, which no
	// earlier event can have written, since only events naming the action
	// write it and the domain keeps those in the action's stream: appended
	// (were that ever broken, the primary key refuses the copy and the
	// rebuild fails; it never differs silently). A later one (a failed
	// action retried) upserts, as in ApplyBatch, at most once per action
	// per flush.
	users, actions, txns copyRows
	completed, failed    actionRows
	retried              map[string]bool

	// writes are the page's writes so far, in order; rare, when not nil,
	// is the last of them, still open for more per-event statements. side
	// are the page's transaction rows, appended on a second connection:
	// transactions are only ever inserted, and have no unique index while
	// a rebuild loads them (RebuildDeferredConstraints).
	writes []BulkWrite
	rare   *pgx.Batch
	side   []BulkWrite

	scratch []byte // JSON being encoded into a row
}

// Fold implements BulkLoad.
func (l *rewardsLoad) Fold(evs []events.Event) (BulkWrites, error) {
	for _, e := range evs {
		if !rewardsUses(e.Type) {
			continue
		}
		pl, plain := decodeHot(e)
		if !plain {
			var err error
			if pl, err = events.Decode(e); err != nil {
				return BulkWrites{}, fmt.Errorf("position %d: %w", e.Position, err)
			}
		}
		if l.fold(pl, e, plain) {
			continue
		}
		// A rare event: whatever was folded before it is written first,
		// since its statements may touch the same rows.
		l.flushRows()
		l.flushSums()
		if l.rare == nil {
			b := &pgx.Batch{}
			l.write(sendBatch(b))
			l.rare = b
		}
		exec := func(sql string, args ...any) error {
			l.rare.Queue(sql, args...)
			return nil
		}
		if err := applyRewards(pl, e.PartnerID, e.Environment, e.RecordedAt, e, exec); err != nil {
			return BulkWrites{}, fmt.Errorf("position %d: %w", e.Position, err)
		}
	}
	l.flushRows()
	if len(l.balances.order) > l.maxHeld {
		l.flushSums()
	}
	return l.take(), nil
}

// Finish implements BulkLoad.
func (l *rewardsLoad) Finish() (BulkWrites, error) {
	l.flushRows()
	l.flushSums()
	return l.take(), nil
}

// take returns the writes collected so far.
func (l *rewardsLoad) take() BulkWrites {
	main, side := l.writes, l.side
	l.writes, l.rare, l.side = nil, nil, nil
	return BulkWrites{Main: inOrder(main), Side: inOrder(side)}
}

// inOrder is the write that runs ws one after the other; nil if none.
func inOrder(ws []BulkWrite) BulkWrite {
	if len(ws) == 0 {
		return nil
	}
	return func(ctx context.Context, tx pgx.Tx) error {
		for _, w := range ws {
			if err := w(ctx, tx); err != nil {
				return err
			}
		}
		return nil
	}
}

func (l *rewardsLoad) write(w BulkWrite) {
	l.writes = append(l.writes, w)
	l.rare = nil
}

// firstOfAction reports whether e, an event naming actionID, is the first
// event of that action's stream, so no action row for it can exist yet.
func firstOfAction(e events.Event, actionID string) bool {
	const prefix = "action-"
	return e.StreamVersion == 1 && len(e.StreamID) == len(prefix)+len(actionID) &&
		e.StreamID[:len(prefix)] == prefix && e.StreamID[len(prefix):] == actionID
}

// fold takes a hot event (the types rewardsFold.fold takes) into memory
// and reports whether it did; the values written are those of
// rewardsFold.flush and applyRewards. plain is decodeHot's: pl's strings
// need no JSON escaping.
func (l *rewardsLoad) fold(pl events.Payload, e events.Event, plain bool) bool {
	p, env, at := e.PartnerID, e.Environment, e.RecordedAt
	switch v := pl.(type) {
	case events.EndUserCreated:
		k := balanceKey{p, env, v.UserID}
		if c := l.balances.get(k); c != nil && c.created {
			// A second create: let the insert fail as it would alone.
			l.flushRows()
			l.flushSums()
		}
		u := &l.users
		u.row(11)
		u.text(p)
		u.text(env)
		u.text(v.ExternalID)
		u.text(v.UserID)
		u.text(v.Email)
		u.text(v.FirstName)
		u.text(v.LastName)
		u.jsonbOrEmpty(v.Metadata)
		u.boolean(v.AutoCreated)
		u.timestamptz(at)
		u.timestamptz(at)
		// Changes summed before the row's creation would have updated no
		// row (had it existed, this insert fails anyway): start from zero.
		c := l.balance(k)
		*c = balanceChange{created: true, externalID: v.ExternalID, at: at}
		return true
	case events.ActionCompleted:
		var sh, ids []byte
		if plain {
			l.scratch = appendRewardsJSON(l.scratch[:0], v.Stakeholders)
			sh = l.scratch
			ids = appendStringsJSON(l.scratch[len(l.scratch):], v.TransactionIDs)
		} else {
			sh, _ = json.Marshal(v.Stakeholders)
			ids, _ = json.Marshal(v.TransactionIDs)
		}
		if firstOfAction(e, v.ActionID) {
			l.actionRow(v.ActionID, p, env, v.IdempotencyKey, v.ActionType, v.Amount, v.Currency, "COMPLETED", v.TokensDistributed,
				v.PoolID, v.CampaignID, sh, ids, v.Metadata, "", "", at, e.Position)
		} else {
			if l.retried[v.ActionID] {
				l.flushRows()
			}
			l.retried[v.ActionID] = true
			l.completed.add(v.ActionID, p, env, v.IdempotencyKey, v.ActionType, v.Amount, v.Currency, v.PoolID, v.CampaignID,
				string(sh), string(ids), jsonOrEmpty(v.Metadata), "", "", v.TokensDistributed, e.Position, at)
		}
		desc := v.ActionType + " reward (" + v.Amount + " " + v.Currency + ")" // applyRewards' "%s reward (%s %s)"
		for _, r := range v.Stakeholders {
			if r.Tokens == 0 {
				continue
			}
			t := &l.txns
			t.row(15)
			t.text(r.TransactionID)
			t.text(p)
			t.text(env)
			t.text("REWARD")
			t.text("CREDIT")
			t.int8(r.Tokens)
			t.text(r.UserID)
			t.text(r.PartnerUserID)
			t.text(v.ActionID)
			t.text(v.PoolID)
			t.text(v.CampaignID)
			t.text(desc)
			t.timestamptz(at)
			t.int8(e.Position)
			t.text(r.StakeholderTypeCode)
			c := l.balance(balanceKey{p, env, r.UserID})
			c.balance += r.Tokens
			c.earned += r.Tokens
			c.at = at
		}
		return true
	case events.ActionFailed:
		sh, _ := json.Marshal(v.Stakeholders)
		if firstOfAction(e, v.ActionID) {
			l.actionRow(v.ActionID, p, env, v.IdempotencyKey, v.ActionType, v.Amount, v.Currency, "FAILED", 0,
				v.PoolID, v.CampaignID, sh, []byte("[]"), v.Metadata, v.Code, v.Reason, at, e.Position)
			return true
		}
		if l.retried[v.ActionID] {
			l.flushRows()
		}
		l.retried[v.ActionID] = true
		l.failed.add(v.ActionID, p, env, v.IdempotencyKey, v.ActionType, v.Amount, v.Currency, v.PoolID, v.CampaignID,
			string(sh), "[]", jsonOrEmpty(v.Metadata), v.Code, v.Reason, 0, e.Position, at)
		return true
	}
	return l.foldMovement(pl, at)
}

// actionRow appends a new action row with the columns and values of the
// insert in applyRewards.
func (l *rewardsLoad) actionRow(id, p, env, key, typ, amount, currency, status string, tokens int64, pool, campaign string, sh, txids []byte, md json.RawMessage, code, reason string, at time.Time, pos int64) {
	a := &l.actions
	a.row(19)
	a.text(id)
	a.text(p)
	a.text(env)
	a.text(key)
	a.text(typ)
	a.text(amount)
	a.text(currency)
	a.text(status)
	a.int8(tokens)
	a.text(pool)
	a.text(campaign)
	a.jsonb(sh)
	a.jsonb(txids)
	a.jsonbOrEmpty(md)
	a.text(code)
	a.text(reason)
	a.timestamptz(at)
	a.timestamptz(at)
	a.int8(pos)
}

// The COPY statements of the rows a rewards bulk load appends: the
// columns of the corresponding inserts in applyRewards.
const (
	copyUsersSQL = `COPY users (partner_id, environment, external_id, user_id, email, first_name, last_name, metadata, auto_created,
		created_at, updated_at) FROM STDIN (FORMAT binary)`
	copyActionsSQL = `COPY actions (action_id, partner_id, environment, idempotency_key, action_type, amount, currency, status,
		tokens_distributed, pool_id, campaign_id, stakeholders, transaction_ids, metadata, failure_code, failure_reason, created_at,
		updated_at, position) FROM STDIN (FORMAT binary)`
	copyTransactionsSQL = `COPY transactions (transaction_id, partner_id, environment, type, direction, tokens, user_id, external_id,
		action_id, pool_id, campaign_id, description, created_at, position, stakeholder_type_code) FROM STDIN (FORMAT binary)`
	copyBalancesSQL = `COPY balances (partner_id, environment, user_id, external_id, balance, total_earned, total_reversed, updated_at)
		FROM STDIN (FORMAT binary)`
)

// flushRows writes the page's pending rows: new users, new actions, then
// retried actions' upserts; and, on the side, transactions.
func (l *rewardsLoad) flushRows() {
	if w := l.users.copy(copyUsersSQL); w != nil {
		l.write(w)
	}
	if w := l.actions.copy(copyActionsSQL); w != nil {
		l.write(w)
	}
	if len(l.completed.id) > 0 || len(l.failed.id) > 0 {
		b := &pgx.Batch{}
		queueActionRows(b, upsertCompleted, &l.completed)
		queueActionRows(b, upsertFailed, &l.failed)
		l.write(sendBatch(b))
		l.completed, l.failed = actionRows{}, actionRows{}
		clear(l.retried)
	}
	if w := l.txns.copy(copyTransactionsSQL); w != nil {
		l.side = append(l.side, w)
	}
}

// flushSums writes the summed balance, pool and campaign changes and
// forgets them: new balance rows appended, the others updated by the
// statements of rewardsFold.flush.
func (l *rewardsLoad) flushSums() {
	var ins copyRows
	var upd struct {
		p, env, uid      []string
		bal, earned, rev []int64
		at               []time.Time
	}
	for _, k := range l.balances.order {
		c := l.balances.get(k)
		if c.created {
			ins.row(8)
			ins.text(k.partner)
			ins.text(k.env)
			ins.text(k.userID)
			ins.text(c.externalID)
			ins.int8(c.balance)
			ins.int8(c.earned)
			ins.int8(c.reversed)
			ins.timestamptz(c.at)
			continue
		}
		upd.p, upd.env, upd.uid = append(upd.p, k.partner), append(upd.env, k.env), append(upd.uid, k.userID)
		upd.bal, upd.earned, upd.rev, upd.at = append(upd.bal, c.balance), append(upd.earned, c.earned), append(upd.rev, c.reversed), append(upd.at, c.at)
	}
	if w := ins.copy(copyBalancesSQL); w != nil {
		l.write(w)
	}
	b := &pgx.Batch{}
	if len(upd.uid) > 0 {
		b.Queue(updateBalancesSQL, upd.p, upd.env, upd.uid, upd.bal, upd.earned, upd.rev, upd.at)
	}
	if ids := l.pools.order; len(ids) > 0 {
		dist, ret := make([]int64, len(ids)), make([]int64, len(ids))
		updated, low := make([]*time.Time, len(ids)), make([]*time.Time, len(ids))
		for i, id := range ids {
			c := l.pools.get(id)
			dist[i], ret[i], updated[i], low[i] = c.distributed, c.returned, c.updatedAt, c.lowAt
		}
		b.Queue(updatePoolsSQL, ids, dist, ret, updated, low)
	}
	if ids := l.campaigns.order; len(ids) > 0 {
		spent, ret := make([]int64, len(ids)), make([]int64, len(ids))
		for i, id := range ids {
			c := l.campaigns.get(id)
			spent[i], ret[i] = c.spent, c.returned
		}
		b.Queue(updateCampaignsSQL, ids, spent, ret)
	}
	if b.Len() > 0 {
		l.write(sendBatch(b))
	}
	l.balances.reset()
	l.pools.reset()
	l.campaigns.reset()
}

func queueActionRows(b *pgx.Batch, sql string, r *actionRows) {
	if len(r.id) == 0 {
		return
	}
	b.Queue(sql, r.id, r.partner, r.env, r.key, r.typ, r.amount, r.currency, r.pool, r.campaign, r.stakeholders, r.txids,
		r.metadata, r.code, r.reason, r.tokens, r.position, r.at)
}

// sendBatch is the write that sends b, whatever was queued in it by the
// time the write runs.
func sendBatch(b *pgx.Batch) BulkWrite {
	return func(ctx context.Context, tx pgx.Tx) error {
		if b.Len() == 0 {
			return nil
		}
		return tx.SendBatch(ctx, b).Close()
	}
}

// copyRows accumulates rows in PostgreSQL's binary COPY format: no text to
// parse on the server, no array to unpack, no value boxed on the way.
// Each value's Go type must match its column's exactly (text, jsonb,
// bigint, boolean, timestamptz).
type copyRows struct {
	buf []byte
}

var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

func (c *copyRows) row(fields int) {
	if c.buf == nil {
		c.buf = append(make([]byte, 0, 1<<16), copyHeader...)
	}
	c.buf = binary.BigEndian.AppendUint16(c.buf, uint16(fields))
}

func (c *copyRows) text(s string) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, uint32(len(s)))
	c.buf = append(c.buf, s...)
}

// jsonb is jsonb's binary format: version 1, then the JSON text.
func (c *copyRows) jsonb(s []byte) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, uint32(len(s)+1))
	c.buf = append(c.buf, 1)
	c.buf = append(c.buf, s...)
}

// jsonbOrEmpty is jsonb of m, or of {} when m is empty (jsonOrEmpty).
func (c *copyRows) jsonbOrEmpty(m json.RawMessage) {
	if len(m) == 0 {
		m = json.RawMessage("{}")
	}
	c.jsonb(m)
}

func (c *copyRows) int8(v int64) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, 8)
	c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(v))
}

func (c *copyRows) boolean(v bool) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, 1)
	if v {
		c.buf = append(c.buf, 1)
	} else {
		c.buf = append(c.buf, 0)
	}
}

// timestamptz is microseconds since 2000-01-01 UTC, as pgx sends it.
func (c *copyRows) timestamptz(t time.Time) {
	c.buf = binary.BigEndian.AppendUint32(c.buf, 8)
	c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(pgbin.Timestamptz(t)))
}

// copy returns the write that copies the rows with sql, and starts over;
// nil when there are none.
func (c *copyRows) copy(sql string) BulkWrite {
	if c.buf == nil {
		return nil
	}
	data := binary.BigEndian.AppendUint16(c.buf, 0xffff)
	c.buf = nil
	return func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), sql)
		return err
	}
}

// RebuildDeferredConstraints implements ConstraintDeferrer: transactions
// are only ever inserted, never upserted or looked up by id, and their
// primary key costs a rebuild more row by row than everything else it
// writes to them.
func (Rewards) RebuildDeferredConstraints() []string { return []string{"transactions_pkey"} }
