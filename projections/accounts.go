package projections

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// AccountsName is the name of the accounts read model: portal users,
// partners and API keys, for authentication and the key endpoints.
const AccountsName = "accounts"

// Accounts is the accounts projection.
type Accounts struct{}

// Partner statuses as the accounts read model shows them, derived from the
// partner's lifecycle events.
const (
	partnerActive    = "ACTIVE"
	partnerSuspended = "SUSPENDED"
)

// Name implements Projection.
func (Accounts) Name() string { return AccountsName }

// Setup implements Projection.
func (Accounts) Setup() string {
	return `
CREATE TABLE portal_users (
    user_id       text PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    partner_id    text,
    created_at    timestamptz NOT NULL
);
CREATE TABLE partners (
    partner_id    text PRIMARY KEY,
    owner_user_id text NOT NULL,
    name          text NOT NULL,
    status        text NOT NULL,
    tier          text NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,
    partner_id    text NOT NULL,
    name          text NOT NULL,
    environment   text NOT NULL,
    public_key    text NOT NULL UNIQUE,
    secret_hash   text NOT NULL UNIQUE,
    secret_prefix text NOT NULL,
    hmac_sealed   text NOT NULL,
    is_active     boolean NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX api_keys_partner_idx ON api_keys (partner_id, created_at);
` + partnerConfigsDDL
}

// partnerConfigsDDL creates the widget configuration table; it came after
// the rest of the accounts model, so Upgrade adds it to older schemas.
const partnerConfigsDDL = `CREATE TABLE IF NOT EXISTS partner_configs (
    partner_id          text PRIMARY KEY,
    enabled_features    jsonb NOT NULL,
    tip_enabled         boolean NOT NULL,
    tip_default_percent bigint NOT NULL,
    updated_at          timestamptz NOT NULL
);
`

// Upgrade implements Upgrader: widget.configured events are as new as
// partner_configs, so a schema created before it gets it empty, which is
// what a rebuild would produce.
func (Accounts) Upgrade() string { return partnerConfigsDDL }

// accountsUses reports whether the accounts model reads events of type t;
// Apply and Skips both ask it, so the two cannot disagree.
func accountsUses(t string) bool {
	switch t {
	case "portaluser.created", "portaluser.partner_linked", "partner.registered", "partner.approved",
		"partner.suspended", "partner.tier_changed", "apikey.created", "apikey.updated", "apikey.revoked", "widget.configured":
		return true
	}
	return false
}

// Skips implements Skipper: a batch with none of the types Apply reads.
func (Accounts) Skips(_ int64, evs []events.Event) bool { return noneUsed(evs, accountsUses) }

// Apply implements Projection.
func (Accounts) Apply(ctx context.Context, tx pgx.Tx, e events.Event) error {
	if !accountsUses(e.Type) {
		return nil
	}
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	at := e.RecordedAt
	switch v := pl.(type) {
	case events.PortalUserCreated:
		_, err = tx.Exec(ctx, `INSERT INTO portal_users (user_id, email, password_hash, created_at) VALUES ($1,$2,$3,$4)
			ON CONFLICT (user_id) DO NOTHING`, v.UserID, v.Email, v.StoredPassword(), at)
	case events.PortalUserPartnerLinked:
		_, err = tx.Exec(ctx, `UPDATE portal_users SET partner_id = $2 WHERE user_id = $1`, v.UserID, v.PartnerID)
	case events.PartnerRegistered:
		_, err = tx.Exec(ctx, `INSERT INTO partners (partner_id, owner_user_id, name, status, tier, created_at, updated_at)
			VALUES ($1,$2,$3,$4,$5,$6,$6) ON CONFLICT (partner_id) DO NOTHING`, v.PartnerID, v.OwnerUserID, v.Name, v.Status, v.Tier, at)
	case events.PartnerApproved:
		_, err = tx.Exec(ctx, `UPDATE partners SET status = $2, updated_at = $3 WHERE partner_id = $1`, v.PartnerID, partnerActive, at)
	case events.PartnerSuspended:
		_, err = tx.Exec(ctx, `UPDATE partners SET status = $2, updated_at = $3 WHERE partner_id = $1`, v.PartnerID, partnerSuspended, at)
	case events.PartnerTierChanged:
		_, err = tx.Exec(ctx, `UPDATE partners SET tier = $2, updated_at = $3 WHERE partner_id = $1`, v.PartnerID, v.To, at)
	case events.APIKeyCreated:
		_, err = tx.Exec(ctx, `INSERT INTO api_keys (key_id, partner_id, name, environment, public_key, secret_hash, secret_prefix,
			hmac_sealed, is_active, expires_at, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,true,$9,$10,$10)
			ON CONFLICT (key_id) DO NOTHING`,
			v.KeyID, v.PartnerID, v.Name, v.Environment, v.PublicKey, v.SecretKeyHash, v.SecretKeyPrefix, v.HMACSecretSealed, v.ExpiresAt, at)
	case events.APIKeyUpdated:
		_, err = tx.Exec(ctx, `UPDATE api_keys SET
			name = coalesce($2, name),
			is_active = coalesce($3, is_active),
			expires_at = CASE WHEN $5 THEN NULL ELSE coalesce($4, expires_at) END,
			updated_at = $6
			WHERE key_id = $1`, v.KeyID, v.Name, v.IsActive, v.ExpiresAt, v.ClearExpiry, at)
	case events.APIKeyRevoked:
		_, err = tx.Exec(ctx, `UPDATE api_keys SET is_active = false, revoked_at = $2, updated_at = $2 WHERE key_id = $1`, v.KeyID, at)
	case events.WidgetConfigured:
		err = applyWidgetConfigured(ctx, tx, v, at)
	}
	return err
}

// PortalUser is a portal login as the read model holds it.
type PortalUser struct {
	UserID       string
	Email        string
	PasswordHash string
	PartnerID    string
	CreatedAt    time.Time
}

const selectUser = `SELECT user_id, email, password_hash, coalesce(partner_id, ''), created_at FROM proj_accounts.portal_users `

func scanUser(row pgx.Row) (*PortalUser, error) {
	var u PortalUser
	err := row.Scan(&u.UserID, &u.Email, &u.PasswordHash, &u.PartnerID, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// UserByEmail finds a portal user by email, which the caller has
// normalized as the domain does (ledger.NormalizeEmail); nil when unknown.
func UserByEmail(ctx context.Context, q eventstore.Querier, email string) (*PortalUser, error) {
	return scanUser(q.QueryRow(ctx, selectUser+`WHERE email = $1`, email))
}

// UserByID finds a portal user; nil when unknown.
func UserByID(ctx context.Context, q eventstore.Querier, userID string) (*PortalUser, error) {
	return scanUser(q.QueryRow(ctx, selectUser+`WHERE user_id = $1`, userID))
}

// PartnerRecord is a partner as the portal shows it.
type PartnerRecord struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Status      string    `json:"status"`
	Tier        string    `json:"tier"`
	OwnerUserID string    `json:"ownerUserId"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// PartnerByID returns a partner; nil when unknown.
func PartnerByID(ctx context.Context, q eventstore.Querier, partnerID string) (*PartnerRecord, error) {
	var p PartnerRecord
	err := q.QueryRow(ctx, `SELECT partner_id, name, status, tier, owner_user_id, created_at, updated_at
		FROM proj_accounts.partners WHERE partner_id = $1`, partnerID).
		Scan(&p.ID, &p.Name, &p.Status, &p.Tier, &p.OwnerUserID, &p.CreatedAt, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return &p, nil
}

// KeyRecord is a key as later reads show it: no secret, only a prefix.
type KeyRecord struct {
	ID              string     `json:"id"`
	PartnerID       string     `json:"partnerId"`
	Name            string     `json:"name"`
	Environment     string     `json:"environment"`
	PublicKey       string     `json:"publicKey"`
	SecretKeyPrefix string     `json:"secretKeyPrefix"`
	IsActive        bool       `json:"isActive"`
	ExpiresAt       *time.Time `json:"expiresAt"`
	LastUsedAt      *time.Time `json:"lastUsedAt"`
	CreatedAt       time.Time  `json:"createdAt"`
	UpdatedAt       time.Time  `json:"updatedAt"`
}

const selectKeyRecord = `SELECT k.key_id, k.partner_id, k.name, k.environment, k.public_key, k.secret_prefix, k.is_active,
	k.expires_at, u.last_used_at, k.created_at, k.updated_at
	FROM proj_accounts.api_keys k LEFT JOIN api_key_usage u ON u.key_id = k.key_id `

func scanKeyRecord(row pgx.CollectableRow) (KeyRecord, error) {
	var k KeyRecord
	err := row.Scan(&k.ID, &k.PartnerID, &k.Name, &k.Environment, &k.PublicKey, &k.SecretKeyPrefix, &k.IsActive,
		&k.ExpiresAt, &k.LastUsedAt, &k.CreatedAt, &k.UpdatedAt)
	k.CreatedAt, k.UpdatedAt = k.CreatedAt.UTC(), k.UpdatedAt.UTC()
	for _, t := range []**time.Time{&k.ExpiresAt, &k.LastUsedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return k, err
}

// ListKeys returns a page of the partner's keys (revoked keys excluded),
// newest first, and the total count.
func ListKeys(ctx context.Context, q eventstore.Querier, partnerID string, offset, limit int) ([]KeyRecord, int64, error) {
	var total int64
	if err := q.QueryRow(ctx, `SELECT count(*) FROM proj_accounts.api_keys WHERE partner_id = $1 AND revoked_at IS NULL`, partnerID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := q.Query(ctx, selectKeyRecord+`WHERE k.partner_id = $1 AND k.revoked_at IS NULL
		ORDER BY k.created_at DESC, k.key_id LIMIT $2 OFFSET $3`, partnerID, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scanKeyRecord)
	return out, total, err
}

// KeyRecordByID returns one of the partner's keys; nil when unknown,
// revoked, or another partner's.
func KeyRecordByID(ctx context.Context, q eventstore.Querier, partnerID, keyID string) (*KeyRecord, error) {
	rows, err := q.Query(ctx, selectKeyRecord+`WHERE k.key_id = $1 AND k.partner_id = $2 AND k.revoked_at IS NULL`, keyID, partnerID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, scanKeyRecord)
	if err != nil || len(out) == 0 {
		return nil, err
	}
	return &out[0], nil
}

// ActivePublishableKey returns the newest usable publishable key of the
// partner and its environment, preferring production; empty when none.
func ActivePublishableKey(ctx context.Context, q eventstore.Querier, partnerID string, now time.Time) (string, string, error) {
	var pk, env string
	err := q.QueryRow(ctx, `SELECT public_key, environment FROM proj_accounts.api_keys
		WHERE partner_id = $1 AND revoked_at IS NULL AND is_active AND (expires_at IS NULL OR expires_at > $2)
		ORDER BY (environment = 'production') DESC, created_at DESC LIMIT 1`, partnerID, now).Scan(&pk, &env)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil
	}
	return pk, env, err
}

// Execer is what the bookkeeping writes need from a pool or a tx.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// TouchKeys records lastUsedAt for many keys at once; a later time never
// goes backwards.
func TouchKeys(ctx context.Context, q Execer, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	ats := make([]time.Time, 0, len(used))
	for id, at := range used {
		ids = append(ids, id)
		ats = append(ats, at)
	}
	_, err := q.Exec(ctx, `INSERT INTO api_key_usage (key_id, last_used_at)
		SELECT * FROM unnest($1::text[], $2::timestamptz[])
		ON CONFLICT (key_id) DO UPDATE SET last_used_at = greatest(api_key_usage.last_used_at, excluded.last_used_at)`, ids, ats)
	return err
}

// PruneSignatures deletes signatures whose window has passed.
func PruneSignatures(ctx context.Context, q Execer, now time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM seen_signatures WHERE expires_at < $1`, now)
	return tag.RowsAffected(), err
}
