package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/ledger"
	"github.com/sirgiving/ledger/projections"
)

// Partner is a partner created through the real flow, with one key pair
// of environment Env. Do and JSON sign with the secret key.
type Partner struct {
	Srv        *Server
	PartnerID  string
	Env        string
	KeyID      string
	PublicKey  string
	SecretKey  string
	HMACSecret string
	// UserID, Email, Password and Token are the owning portal user's.
	UserID   string
	Email    string
	Password string
	Token    string

	mu   sync.Mutex
	used map[string]bool // signatures already sent
}

// CreatePortalUser creates a portal user through the domain command and
// returns its id, email and password.
func (s *Server) CreatePortalUser(t testing.TB) (userID, email, password string) {
	t.Helper()
	email = "user-" + ledger.NewAccountID("t")[2:14] + "@example.com"
	password = "pw-" + ledger.NewAccountID("p")
	userID, res, err := s.Ledger.CreatePortalUser(context.Background(), events.Metadata{Actor: "test"}, email, password)
	require.NoError(t, err)
	s.WaitAccounts(t, res.Position)
	return userID, email, password
}

// WaitAccounts waits until the accounts read model reflects position.
func (s *Server) WaitAccounts(t testing.TB, position int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, projections.WaitFor(ctx, s.Pool, position, projections.AccountsName))
}

// Login logs a portal user in over HTTP and returns the access token.
func (s *Server) Login(t testing.TB, email, password string) string {
	t.Helper()
	var out struct {
		AccessToken string `json:"accessToken"`
	}
	code := s.PortalJSON(t, "", http.MethodPost, "/v1/partner/auth/login", map[string]string{"email": email, "password": password}, &out)
	require.Equal(t, http.StatusOK, code)
	require.NotEmpty(t, out.AccessToken)
	return out.AccessToken
}

// PortalJSON sends a JSON request with an optional bearer token and decodes
// the answer into out (if not nil); it returns the status code.
func (s *Server) PortalJSON(t testing.TB, token, method, path string, body, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(encodeBody(t, body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return decodeInto(t, resp, out)
}

// NewPartner runs the real onboarding flow: a portal user is created, logs
// in over HTTP and creates a key of env ("sandbox" or "production") with
// POST /v1/partner/keys; for production the partner is then approved, as
// an operator would with `ledgerctl partners approve`.
func (s *Server) NewPartner(t testing.TB, env string) *Partner {
	t.Helper()
	userID, email, password := s.CreatePortalUser(t)
	p := &Partner{Srv: s, Env: env, UserID: userID, Email: email, Password: password}
	p.Token = s.Login(t, email, password)
	p.keyFor(t)
	return p
}

// InEnvironment is the same partner, through a new key of env created by
// its portal user; for production the partner is approved.
func (p *Partner) InEnvironment(t testing.TB, env string) *Partner {
	t.Helper()
	q := &Partner{Srv: p.Srv, Env: env, UserID: p.UserID, Email: p.Email, Password: p.Password, Token: p.Token}
	q.keyFor(t)
	return q
}

// keyFor creates p's key of p.Env and, for production, approves the
// partner as an operator would with ledgerctl partners approve.
func (p *Partner) keyFor(t testing.TB) {
	t.Helper()
	p.CreateKey(t, "test "+p.Env)
	if p.Env == ledger.EnvProduction {
		res, err := p.Srv.Ledger.ApprovePartner(context.Background(), events.Metadata{Actor: "test"}, p.PartnerID)
		require.NoError(t, err)
		p.Srv.WaitAccounts(t, res.Position)
	}
}

// CreateKey creates a key of p.Env named name with POST /v1/partner/keys
// (the first key also creates the partner) and makes it p's key.
func (p *Partner) CreateKey(t testing.TB, name string) {
	t.Helper()
	var key struct {
		ID         string `json:"id"`
		PartnerID  string `json:"partnerId"`
		PublicKey  string `json:"publicKey"`
		SecretKey  string `json:"secretKey"`
		HMACSecret string `json:"hmacSecret"`
	}
	code := p.Srv.PortalJSON(t, p.Token, http.MethodPost, "/v1/partner/keys", map[string]string{"name": name, "environment": p.Env}, &key)
	require.Equal(t, http.StatusCreated, code)
	p.PartnerID, p.KeyID, p.PublicKey, p.SecretKey, p.HMACSecret = key.PartnerID, key.ID, key.PublicKey, key.SecretKey, key.HMACSecret
}

// Now is the clock the server authenticates with.
func (s *Server) Now() time.Time {
	if s.Config.Now != nil {
		return s.Config.Now()
	}
	return time.Now()
}

// SignedRequest builds a request to the server signed per CONTRACT §2 with
// key and hmacSecret at timestamp ts (Unix seconds).
func (s *Server) SignedRequest(t testing.TB, key, hmacSecret, method, pathWithQuery string, body []byte, ts int64) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+pathWithQuery, bytes.NewReader(body))
	require.NoError(t, err)
	stamp := strconv.FormatInt(ts, 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Partner-Key", key)
	req.Header.Set("X-Timestamp", stamp)
	req.Header.Set("X-Signature", httpapi.Sign(hmacSecret, stamp, method, pathWithQuery, body))
	return req
}

// Do sends a request signed with the partner's secret key. body may be nil,
// []byte or string (sent as is) or any value (sent as JSON).
func (p *Partner) Do(t testing.TB, method, pathWithQuery string, body any) *http.Response {
	t.Helper()
	return p.DoWith(t, p.SecretKey, method, pathWithQuery, body)
}

// DoWith sends a request signed with key (the partner's pk_ or sk_, or
// any other) and the partner's hmacSecret. Repeating an identical request
// is fine: each is signed at a distinct timestamp so none is a replay.
func (p *Partner) DoWith(t testing.TB, key, method, pathWithQuery string, body any) *http.Response {
	t.Helper()
	raw := encodeBody(t, body)
	// The server refuses a signature it has seen (replay), and identical
	// requests in one second sign identically: step the timestamp back
	// (still inside the ±300 s window) until the signature is fresh.
	ts := p.Srv.Now().Unix()
	p.mu.Lock()
	if p.used == nil {
		p.used = map[string]bool{}
	}
	for i := 0; i < 250 && p.used[httpapi.Sign(p.HMACSecret, strconv.FormatInt(ts, 10), method, pathWithQuery, raw)]; i++ {
		ts--
	}
	p.used[httpapi.Sign(p.HMACSecret, strconv.FormatInt(ts, 10), method, pathWithQuery, raw)] = true
	p.mu.Unlock()
	req := p.Srv.SignedRequest(t, key, p.HMACSecret, method, pathWithQuery, raw, ts)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// JSON sends a signed request (secret key) and decodes the answer into out
// (if not nil); it returns the status code.
func (p *Partner) JSON(t testing.TB, method, pathWithQuery string, body, out any) int {
	t.Helper()
	return decodeInto(t, p.Do(t, method, pathWithQuery, body), out)
}

// Widget sends a widget request with the publishable key.
func (p *Partner) Widget(t testing.TB, method, path string, body any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, p.Srv.URL+path, bytes.NewReader(encodeBody(t, body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Partner-Key", p.PublicKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

func encodeBody(t testing.TB, body any) []byte {
	switch b := body.(type) {
	case nil:
		return nil
	case []byte:
		return b
	case string:
		return []byte(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		return raw
	}
}

func decodeInto(t testing.TB, resp *http.Response, out any) int {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		require.NoError(t, json.Unmarshal(raw, out), "body: %s", raw)
	}
	return resp.StatusCode
}
