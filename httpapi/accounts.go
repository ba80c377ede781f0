package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// AccountsDeps are the collaborators of the portal endpoints (login, me)
// and the key endpoints.
type AccountsDeps struct {
	Ledger    *ledger.Service
	DB        AuthDB
	Auth      *KeyAuth
	MasterKey []byte
	// ReadWait bounds waiting for the accounts read model after a write.
	ReadWait time.Duration
}

// AccountHandlers implements the eight portal and key endpoints.
func AccountHandlers(d AccountsDeps) map[RouteKey]http.HandlerFunc {
	if d.ReadWait <= 0 {
		d.ReadWait = 2 * time.Second
	}
	h := &accountHandlers{d: d}
	return map[RouteKey]http.HandlerFunc{
		{http.MethodPost, "/v1/partner/auth/login"}:       h.login,
		{http.MethodGet, "/v1/partner/auth/me"}:           h.me,
		{http.MethodPost, "/v1/partner/keys"}:             h.createKey,
		{http.MethodGet, "/v1/partner/keys"}:              h.listKeys,
		{http.MethodGet, "/v1/partner/keys/partner-info"}: h.partnerInfo,
		{http.MethodGet, "/v1/partner/keys/:id"}:          h.getKey,
		{http.MethodPatch, "/v1/partner/keys/:id"}:        h.patchKey,
		{http.MethodDelete, "/v1/partner/keys/:id"}:       h.deleteKey,
	}
}

type accountHandlers struct{ d AccountsDeps }

// dummyHash keeps a login for an unknown email as slow as a wrong password.
var dummyHash, _ = ledger.HashPassword("not-a-real-password")

type userBody struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	PartnerID *string   `json:"partnerId"`
	CreatedAt time.Time `json:"createdAt"`
}

type portalPicture struct {
	AccessToken    string                     `json:"accessToken,omitempty"`
	TokenType      string                     `json:"tokenType,omitempty"`
	ExpiresIn      int64                      `json:"expiresIn,omitempty"`
	ExpiresAt      *time.Time                 `json:"expiresAt,omitempty"`
	User           userBody                   `json:"user"`
	Partner        *projections.PartnerRecord `json:"partner"`
	PublishableKey *string                    `json:"publishableKey"`
	// PublishableKeyEnvironment is the environment of PublishableKey.
	PublishableKeyEnvironment *string `json:"publishableKeyEnvironment"`
}

func (h *accountHandlers) picture(ctx context.Context, u *projections.PortalUser) (*portalPicture, error) {
	p := &portalPicture{User: userBody{ID: u.UserID, Email: u.Email, CreatedAt: u.CreatedAt.UTC()}}
	if u.PartnerID == "" {
		return p, nil
	}
	pid := u.PartnerID
	p.User.PartnerID = &pid
	pr, err := projections.PartnerByID(ctx, h.d.DB, u.PartnerID)
	if err != nil {
		return nil, err
	}
	p.Partner = pr
	pk, env, err := projections.ActivePublishableKey(ctx, h.d.DB, u.PartnerID, h.d.Auth.cfg.Now())
	if err != nil {
		return nil, err
	}
	if pk != "" {
		p.PublishableKey, p.PublishableKeyEnvironment = &pk, &env
	}
	return p, nil
}

func (h *accountHandlers) login(w http.ResponseWriter, r *http.Request) {
	// Limited before any work: each attempt costs a bcrypt check.
	if err := h.d.Auth.admitLoginFrom(w, r); err != nil {
		writeError(w, r, err)
		return
	}
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	if in.Email == "" || in.Password == "" {
		writeError(w, r, eventstore.Invalid("email and password are required",
			eventstore.FieldIssue{Field: "email", Issue: "required"}, eventstore.FieldIssue{Field: "password", Issue: "required"}))
		return
	}
	if err := h.d.Auth.admitLoginAs(w, in.Email); err != nil {
		writeError(w, r, err)
		return
	}
	u, err := projections.UserByEmail(r.Context(), h.d.DB, in.Email)
	if err != nil {
		writeError(w, r, err)
		return
	}
	hash, userID := dummyHash, ""
	if u != nil {
		hash, userID = u.PasswordHash, u.UserID
	}
	if !ledger.CheckStoredPassword(h.d.MasterKey, userID, hash, in.Password) || u == nil {
		writeError(w, r, eventstore.Errorf(eventstore.KindUnauthorized, "INVALID_CREDENTIALS", "email or password is wrong"))
		return
	}
	h.d.Auth.loginSucceeded(in.Email)
	tok, exp, err := h.d.Auth.IssueToken(u.UserID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p, err := h.picture(r.Context(), u)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p.AccessToken, p.TokenType, p.ExpiresAt = tok, "Bearer", &exp
	p.ExpiresIn = int64(exp.Sub(h.d.Auth.cfg.Now()).Seconds())
	writeJSON(w, http.StatusOK, p)
}

func accountPrincipal(r *http.Request) *Principal {
	p, _ := PrincipalFrom(r.Context())
	if p == nil {
		return &Principal{}
	}
	return p
}

func (h *accountHandlers) me(w http.ResponseWriter, r *http.Request) {
	u, err := projections.UserByID(r.Context(), h.d.DB, accountPrincipal(r).UserID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if u == nil {
		writeError(w, r, errInvalidToken)
		return
	}
	p, err := h.picture(r.Context(), u)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func accountsMeta(r *http.Request) events.Metadata {
	m := events.Metadata{RequestID: requestIDFrom(r.Context())}
	if p, ok := PrincipalFrom(r.Context()); ok {
		switch {
		case p.UserID != "":
			m.Actor = "user:" + p.UserID
		case p.KeyID != "":
			m.Actor = "key:" + p.KeyID
		}
	}
	return m
}

type createdKey struct {
	ID          string     `json:"id"`
	PartnerID   string     `json:"partnerId"`
	Name        string     `json:"name"`
	Environment string     `json:"environment"`
	PublicKey   string     `json:"publicKey"`
	SecretKey   string     `json:"secretKey"`
	HMACSecret  string     `json:"hmacSecret"`
	IsActive    bool       `json:"isActive"`
	ExpiresAt   *time.Time `json:"expiresAt"`
	LastUsedAt  *time.Time `json:"lastUsedAt"`
	CreatedAt   time.Time  `json:"createdAt"`
}

func (h *accountHandlers) createKey(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name        string     `json:"name"`
		Environment string     `json:"environment"`
		ExpiresAt   *time.Time `json:"expiresAt"`
	}
	if _, err := decodeJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	if in.ExpiresAt != nil {
		t := in.ExpiresAt.UTC()
		in.ExpiresAt = &t
	}
	k, res, err := h.d.Ledger.CreateAPIKey(r.Context(), accountsMeta(r), accountPrincipal(r).UserID, in.Name, in.Environment, in.ExpiresAt)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The secrets are shown only now, so answer 201 even if the read model
	// lags; the key then starts working a moment later.
	if err := projections.WaitPosition(r.Context(), h.d.DB, res.Position, h.d.ReadWait, projections.AccountsName); err != nil {
		loggerFrom(r.Context()).Warn("accounts read model lagging after key creation", "err", err)
	}
	writeJSON(w, http.StatusCreated, createdKey{
		ID: k.KeyID, PartnerID: k.PartnerID, Name: k.Name, Environment: k.Environment,
		PublicKey: k.PublicKey, SecretKey: k.SecretKey, HMACSecret: k.HMACSecret,
		IsActive: true, ExpiresAt: k.ExpiresAt, CreatedAt: k.CreatedAt.UTC(),
	})
}

func (h *accountHandlers) listKeys(w http.ResponseWriter, r *http.Request) {
	pg, err := parsePage(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	pid := accountPrincipal(r).PartnerID
	if pid == "" {
		writeList[projections.KeyRecord](w, pg, 0, nil)
		return
	}
	keys, total, err := projections.ListKeys(r.Context(), h.d.DB, pid, pg.Offset(), pg.Limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, pg, total, keys)
}

func (h *accountHandlers) partnerInfo(w http.ResponseWriter, r *http.Request) {
	pid := accountPrincipal(r).PartnerID
	var pr *projections.PartnerRecord
	var err error
	if pid != "" {
		if pr, err = projections.PartnerByID(r.Context(), h.d.DB, pid); err != nil {
			writeError(w, r, err)
			return
		}
	}
	if pr == nil {
		writeError(w, r, eventstore.Errorf(eventstore.KindNotFound, "PARTNER_NOT_FOUND", "you have no partner yet: create your first API key"))
		return
	}
	writeJSON(w, http.StatusOK, pr)
}

var errKeyNotFound = eventstore.Errorf(eventstore.KindNotFound, "KEY_NOT_FOUND", "no such API key")

func (h *accountHandlers) readKey(ctx context.Context, pid, id string) (*projections.KeyRecord, error) {
	if pid == "" {
		return nil, errKeyNotFound
	}
	k, err := projections.KeyRecordByID(ctx, h.d.DB, pid, id)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, errKeyNotFound
	}
	return k, nil
}

func (h *accountHandlers) getKey(w http.ResponseWriter, r *http.Request) {
	k, err := h.readKey(r.Context(), accountPrincipal(r).PartnerID, mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

func (h *accountHandlers) patchKey(w http.ResponseWriter, r *http.Request) {
	var raw map[string]json.RawMessage
	if _, err := decodeJSON(r, &raw); err != nil {
		writeError(w, r, err)
		return
	}
	var patch ledger.KeyPatch
	var issues []eventstore.FieldIssue
	for field, v := range raw {
		isNull := bytes.Equal(bytes.TrimSpace(v), []byte("null"))
		switch field {
		case "name":
			var s string
			if isNull || json.Unmarshal(v, &s) != nil {
				issues = append(issues, eventstore.FieldIssue{Field: "name", Issue: "must be a string"})
			} else {
				patch.Name = &s
			}
		case "isActive":
			var b bool
			if isNull || json.Unmarshal(v, &b) != nil {
				issues = append(issues, eventstore.FieldIssue{Field: "isActive", Issue: "must be a boolean"})
			} else {
				patch.IsActive = &b
			}
		case "expiresAt":
			if isNull {
				patch.ClearExpiry = true
				continue
			}
			var t time.Time
			if json.Unmarshal(v, &t) != nil {
				issues = append(issues, eventstore.FieldIssue{Field: "expiresAt", Issue: "must be an RFC 3339 time or null"})
			} else {
				t = t.UTC()
				patch.ExpiresAt = &t
			}
		default:
			issues = append(issues, eventstore.FieldIssue{Field: field, Issue: "unknown field; PATCH accepts name, isActive, expiresAt"})
		}
	}
	if len(issues) > 0 {
		writeError(w, r, eventstore.Invalid("invalid key update", issues...))
		return
	}
	pid, id := accountPrincipal(r).PartnerID, mux.Vars(r)["id"]
	if pid == "" {
		writeError(w, r, errKeyNotFound)
		return
	}
	res, err := h.d.Ledger.UpdateAPIKey(r.Context(), accountsMeta(r), pid, id, patch)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitPosition(r.Context(), h.d.DB, res.Position, h.d.ReadWait, projections.AccountsName); err != nil {
		writeError(w, r, err)
		return
	}
	k, err := h.readKey(r.Context(), pid, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

func (h *accountHandlers) deleteKey(w http.ResponseWriter, r *http.Request) {
	pid, id := accountPrincipal(r).PartnerID, mux.Vars(r)["id"]
	if pid == "" {
		writeError(w, r, errKeyNotFound)
		return
	}
	res, err := h.d.Ledger.RevokeAPIKey(r.Context(), accountsMeta(r), pid, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitPosition(r.Context(), h.d.DB, res.Position, h.d.ReadWait, projections.AccountsName); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
