package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// SignatureWindow is how far X-Timestamp may be from the server clock, in
// either direction (CONTRACT §2).
const SignatureWindow = 300 * time.Second

// Sign returns X-Signature for a request (CONTRACT §2): lowercase hex
// HMAC-SHA256, keyed with the hmacSecret string's own bytes, over
// timestamp + METHOD + pathWithQuery + lowercase hex SHA-256(body).
func Sign(hmacSecret, timestamp, method, pathWithQuery string, body []byte) string {
	sum := sha256.Sum256(body)
	mac := hmac.New(sha256.New, []byte(hmacSecret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte(method))
	mac.Write([]byte(pathWithQuery))
	var hexSum [64]byte
	hex.Encode(hexSum[:], sum[:])
	mac.Write(hexSum[:])
	return hex.EncodeToString(mac.Sum(nil))
}

func authErr(kind eventstore.Kind, code, msg string) *eventstore.Error {
	return &eventstore.Error{Kind: kind, Code: code, Message: msg}
}

var (
	errMissingCredentials = authErr(eventstore.KindUnauthorized, "MISSING_CREDENTIALS", "this endpoint needs credentials; see the authentication section of the reference")
	errInvalidKey         = authErr(eventstore.KindUnauthorized, "INVALID_KEY", "the API key is unknown, inactive, expired or revoked")
	errInvalidSignature   = authErr(eventstore.KindUnauthorized, "INVALID_SIGNATURE", "X-Signature does not match the request")
	errTimestampRange     = authErr(eventstore.KindUnauthorized, "TIMESTAMP_OUT_OF_RANGE", "X-Timestamp must be Unix seconds within 300 s of the server clock")
	errReplayed           = authErr(eventstore.KindUnauthorized, "REPLAYED_REQUEST", "this signature was already used; sign each request afresh")
	errInvalidToken       = authErr(eventstore.KindUnauthorized, "INVALID_TOKEN", "the bearer token is invalid or expired; log in again")
	errSuspended          = authErr(eventstore.KindForbidden, "PARTNER_SUSPENDED", "this partner is suspended")
	errNotApproved        = authErr(eventstore.KindForbidden, "PARTNER_NOT_APPROVED", "production keys work once SIR Giving approves the partner; use a sandbox key meanwhile")
	errSecretRequired     = authErr(eventstore.KindForbidden, "SECRET_KEY_REQUIRED", "this endpoint needs a secret key (sk_…); publishable keys may only read")
	errPublishableNeeded  = authErr(eventstore.KindForbidden, "PUBLISHABLE_KEY_REQUIRED", "widget endpoints take a publishable key (pk_…); never send a secret key from a browser")
)

// parseTimestamp accepts 1 to 12 ASCII digits: Unix seconds, nothing else
// (no sign, no spaces, no fraction).
func parseTimestamp(ts string) (int64, bool) {
	if len(ts) == 0 || len(ts) > 12 {
		return 0, false
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(ts, 10, 64)
	return v, err == nil
}

// verifySignature checks a request's timestamp and signature against
// hmacSecret at now. It returns the timestamp on success. It is the HMAC
// verification path FuzzAuth exercises; it does no I/O.
func verifySignature(timestamp, signature, method, pathWithQuery string, body []byte, hmacSecret string, now time.Time) (int64, error) {
	ts, ok := parseTimestamp(timestamp)
	if !ok {
		return 0, errTimestampRange
	}
	skew := now.Unix() - ts
	if skew > int64(SignatureWindow/time.Second) || skew < -int64(SignatureWindow/time.Second) {
		return 0, errTimestampRange
	}
	want := Sign(hmacSecret, timestamp, method, pathWithQuery, body)
	if len(signature) != len(want) || !hmac.Equal([]byte(want), []byte(signature)) {
		return 0, errInvalidSignature
	}
	return ts, nil
}
