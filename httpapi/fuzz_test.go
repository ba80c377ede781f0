package httpapi

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const fuzzSecret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var fuzzNow = time.Unix(1_700_000_000, 0)

// FuzzAuth feeds arbitrary key, timestamp and signature headers, methods,
// paths and bodies to the HMAC verification path. It must never panic and
// must accept only the exact CONTRACT §2 signature of an in-window request.
func FuzzAuth(f *testing.F) {
	ts := strconv.FormatInt(fuzzNow.Unix(), 10)
	good := func(ts, method, path string, body []byte) string { return Sign(fuzzSecret, ts, method, path, body) }
	f.Add("sk_test_"+fuzzSecret, ts, good(ts, "GET", "/v1/partner/users?page=1&limit=5", nil), "GET", "/v1/partner/users?page=1&limit=5", []byte(nil))
	f.Add("pk_live_"+fuzzSecret, ts, good(ts, "POST", "/v1/partner/actions/submit", []byte(`{"a":1}`)), "POST", "/v1/partner/actions/submit", []byte(`{"a":1}`))
	f.Add("sk_test_x", "1700000300", good("1700000300", "POST", "/p", []byte("Zoë ☃")), "POST", "/p", []byte("Zoë ☃"))
	f.Add("", "1699999699", good("1699999699", "GET", "/", nil), "GET", "/", []byte{})
	f.Add("sk_live_", "+1700000000", good("+1700000000", "GET", "/", nil), "GET", "/", []byte{0xff, 0x00})
	f.Add("pk_test_ABC", " 1700000000", "ZZ", "get", "/v1/partner/users?b=2&a=1", []byte("\x00\x01"))
	f.Add("sk_test_"+fuzzSecret, ts, "", "DELETE", "", []byte("x"))
	f.Fuzz(func(t *testing.T, key, timestamp, signature, method, path string, body []byte) {
		if env, secret, ok := keyEnvironment(key); ok {
			require.Len(t, key, 8+64)
			require.Equal(t, secret, key[0] == 's')
			require.Contains(t, []string{"sandbox", "production"}, env)
		}
		got, err := verifySignature(timestamp, signature, method, path, body, fuzzSecret, fuzzNow)
		want := Sign(fuzzSecret, timestamp, method, path, body)
		if err != nil {
			require.Zero(t, got)
			if signature == want {
				// Only the timestamp may refuse a correct signature.
				require.ErrorIs(t, err, errTimestampRange)
			}
			return
		}
		require.Equal(t, want, signature, "a wrong signature was accepted")
		require.Equal(t, timestamp, strconv.FormatInt(got, 10))
		require.LessOrEqual(t, got-fuzzNow.Unix(), int64(300))
		require.GreaterOrEqual(t, got-fuzzNow.Unix(), int64(-300))
		// Any change to the signed material is refused.
		_, err = verifySignature(timestamp, signature, method, path, append(append([]byte{}, body...), ' '), fuzzSecret, fuzzNow)
		require.ErrorIs(t, err, errInvalidSignature)
		_, err = verifySignature(timestamp, signature, method, path+"x", body, fuzzSecret, fuzzNow)
		require.ErrorIs(t, err, errInvalidSignature)
	})
}

func TestSignMatchesContractExample(t *testing.T) {
	t.Parallel()
	// Independently derived: HMAC-SHA256 keyed with the secret's ASCII
	// bytes over "1700000000GET/v1/partner/users?page=1" + sha256("").
	sig := Sign(fuzzSecret, "1700000000", "GET", "/v1/partner/users?page=1", nil)
	require.Equal(t, "08192bf4faa90d55aad9630a7dd01b561d2562795ae682269bd3d351e7238469", sig) // computed with Python's hmac
	require.Equal(t, sig, Sign(fuzzSecret, "1700000000", "GET", "/v1/partner/users?page=1", []byte{}))
	require.NotEqual(t, sig, Sign(fuzzSecret, "1700000000", "GET", "/v1/partner/users?page=1&", nil))
	_, err := verifySignature("1700000000", sig, "GET", "/v1/partner/users?page=1", nil, fuzzSecret, fuzzNow)
	require.NoError(t, err)
	for _, skew := range []int64{300, -300} {
		ts := strconv.FormatInt(fuzzNow.Unix()+skew, 10)
		_, err := verifySignature(ts, Sign(fuzzSecret, ts, "GET", "/", nil), "GET", "/", nil, fuzzSecret, fuzzNow)
		require.NoError(t, err, skew)
	}
	for _, skew := range []int64{301, -301} {
		ts := strconv.FormatInt(fuzzNow.Unix()+skew, 10)
		_, err := verifySignature(ts, Sign(fuzzSecret, ts, "GET", "/", nil), "GET", "/", nil, fuzzSecret, fuzzNow)
		require.ErrorIs(t, err, errTimestampRange, skew)
	}
}
