package ledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/mail"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/infra/secretbox"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Partner statuses and tiers (CONTRACT §1).
const (
	PartnerPending   = "PENDING_APPROVAL"
	PartnerActive    = "ACTIVE"
	PartnerSuspended = "SUSPENDED"

	TierStandard     = "STANDARD"
	TierProfessional = "PROFESSIONAL"
	TierEnterprise   = "ENTERPRISE"

	EnvSandbox    = "sandbox"
	EnvProduction = "production"
)

// SandboxPoolTokens is the allocation of the sandbox pool a partner gets
// with its first sandbox key.
const SandboxPoolTokens int64 = 1_000_000

// NewAccountID returns "<prefix>_<32 lowercase hex>" from a random UUID.
func NewAccountID(prefix string) string {
	u := uuid.New()
	return prefix + "_" + hex.EncodeToString(u[:])
}

// NormalizeEmail is the form emails are compared in.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// EmailStream is the stream that reserves a normalized email address.
func EmailStream(email string) string {
	sum := sha256.Sum256([]byte(NormalizeEmail(email)))
	return "useremail-" + hex.EncodeToString(sum[:])
}

// PartnerStream, PortalUserStream and PoolStream name the account streams.
func PartnerStream(partnerID string) string { return "partner-" + partnerID }

// PortalUserStream is the stream of one portal user.
func PortalUserStream(userID string) string { return "portaluser-" + userID }

// PoolStream is the stream of one token pool.
func PoolStream(poolID string) string { return "pool-" + poolID }

// KeyState is what the partner aggregate knows of one API key.
type KeyState struct {
	ID          string
	Environment string
	Revoked     bool
}

// PartnerState is the partner aggregate: status, tier and keys.
type PartnerState struct {
	ID          string
	OwnerUserID string
	Status      string
	Tier        string
	Keys        map[string]*KeyState
	// SandboxProvisioned is set by the first sandbox key, which also
	// provisions the sandbox pool.
	SandboxProvisioned bool
}

// Apply implements eventstore.Aggregate.
func (p *PartnerState) Apply(e events.Event) error {
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	switch v := pl.(type) {
	case events.PartnerRegistered:
		p.ID, p.OwnerUserID, p.Status, p.Tier = v.PartnerID, v.OwnerUserID, v.Status, v.Tier
	case events.PartnerApproved:
		p.Status = PartnerActive
	case events.PartnerSuspended:
		p.Status = PartnerSuspended
	case events.PartnerTierChanged:
		p.Tier = v.To
	case events.APIKeyCreated:
		if p.Keys == nil {
			p.Keys = map[string]*KeyState{}
		}
		p.Keys[v.KeyID] = &KeyState{ID: v.KeyID, Environment: v.Environment}
		if v.Environment == EnvSandbox {
			p.SandboxProvisioned = true
		}
	case events.APIKeyRevoked:
		if k := p.Keys[v.KeyID]; k != nil {
			k.Revoked = true
		}
	}
	return nil
}

// PortalUserState is the portal user aggregate.
type PortalUserState struct {
	ID           string
	Email        string
	PasswordHash string
	PartnerID    string
}

// Apply implements eventstore.Aggregate.
func (u *PortalUserState) Apply(e events.Event) error {
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	switch v := pl.(type) {
	case events.PortalUserCreated:
		u.ID, u.Email, u.PasswordHash = v.UserID, v.Email, v.PasswordHash
	case events.PortalUserPartnerLinked:
		u.PartnerID = v.PartnerID
	}
	return nil
}

func init() {
	eventstore.RegisterAggregate("partner-", func() eventstore.Aggregate { return &PartnerState{} })
	eventstore.RegisterAggregate("portaluser-", func() eventstore.Aggregate { return &PortalUserState{} })
}

// HashPassword is the slow hash portal passwords are stored as.
func HashPassword(password string) (string, error) {
	b, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(b), err
}

// CheckPassword reports whether password matches hash, in time that does
// not depend on where they differ.
func CheckPassword(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// CheckStoredPassword reports whether password matches userID's stored
// hash as events.PortalUserCreated.StoredPassword gives it, opening it with masterKey if sealed.
func CheckStoredPassword(masterKey []byte, userID, stored, password string) bool {
	if sealed, ok := strings.CutPrefix(stored, events.SealedPasswordPrefix); ok {
		hash, err := OpenSecret(masterKey, passwordContext(userID), sealed)
		if err != nil {
			return false
		}
		stored = hash
	}
	return CheckPassword(stored, password)
}

func passwordContext(userID string) string { return "portaluser-password:" + userID }

// CreatePortalUser creates a portal login. Two creations of the same email
// (in any case, from any process) cannot both succeed: the second gets 409
// EMAIL_TAKEN.
func (s *Service) CreatePortalUser(ctx context.Context, meta events.Metadata, email, password string) (string, eventstore.Result, error) {
	email = NormalizeEmail(email)
	var issues []eventstore.FieldIssue
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email || len(email) > 254 {
		issues = append(issues, eventstore.FieldIssue{Field: "email", Issue: "must be a valid email address"})
	}
	if len(password) < 8 || len(password) > 72 {
		issues = append(issues, eventstore.FieldIssue{Field: "password", Issue: "must be 8 to 72 bytes"})
	}
	if len(issues) > 0 {
		return "", eventstore.Result{}, eventstore.Invalid("invalid portal user", issues...)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return "", eventstore.Result{}, err
	}
	userID := NewAccountID("usr")
	sealed, err := SealSecret(s.opts.MasterKey, passwordContext(userID), hash)
	if err != nil {
		return "", eventstore.Result{}, err
	}
	emailStream := EmailStream(email)
	res, err := s.store.Execute(ctx, eventstore.Command{Metadata: meta, Decide: func(ss *eventstore.Session) error {
		claim, err := ss.Load(emailStream)
		if err != nil {
			return err
		}
		if claim.Version != 0 {
			return eventstore.Errorf(eventstore.KindConflict, "EMAIL_TAKEN", "a portal user with this email already exists")
		}
		ss.Emit(emailStream, events.PortalUserEmailClaimed{UserID: userID, EmailHash: strings.TrimPrefix(emailStream, "useremail-")})
		ss.Emit(PortalUserStream(userID), events.PortalUserCreated{UserID: userID, Email: email, PasswordSealed: sealed})
		return nil
	}})
	if err != nil {
		return "", res, err
	}
	return userID, res, nil
}

// NewKey is a freshly issued key pair with its secrets in the clear; it is
// shown to the caller once and never again.
type NewKey struct {
	KeyID       string
	PartnerID   string
	Name        string
	Environment string
	PublicKey   string
	SecretKey   string
	HMACSecret  string
	ExpiresAt   *time.Time
	CreatedAt   time.Time
	// PartnerCreated is true when this key created the partner.
	PartnerCreated bool
	// PoolID is the sandbox pool provisioned with this key, if any.
	PoolID string
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// HashSecretKey is how secret keys are stored and looked up.
func HashSecretKey(sk string) string {
	sum := sha256.Sum256([]byte(sk))
	return hex.EncodeToString(sum[:])
}

// SecretKeyPrefix is the part of a secret key later reads may show.
func SecretKeyPrefix(sk string) string {
	if i := strings.LastIndexByte(sk, '_'); i >= 0 && len(sk) >= i+1+8 {
		return sk[:i+1+8]
	}
	return ""
}

// SealSecret encrypts plaintext with AES-256-GCM under masterKey, bound to
// aad (the owning record) so a sealed secret cannot be moved to another
// record, and returns it base64-encoded for event payloads.
func SealSecret(masterKey []byte, aad, plaintext string) (string, error) {
	out, err := secretbox.Seal(masterKey, aad, []byte(plaintext))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(out), nil
}

// OpenSecret reverses SealSecret.
func OpenSecret(masterKey []byte, aad, sealed string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", errors.New("ledger: sealed secret is malformed")
	}
	pt, err := secretbox.Open(masterKey, aad, raw)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

var errUserNotFound = eventstore.Errorf(eventstore.KindNotFound, "USER_NOT_FOUND", "no such portal user")

func errPartnerNotFound() *eventstore.Error {
	return eventstore.Errorf(eventstore.KindNotFound, "PARTNER_NOT_FOUND", "no such partner")
}

func errKeyNotFound() *eventstore.Error {
	return eventstore.Errorf(eventstore.KindNotFound, "KEY_NOT_FOUND", "no such API key")
}

// CreateAPIKey issues a key pair for the portal user's partner, creating
// the partner (PENDING_APPROVAL, STANDARD) with the user's first key, and
// the partner's sandbox pool with its first sandbox key.
func (s *Service) CreateAPIKey(ctx context.Context, meta events.Metadata, userID, name, env string, expiresAt *time.Time) (*NewKey, eventstore.Result, error) {
	name = strings.TrimSpace(name)
	var issues []eventstore.FieldIssue
	if name == "" || len(name) > 100 {
		issues = append(issues, eventstore.FieldIssue{Field: "name", Issue: "required, at most 100 characters"})
	}
	if env != EnvSandbox && env != EnvProduction {
		issues = append(issues, eventstore.FieldIssue{Field: "environment", Issue: `must be "sandbox" or "production"`})
	}
	if len(issues) > 0 {
		return nil, eventstore.Result{}, eventstore.Invalid("invalid API key request", issues...)
	}
	tag := "test"
	if env == EnvProduction {
		tag = "live"
	}
	var parts [3]string
	for i := range parts {
		h, err := randomHex(32)
		if err != nil {
			return nil, eventstore.Result{}, err
		}
		parts[i] = h
	}
	k := &NewKey{
		KeyID: NewAccountID("key"), Name: name, Environment: env,
		PublicKey: "pk_" + tag + "_" + parts[0], SecretKey: "sk_" + tag + "_" + parts[1], HMACSecret: parts[2],
		ExpiresAt: expiresAt,
	}
	sealed, err := SealSecret(s.opts.MasterKey, k.KeyID, k.HMACSecret)
	if err != nil {
		return nil, eventstore.Result{}, err
	}
	newPartnerID, newPoolID := NewAccountID("ptr"), NewAccountID("pool")
	res, err := s.store.Execute(ctx, eventstore.Command{Metadata: meta, Decide: func(ss *eventstore.Session) error {
		us, err := ss.Load(PortalUserStream(userID))
		if err != nil {
			return err
		}
		user, _ := us.State.(*PortalUserState)
		if us.Version == 0 || user == nil {
			return errUserNotFound
		}
		k.PartnerID, k.CreatedAt, k.PartnerCreated, k.PoolID = user.PartnerID, ss.Now(), false, ""
		sandboxDone := false
		if k.PartnerID == "" {
			k.PartnerID, k.PartnerCreated = newPartnerID, true
			scope := eventstore.Tenant{PartnerID: k.PartnerID}
			ss.EmitFor(PartnerStream(k.PartnerID), scope, events.PartnerRegistered{
				PartnerID: k.PartnerID, OwnerUserID: userID, Name: user.Email, Status: PartnerPending, Tier: TierStandard,
			})
			ss.EmitFor(PortalUserStream(userID), scope, events.PortalUserPartnerLinked{UserID: userID, PartnerID: k.PartnerID})
		} else {
			ps, err := ss.Load(PartnerStream(k.PartnerID))
			if err != nil {
				return err
			}
			p, _ := ps.State.(*PartnerState)
			if p == nil || ps.Version == 0 {
				return errPartnerNotFound()
			}
			if p.Status == PartnerSuspended {
				return eventstore.Errorf(eventstore.KindForbidden, "PARTNER_SUSPENDED", "this partner is suspended")
			}
			sandboxDone = p.SandboxProvisioned
		}
		scope := eventstore.Tenant{PartnerID: k.PartnerID}
		ss.EmitFor(PartnerStream(k.PartnerID), scope, events.APIKeyCreated{
			KeyID: k.KeyID, PartnerID: k.PartnerID, CreatedBy: userID, Name: name, Environment: env,
			PublicKey: k.PublicKey, SecretKeyHash: HashSecretKey(k.SecretKey), SecretKeyPrefix: SecretKeyPrefix(k.SecretKey),
			HMACSecretSealed: sealed, ExpiresAt: expiresAt,
		})
		if env == EnvSandbox && !sandboxDone {
			// The sandbox pool is the tenant's default pool, the one actions
			// draw from when they name none (ledger.DefaultPoolID).
			newPoolID = DefaultPoolID(eventstore.Tenant{PartnerID: k.PartnerID, Environment: EnvSandbox})
			k.PoolID = newPoolID
			ss.EmitFor(PoolStream(newPoolID), eventstore.Tenant{PartnerID: k.PartnerID, Environment: EnvSandbox}, events.PoolProvisioned{
				PoolID: newPoolID, Name: "Sandbox pool", Environment: EnvSandbox,
				Allocated: SandboxPoolTokens, LowBalanceThreshold: SandboxPoolTokens / 10,
			})
		}
		return nil
	}})
	if err != nil {
		return nil, res, err
	}
	return k, res, nil
}

// KeyPatch is a partial update of a key; nil fields stay as they are.
type KeyPatch struct {
	Name        *string
	IsActive    *bool
	ExpiresAt   *time.Time
	ClearExpiry bool
}

func loadKey(ss *eventstore.Session, partnerID, keyID string) (*PartnerState, error) {
	ps, err := ss.Load(PartnerStream(partnerID))
	if err != nil {
		return nil, err
	}
	p, _ := ps.State.(*PartnerState)
	if p == nil || ps.Version == 0 {
		return nil, errKeyNotFound()
	}
	if k := p.Keys[keyID]; k == nil || k.Revoked {
		return nil, errKeyNotFound()
	}
	return p, nil
}

// UpdateAPIKey renames, (de)activates or sets the expiry of one of the
// partner's keys. A key of another partner is not found.
func (s *Service) UpdateAPIKey(ctx context.Context, meta events.Metadata, partnerID, keyID string, patch KeyPatch) (eventstore.Result, error) {
	if patch.Name != nil {
		n := strings.TrimSpace(*patch.Name)
		if n == "" || len(n) > 100 {
			return eventstore.Result{}, eventstore.Invalid("invalid API key update", eventstore.FieldIssue{Field: "name", Issue: "required, at most 100 characters"})
		}
		patch.Name = &n
	}
	return s.store.Execute(ctx, eventstore.Command{Tenant: eventstore.Tenant{PartnerID: partnerID}, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		if _, err := loadKey(ss, partnerID, keyID); err != nil {
			return err
		}
		if patch.Name == nil && patch.IsActive == nil && patch.ExpiresAt == nil && !patch.ClearExpiry {
			return nil
		}
		ss.Emit(PartnerStream(partnerID), events.APIKeyUpdated{
			KeyID: keyID, PartnerID: partnerID, Name: patch.Name, IsActive: patch.IsActive,
			ExpiresAt: patch.ExpiresAt, ClearExpiry: patch.ClearExpiry,
		})
		return nil
	}})
}

// RevokeAPIKey deletes one of the partner's keys for good.
func (s *Service) RevokeAPIKey(ctx context.Context, meta events.Metadata, partnerID, keyID string) (eventstore.Result, error) {
	return s.store.Execute(ctx, eventstore.Command{Tenant: eventstore.Tenant{PartnerID: partnerID}, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		if _, err := loadKey(ss, partnerID, keyID); err != nil {
			return err
		}
		ss.Emit(PartnerStream(partnerID), events.APIKeyRevoked{KeyID: keyID, PartnerID: partnerID})
		return nil
	}})
}

func (s *Service) partnerCommand(ctx context.Context, meta events.Metadata, partnerID string, decide func(ss *eventstore.Session, p *PartnerState) error) (eventstore.Result, error) {
	return s.store.Execute(ctx, eventstore.Command{Tenant: eventstore.Tenant{PartnerID: partnerID}, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		ps, err := ss.Load(PartnerStream(partnerID))
		if err != nil {
			return err
		}
		p, _ := ps.State.(*PartnerState)
		if p == nil || ps.Version == 0 {
			return errPartnerNotFound()
		}
		return decide(ss, p)
	}})
}

// ApprovePartner makes the partner ACTIVE (also lifting a suspension):
// its production keys start working. Approving an active partner is a no-op.
func (s *Service) ApprovePartner(ctx context.Context, meta events.Metadata, partnerID string) (eventstore.Result, error) {
	return s.partnerCommand(ctx, meta, partnerID, func(ss *eventstore.Session, p *PartnerState) error {
		if p.Status != PartnerActive {
			ss.Emit(PartnerStream(partnerID), events.PartnerApproved{PartnerID: partnerID, Actor: meta.Actor})
		}
		return nil
	})
}

// SuspendPartner makes every key of the partner answer 403.
func (s *Service) SuspendPartner(ctx context.Context, meta events.Metadata, partnerID, reason string) (eventstore.Result, error) {
	return s.partnerCommand(ctx, meta, partnerID, func(ss *eventstore.Session, p *PartnerState) error {
		if p.Status != PartnerSuspended {
			ss.Emit(PartnerStream(partnerID), events.PartnerSuspended{PartnerID: partnerID, Reason: reason, Actor: meta.Actor})
		}
		return nil
	})
}

// ValidTier reports whether tier is one of the three tiers.
func ValidTier(tier string) bool {
	return tier == TierStandard || tier == TierProfessional || tier == TierEnterprise
}

// SetPartnerTier changes the partner's rate-limit tier.
func (s *Service) SetPartnerTier(ctx context.Context, meta events.Metadata, partnerID, tier string) (eventstore.Result, error) {
	if !ValidTier(tier) {
		return eventstore.Result{}, eventstore.Invalid("invalid tier", eventstore.FieldIssue{Field: "tier", Issue: "must be STANDARD, PROFESSIONAL or ENTERPRISE"})
	}
	return s.partnerCommand(ctx, meta, partnerID, func(ss *eventstore.Session, p *PartnerState) error {
		if p.Tier != tier {
			ss.Emit(PartnerStream(partnerID), events.PartnerTierChanged{PartnerID: partnerID, From: p.Tier, To: tier, Actor: meta.Actor})
		}
		return nil
	})
}
