package httpapi

import (
	"bytes"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// The body the signature check buffered is the body the handler gets,
// byte for byte and without a second copy, whatever Content-Length said.
func TestBufferedBodyIsHandedOverOnce(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name          string
		size          int
		contentLength int64 // 0: the true length; -1: none sent
	}{
		{"small", 200, 0},
		{"no content length", 5000, -1},
		{"above the presize cap", presizeLimit*2 + 7, 0},
		{"at the limit", maxBody, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			body := bytes.Repeat([]byte("0123456789abcdef"), c.size/16+1)[:c.size]
			r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
			if c.contentLength != 0 {
				r.ContentLength = c.contentLength
			}
			signed, err := bufferBody(r)
			require.NoError(t, err)
			require.Equal(t, body, signed)
			got, err := readBody(r)
			require.NoError(t, err)
			require.Equal(t, body, got)
			require.Same(t, &signed[0], &got[0], "the handler reads the buffer the signature was checked on")
			again, err := readBody(r)
			require.NoError(t, err)
			require.Empty(t, again, "a body is read once")
		})
	}
}

// One byte over the limit is refused by whichever layer reads first.
func TestBodyOverTheLimitIsRefused(t *testing.T) {
	t.Parallel()
	body := make([]byte, maxBody+1)
	_, err := bufferBody(httptest.NewRequest("POST", "/", bytes.NewReader(body)))
	require.ErrorIs(t, err, errBodyTooLarge)
	_, err = readBody(httptest.NewRequest("POST", "/", bytes.NewReader(body)))
	require.ErrorIs(t, err, errBodyTooLarge)
}

// A buffered body still reads like the original to code that reads it as
// a stream, and readBody then takes only what is left.
func TestBufferedBodyReadsAsAStream(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/", bytes.NewReader([]byte("hello, world")))
	_, err := bufferBody(r)
	require.NoError(t, err)
	head := make([]byte, 7)
	_, err = io.ReadFull(r.Body, head)
	require.NoError(t, err)
	require.Equal(t, "hello, ", string(head))
	rest, err := readBody(r)
	require.NoError(t, err)
	require.Equal(t, "world", string(rest))
	n, err := r.Body.Read(head)
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
}
