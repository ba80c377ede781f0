// Package webhooks delivers the webhook fan-out's deliveries: a
// dispatcher claims due deliveries from PostgreSQL (FOR UPDATE SKIP
// LOCKED, so several processes share the work), signs and POSTs them
// through an SSRF-safe client, records every attempt, retries on a
// schedule that survives restarts, and disables endpoints that fail for
// days. It also answers the delivery-log and health queries.
package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// Header names and values of every delivery (CONTRACT §6).
const (
	HeaderTimestamp = "X-SIR-Timestamp"
	HeaderSignature = "X-SIR-Signature"
	UserAgent       = "SIRGiving-Webhooks/1.0"
)

// Sign returns the X-SIR-Signature value for body sent at Unix time ts:
// "sha256=" + lowercase hex HMAC-SHA256 keyed with the whole secret string
// (whsec_ prefix included) over ts + "." + body.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify is what a receiver does: recompute the signature from the secret,
// the X-SIR-Timestamp header and the raw body, and compare in constant time.
func Verify(secret, timestamp, signature string, body []byte) bool {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature))
}
