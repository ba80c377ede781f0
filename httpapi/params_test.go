package httpapi

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A new route's parameter must be either an id the service mints or one
// the partner chooses: the edge check knows no third kind.
func TestEveryPathParameterHasARule(t *testing.T) {
	t.Parallel()
	for _, rt := range Routes() {
		for _, p := range pathParams(rt.Path) {
			require.True(t, p.minted != nil || partnerChosenParams[p.name], "%s %s: parameter %s has no rule", rt.Method, rt.Path, p.name)
		}
		require.Equal(t, strings.Count(rt.Path, "/:"), len(pathParams(rt.Path)), rt.Path)
	}
}

func TestMalformedAndMinted(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"\xff", "a\x00", "a\tb", "\u0085", "\x7f", strings.Repeat("x", 256)} {
		require.NotEmpty(t, malformed(v), "%q", v)
	}
	for _, v := range []string{"", "user-1", "Zoë ☃", "a b", strings.Repeat("x", 255)} {
		require.Empty(t, malformed(v), "%q", v)
	}
	require.True(t, isMinted("act_0123456789abcdef0123456789abcdef", "act_"))
	for _, v := range []string{"act_0123456789ABCDEF0123456789abcdef", "act_0123456789abcdef0123456789abcde", "txn_0123456789abcdef0123456789abcdef", "act_"} {
		require.False(t, isMinted(v, "act_"), v)
	}
}
