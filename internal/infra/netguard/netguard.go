// Package netguard decides which network addresses outbound webhook
// requests may reach, so that a partner-supplied URL cannot be used to probe
// or attack the service's own network (SSRF): private, loopback,
// link-local, cloud metadata and other special-purpose addresses are
// refused. The check runs twice: on the DNS answer when a URL is registered,
// and, decisively, on the address actually connected to (Control), because a
// DNS answer can change between the check and the connection.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Policy says which addresses are reachable.
type Policy struct {
	// AllowLoopback admits 127.0.0.0/8 and ::1, for development and tests
	// only. Every other special-purpose range stays refused.
	AllowLoopback bool
}

// ErrBlocked is wrapped by every refusal.
var ErrBlocked = errors.New("address not allowed for webhooks")

var blocked = mustPrefixes(
	"0.0.0.0/8",       // "this network"
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // carrier-grade NAT (and Alibaba metadata 100.100.100.200)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, including 169.254.169.254 metadata
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation
	"203.0.113.0/24",  // documentation
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, broadcast
	"::/96",           // IPv4-compatible (deprecated), "::" and "::1" included
	"::ffff:0:0:0/96", // IPv4-translated (SIIT)
	"64:ff9b:1::/48",  // local-use NAT64
	"100::/64",        // discard
	"2001::/23",       // IETF protocol assignments (Teredo, ORCHID...)
	"2001:db8::/32",   // documentation
	"fc00::/7",        // unique local, including fd00:ec2::254 metadata
	"fe80::/10",       // link-local
	"fec0::/10",       // deprecated site-local
	"ff00::/8",        // multicast
)

var loopback = mustPrefixes("127.0.0.0/8", "::1/128")

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Check returns nil if ip may be connected to, or an error wrapping
// ErrBlocked that says why not.
func (p Policy) Check(ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrBlocked)
	}
	ip = ip.Unmap().WithZone("")
	// Addresses that embed an IPv4 address are judged by it as well.
	if ip.Is6() {
		b := ip.As16()
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(ip): // NAT64
			if err := p.Check(netip.AddrFrom4([4]byte(b[12:16]))); err != nil {
				return err
			}
		case netip.MustParsePrefix("2002::/16").Contains(ip): // 6to4
			if err := p.Check(netip.AddrFrom4([4]byte(b[2:6]))); err != nil {
				return err
			}
		}
	}
	if p.AllowLoopback {
		for _, l := range loopback {
			if l.Contains(ip) {
				return nil
			}
		}
	}
	for _, b := range blocked {
		if b.Contains(ip) {
			return fmt.Errorf("%w: %s is in %s", ErrBlocked, ip, b)
		}
	}
	return nil
}

// Control is a net.Dialer Control hook that refuses to connect to a
// blocked address. It sees the address after DNS resolution, immediately
// before connect(2), so it holds even if DNS answers differently than it
// did when the URL was checked.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparseable address %q", ErrBlocked, address)
	}
	return p.Check(ap.Addr())
}

// Dialer returns a dialer that only connects to allowed addresses.
func (p Policy) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: p.Control}
}

// RefuseHost is CheckHost as a verdict: why host is refused ("" when every
// address it resolves to is allowed), or an error when resolution failed.
func (p Policy) RefuseHost(ctx context.Context, host string) (string, error) {
	err := p.CheckHost(ctx, host)
	if errors.Is(err, ErrBlocked) {
		return err.Error(), nil
	}
	return "", err
}

// CheckHost resolves host (an IP literal or a DNS name) and refuses it if
// it does not resolve or any address it resolves to is blocked.
func (p Policy) CheckHost(ctx context.Context, host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.Check(ip)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%w: host %q does not resolve", ErrBlocked, host)
	}
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			return err
		}
	}
	return nil
}
