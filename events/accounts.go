package events

import (
	"encoding/json"
	"time"
)

// Account events: portal users, partners and their API keys. Partner and
// key facts live on the partner stream (partner-ptr_…) with scope
// {PartnerID, ""}; portal-user facts on portaluser-usr_…; the claim of an
// email address on useremail-<sha256 hex of the lowercased email>, whose
// only purpose is to make two creations of one address collide on
// expected version 0.

// PortalUserCreated records a portal login. The password itself is never
// stored. Version 2 carries PasswordSealed: the bcrypt hash encrypted under
// the service master key, so the immutable log (relayed to JetStream and
// exported to auditors) never holds a hash that could be attacked offline.
// Version 1 events carry a plain bcrypt PasswordHash and stay readable.
type PortalUserCreated struct {
	UserID         string `json:"userId"`
	Email          string `json:"email"`
	PasswordHash   string `json:"passwordHash,omitempty"`
	PasswordSealed string `json:"passwordSealed,omitempty"`
}

// SealedPasswordPrefix marks a stored password hash that is sealed under
// the master key (version 2) rather than a plain bcrypt hash (version 1).
const SealedPasswordPrefix = "sealed:"

// StoredPassword is what a read model keeps for the portal user e created:
// the sealed hash (marked with SealedPasswordPrefix) or, for a version-1
// event, the plain bcrypt hash.
func (e PortalUserCreated) StoredPassword() string {
	if e.PasswordSealed != "" {
		return SealedPasswordPrefix + e.PasswordSealed
	}
	return e.PasswordHash
}

// EventType implements Payload.
func (PortalUserCreated) EventType() string { return "portaluser.created" }

// PortalUserEmailClaimed reserves a normalized email for one user.
type PortalUserEmailClaimed struct {
	UserID    string `json:"userId"`
	EmailHash string `json:"emailHash"`
}

// EventType implements Payload.
func (PortalUserEmailClaimed) EventType() string { return "portaluser.email_claimed" }

// PortalUserPartnerLinked records that a user's first key created their
// partner: from then on the user acts for that partner.
type PortalUserPartnerLinked struct {
	UserID    string `json:"userId"`
	PartnerID string `json:"partnerId"`
}

// EventType implements Payload.
func (PortalUserPartnerLinked) EventType() string { return "portaluser.partner_linked" }

// PartnerRegistered creates a partner, pending approval, owned by a portal user.
type PartnerRegistered struct {
	PartnerID   string `json:"partnerId"`
	OwnerUserID string `json:"ownerUserId"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	Tier        string `json:"tier"`
}

// EventType implements Payload.
func (PartnerRegistered) EventType() string { return "partner.registered" }

// PartnerApproved moves a partner to ACTIVE: production keys start working.
type PartnerApproved struct {
	PartnerID string `json:"partnerId"`
	Actor     string `json:"actor,omitempty"`
}

// EventType implements Payload.
func (PartnerApproved) EventType() string { return "partner.approved" }

// PartnerSuspended moves a partner to SUSPENDED: every key gets 403.
type PartnerSuspended struct {
	PartnerID string `json:"partnerId"`
	Reason    string `json:"reason,omitempty"`
	Actor     string `json:"actor,omitempty"`
}

// EventType implements Payload.
func (PartnerSuspended) EventType() string { return "partner.suspended" }

// PartnerTierChanged changes the partner's rate-limit tier.
type PartnerTierChanged struct {
	PartnerID string `json:"partnerId"`
	From      string `json:"from"`
	To        string `json:"to"`
	Actor     string `json:"actor,omitempty"`
}

// EventType implements Payload.
func (PartnerTierChanged) EventType() string { return "partner.tier_changed" }

// APIKeyCreated records a key pair. The secret key is kept only as its
// SHA-256 hash; the HMAC secret only sealed with AES-256-GCM under the
// master key (HMACSecretSealed, standard base64 of nonce‖ciphertext).
type APIKeyCreated struct {
	KeyID            string     `json:"keyId"`
	PartnerID        string     `json:"partnerId"`
	CreatedBy        string     `json:"createdBy"`
	Name             string     `json:"name"`
	Environment      string     `json:"environment"`
	PublicKey        string     `json:"publicKey"`
	SecretKeyHash    string     `json:"secretKeyHash"`
	SecretKeyPrefix  string     `json:"secretKeyPrefix"`
	HMACSecretSealed string     `json:"hmacSecretSealed"`
	ExpiresAt        *time.Time `json:"expiresAt,omitempty"`
}

// EventType implements Payload.
func (APIKeyCreated) EventType() string { return "apikey.created" }

// APIKeyUpdated changes a key's name, active flag or expiry. Nil fields are
// unchanged; ClearExpiry removes the expiry.
type APIKeyUpdated struct {
	KeyID       string     `json:"keyId"`
	PartnerID   string     `json:"partnerId"`
	Name        *string    `json:"name,omitempty"`
	IsActive    *bool      `json:"isActive,omitempty"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"`
	ClearExpiry bool       `json:"clearExpiry,omitempty"`
}

// EventType implements Payload.
func (APIKeyUpdated) EventType() string { return "apikey.updated" }

// APIKeyRevoked deletes a key for good.
type APIKeyRevoked struct {
	KeyID     string `json:"keyId"`
	PartnerID string `json:"partnerId"`
}

// EventType implements Payload.
func (APIKeyRevoked) EventType() string { return "apikey.revoked" }

func init() {
	// v1 → v2 adds passwordSealed; a v1 body is a valid v2 body as it is.
	Register[PortalUserCreated](2, func(old json.RawMessage) (json.RawMessage, error) { return old, nil })
	Register[PortalUserEmailClaimed](1)
	Register[PortalUserPartnerLinked](1)
	Register[PartnerRegistered](1)
	Register[PartnerApproved](1)
	Register[PartnerSuspended](1)
	Register[PartnerTierChanged](1)
	Register[APIKeyCreated](1)
	Register[APIKeyUpdated](1)
	Register[APIKeyRevoked](1)
}
