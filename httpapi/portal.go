// The partner portal session: login and me (/v1/partner/auth…).

package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

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

func (a *api) picture(ctx context.Context, u *projections.PortalUser) (*portalPicture, error) {
	p := &portalPicture{User: userBody{ID: u.UserID, Email: u.Email, CreatedAt: u.CreatedAt.UTC()}}
	if u.PartnerID == "" {
		return p, nil
	}
	pid := u.PartnerID
	p.User.PartnerID = &pid
	pr, err := projections.PartnerByID(ctx, a.DB, u.PartnerID)
	if err != nil {
		return nil, err
	}
	p.Partner = pr
	pk, env, err := projections.ActivePublishableKey(ctx, a.DB, u.PartnerID, a.Auth.cfg.Now())
	if err != nil {
		return nil, err
	}
	if pk != "" {
		p.PublishableKey, p.PublishableKeyEnvironment = &pk, &env
	}
	return p, nil
}

func (a *api) login(w http.ResponseWriter, r *http.Request) {
	// Limited before any work: each attempt costs a bcrypt check.
	if err := a.Auth.admitLoginFrom(w, r); err != nil {
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
	if err := a.Auth.admitLoginAs(w, r, in.Email); err != nil {
		writeError(w, r, err)
		return
	}
	u, err := projections.UserByEmail(r.Context(), a.DB, ledger.NormalizeEmail(in.Email))
	if err != nil {
		writeError(w, r, err)
		return
	}
	hash, userID := dummyHash, ""
	if u != nil {
		hash, userID = u.PasswordHash, u.UserID
	}
	if !ledger.CheckStoredPassword(a.MasterKey, userID, hash, in.Password) || u == nil {
		writeError(w, r, eventstore.Errorf(eventstore.KindUnauthorized, "INVALID_CREDENTIALS", "email or password is wrong"))
		return
	}
	a.Auth.loginSucceeded(r, in.Email)
	tok, exp, err := a.Auth.IssueToken(u.UserID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p, err := a.picture(r.Context(), u)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p.AccessToken, p.TokenType, p.ExpiresAt = tok, "Bearer", &exp
	p.ExpiresIn = int64(exp.Sub(a.Auth.cfg.Now()).Seconds())
	writeJSON(w, http.StatusOK, p)
}

func (a *api) me(w http.ResponseWriter, r *http.Request) {
	u, err := projections.UserByID(r.Context(), a.DB, accountPrincipal(r).UserID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if u == nil {
		writeError(w, r, errInvalidToken)
		return
	}
	p, err := a.picture(r.Context(), u)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}
