package netguard

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	for addr, blocked := range map[string]bool{
		"93.184.216.34":        false, // public
		"2606:2800:220:1::1":   false,
		"127.0.0.1":            true,
		"10.1.2.3":             true,
		"169.254.169.254":      true, // cloud metadata
		"100.100.100.200":      true,
		"::1":                  true,
		"::":                   true,
		"::ffff:127.0.0.1":     true, // IPv4-mapped
		"::7f00:1":             true, // IPv4-compatible 127.0.0.1
		"::ffff:0:7f00:1":      true, // IPv4-translated
		"64:ff9b::a9fe:a9fe":   true, // NAT64 of 169.254.169.254
		"64:ff9b::5db8:d822":   false,
		"2002:7f00:1::":        true, // 6to4 of 127.0.0.1
		"fd00:ec2::254":        true,
		"fe80::1":              true,
		"fe80::1%eth0":         true,
		"2001:db8::1":          true,
		"ff02::1":              true,
		"0.0.0.0":              true,
		"255.255.255.255":      true,
		"64:ff9b:1::a":         true,
		"2001:0:4136:e378::1":  true, // Teredo
		"::ffff:93.184.216.34": false,
		"64:ff9b::0a00:0001":   true, // NAT64 of 10.0.0.1
		"2002:5db8:d822::1":    false,
	} {
		err := Policy{}.Check(netip.MustParseAddr(addr))
		require.Equal(t, blocked, errors.Is(err, ErrBlocked), "%s: %v", addr, err)
	}
	require.NoError(t, Policy{AllowLoopback: true}.Check(netip.MustParseAddr("127.0.0.1")))
	require.NoError(t, Policy{AllowLoopback: true}.Check(netip.MustParseAddr("::1")))
	require.Error(t, Policy{AllowLoopback: true}.Check(netip.MustParseAddr("10.0.0.1")))
	require.Error(t, Policy{}.Check(netip.Addr{}))
}
