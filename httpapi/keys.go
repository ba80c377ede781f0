// API keys, managed from the portal (/v1/partner/keys…).

package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

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

func (a *api) createKey(w http.ResponseWriter, r *http.Request) {
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
	k, res, err := a.Ledger.CreateAPIKey(r.Context(), accountsMeta(r), accountPrincipal(r).UserID, in.Name, in.Environment, in.ExpiresAt)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The secrets are shown only now, so answer 201 even if the read model
	// lags; the key then starts working a moment later.
	if err := projections.WaitPosition(r.Context(), a.DB, res.Position, a.ReadWait, projections.AccountsName); err != nil {
		loggerFrom(r.Context()).Warn("accounts read model lagging after key creation", "err", err)
	}
	writeJSON(w, http.StatusCreated, createdKey{
		ID: k.KeyID, PartnerID: k.PartnerID, Name: k.Name, Environment: k.Environment,
		PublicKey: k.PublicKey, SecretKey: k.SecretKey, HMACSecret: k.HMACSecret,
		IsActive: true, ExpiresAt: k.ExpiresAt, CreatedAt: k.CreatedAt.UTC(),
	})
}

func (a *api) listKeys(w http.ResponseWriter, r *http.Request) {
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
	keys, total, err := projections.ListKeys(r.Context(), a.DB, pid, pg.Offset(), pg.Limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, pg, total, keys)
}

func (a *api) partnerInfo(w http.ResponseWriter, r *http.Request) {
	pid := accountPrincipal(r).PartnerID
	var pr *projections.PartnerRecord
	var err error
	if pid != "" {
		if pr, err = projections.PartnerByID(r.Context(), a.DB, pid); err != nil {
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

func (a *api) readKey(ctx context.Context, pid, id string) (*projections.KeyRecord, error) {
	if pid == "" {
		return nil, errKeyNotFound
	}
	k, err := projections.KeyRecordByID(ctx, a.DB, pid, id)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, errKeyNotFound
	}
	return k, nil
}

func (a *api) getKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.readKey(r.Context(), accountPrincipal(r).PartnerID, mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

func (a *api) patchKey(w http.ResponseWriter, r *http.Request) {
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
	res, err := a.Ledger.UpdateAPIKey(r.Context(), accountsMeta(r), pid, id, patch)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitPosition(r.Context(), a.DB, res.Position, a.ReadWait, projections.AccountsName); err != nil {
		writeError(w, r, err)
		return
	}
	k, err := a.readKey(r.Context(), pid, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}

func (a *api) deleteKey(w http.ResponseWriter, r *http.Request) {
	pid, id := accountPrincipal(r).PartnerID, mux.Vars(r)["id"]
	if pid == "" {
		writeError(w, r, errKeyNotFound)
		return
	}
	res, err := a.Ledger.RevokeAPIKey(r.Context(), accountsMeta(r), pid, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := projections.WaitPosition(r.Context(), a.DB, res.Position, a.ReadWait, projections.AccountsName); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
