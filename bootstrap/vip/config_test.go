package vip

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var (
	selfA = netip.MustParseAddr("10.77.0.1")
	peerB = netip.MustParseAddr("10.77.0.2")
)

// TestCheck: what Validate finds without looking at the node. Each case
// names a fragment its error must contain.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        Config
		self, peer netip.Addr
		want       []string // fragments, each in one of the errors; none: valid
	}{
		{"ok", Config{Address: netip.MustParsePrefix("10.77.0.11/24")}, selfA, peerB, nil},
		{"ok named", Config{Address: netip.MustParsePrefix("10.77.0.11/24"), Interface: "eth0"}, selfA, peerB, nil},
		{"ok IPv6", Config{Address: netip.MustParsePrefix("fd77::11/64")}, netip.MustParseAddr("fd77::1"), netip.MustParseAddr("fd77::2"), nil},
		{"missing", Config{}, selfA, peerB, []string{"address is required"}},
		{"mapped", Config{Address: netip.MustParsePrefix("::ffff:10.77.0.11/120")}, selfA, peerB, []string{"IPv4-mapped", "10.77.0.11/24"}},
		{"loopback", Config{Address: netip.MustParsePrefix("127.0.0.5/8")}, selfA, peerB, []string{"loopback"}},
		{"multicast", Config{Address: netip.MustParsePrefix("224.0.0.5/24")}, selfA, peerB, []string{"multicast"}},
		{"link-local v4", Config{Address: netip.MustParsePrefix("169.254.1.1/16")}, selfA, peerB, []string{"link-local"}},
		{"link-local v6", Config{Address: netip.MustParsePrefix("fe80::5/64")}, selfA, peerB, []string{"link-local"}},
		{"unspecified", Config{Address: netip.MustParsePrefix("0.0.0.0/0")}, selfA, peerB, []string{"unspecified"}},
		{"limited broadcast", Config{Address: netip.MustParsePrefix("255.255.255.255/24")}, selfA, peerB, []string{"broadcast"}},
		{"host route", Config{Address: netip.MustParsePrefix("10.77.0.11/32")}, selfA, peerB, []string{"/32 is not a site subnet"}},
		{"point-to-point", Config{Address: netip.MustParsePrefix("10.77.0.11/31")}, selfA, peerB, []string{"/31 is not a site subnet"}},
		{"v6 host route", Config{Address: netip.MustParsePrefix("fd77::11/128")}, netip.MustParseAddr("fd77::1"), netip.MustParseAddr("fd77::2"), []string{"/128 is not a site subnet"}},
		{"network address", Config{Address: netip.MustParsePrefix("10.77.0.0/24")}, selfA, peerB, []string{"network or broadcast"}},
		{"subnet broadcast", Config{Address: netip.MustParsePrefix("10.77.0.255/24")}, selfA, peerB, []string{"network or broadcast"}},
		{"own address", Config{Address: netip.MustParsePrefix("10.77.0.1/24")}, selfA, peerB, []string{"this node's own address"}},
		{"peer's address", Config{Address: netip.MustParsePrefix("10.77.0.2/24")}, selfA, peerB, []string{"the peer's address"}},
		{"family", Config{Address: netip.MustParsePrefix("fd77::11/64")}, selfA, peerB, []string{"same IP family as this node's", "same IP family as the peer's"}},
		{"other subnet", Config{Address: netip.MustParsePrefix("10.78.0.11/24")}, selfA, peerB, []string{"node.address) 10.77.0.1 is outside its subnet 10.78.0.0/24", "peer.address) 10.77.0.2 is outside"}},
		{"peer elsewhere", Config{Address: netip.MustParsePrefix("10.77.0.11/24")}, selfA, netip.MustParseAddr("10.78.0.2"), []string{"peer.address) 10.78.0.2 is outside its subnet 10.77.0.0/24"}},
		{"no addresses", Config{Address: netip.MustParsePrefix("10.77.0.11/24")}, netip.Addr{}, netip.Addr{}, []string{"own address (node.address) is required", "peer's address (peer.address) is required"}},
		{"bad interface name", Config{Address: netip.MustParsePrefix("10.77.0.11/24"), Interface: "eth0/../x"}, selfA, peerB, []string{"is not an interface name"}},
		{"long interface name", Config{Address: netip.MustParsePrefix("10.77.0.11/24"), Interface: "a-very-long-ifname"}, selfA, peerB, []string{"is not an interface name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, errors.Join(tc.cfg.check(tc.self, tc.peer)...), tc.want)
		})
	}
}

// checkErrs says whether err holds every fragment of want (nil: no error).
func checkErrs(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, "vip: ") {
			t.Errorf("error line %q does not start with vip:", line)
		}
	}
}

// TestValidateOnNode: what Validate finds on a node (node a of a site).
func TestValidateOnNode(t *testing.T) {
	s := newSite(t)
	v4 := netip.MustParsePrefix("10.77.0.11/24")
	for _, tc := range []struct {
		name string
		cfg  Config
		self netip.Addr
		want []string
	}{
		{"found by the node's address", Config{Address: v4}, selfA, nil},
		{"named", Config{Address: v4, Interface: "eth0"}, selfA, nil},
		{"no such interface", Config{Address: v4, Interface: "nope0"}, selfA, []string{"interface nope0 does not exist"}},
		{"node address on no interface", Config{Address: v4}, netip.MustParseAddr("10.77.0.5"), []string{"no interface holds the node's address 10.77.0.5"}},
		{"loopback interface", Config{Address: v4, Interface: "lo"}, selfA, []string{"interface lo has no Ethernet address", "in none of the subnets of lo (its addresses: 127.0.0.1/8)"}},
		{"prefix length differs", Config{Address: netip.MustParsePrefix("10.77.0.11/16")}, selfA, []string{"prefix length /16 differs from the subnet 10.77.0.0/24 of eth0's address 10.77.0.1/24: write 10.77.0.11/24"}},
		{"IPv6 on a node without", Config{Address: netip.MustParsePrefix("fd78::11/64"), Interface: "eth0"}, netip.MustParseAddr("fd78::1"), []string{"in none of the subnets of eth0 (its addresses: fd77::1/64, fe80::"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := peerB
			if tc.self.Is6() {
				peer = netip.MustParseAddr("fd78::2")
			}
			var err error
			s.in(t, "a", func() error {
				err = tc.cfg.Validate(tc.self, peer)
				return nil
			})
			checkErrs(t, err, tc.want)
		})
	}
	// The VIP itself, left on the interface, is not taken for the subnet.
	s.ip(t, "-n", s.ns("a"), "addr", "add", "10.79.0.11/24", "dev", "eth0")
	var err error
	s.in(t, "a", func() error {
		err = Config{Address: netip.MustParsePrefix("10.79.0.11/24"), Interface: "eth0"}.Validate(netip.MustParseAddr("10.79.0.1"), netip.MustParseAddr("10.79.0.2"))
		return nil
	})
	checkErrs(t, err, []string{"10.79.0.11/24 is in none of the subnets of eth0 (its addresses: 10.77.0.1/24)"})
}

// TestBadInput: errors, never panics, and nothing changed.
func TestBadInput(t *testing.T) {
	if _, err := New(Config{}, selfA, nil); err == nil || !strings.Contains(err.Error(), "vip: no address configured") {
		t.Errorf("New with no address: %v", err)
	}
	if _, err := New(Config{Address: netip.MustParsePrefix("127.0.0.5/8")}, selfA, nil); err == nil {
		t.Errorf("New with a loopback address: no error")
	}
	if _, err := New(Config{Address: netip.MustParsePrefix("192.0.2.10/24"), Interface: "nope0"}, selfA, nil); err == nil || !strings.Contains(err.Error(), "interface nope0 does not exist") {
		t.Errorf("New on a missing interface: %v", err)
	}
	if _, err := New(Config{Address: netip.MustParsePrefix("192.0.2.10/24")}, netip.Addr{}, nil); err == nil || !strings.Contains(err.Error(), "no interface named") {
		t.Errorf("New with neither interface nor node address: %v", err)
	}

	var nilVIP *VIP
	ctx := context.Background()
	for name, err := range map[string]error{
		"Acquire": nilVIP.Acquire(ctx), "Release": nilVIP.Release(ctx), "Announce": nilVIP.Announce(ctx),
	} {
		if err == nil || !strings.Contains(err.Error(), name+" on a nil VIP") {
			t.Errorf("%s on nil: %v", name, err)
		}
	}
	if _, err := nilVIP.Held(); err == nil {
		t.Errorf("Held on nil: no error")
	}
	if err := nilVIP.Close(); err != nil {
		t.Errorf("Close on nil: %v", err)
	}
	if nilVIP.Address().IsValid() || nilVIP.Interface() != "" {
		t.Errorf("nil VIP has an address or an interface")
	}

	// On the loopback interface of this namespace: New only looks, and a
	// done context stops Acquire before it changes anything.
	v, err := New(Config{Address: netip.MustParsePrefix("192.0.2.10/24"), Interface: "lo"}, selfA, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := v.Acquire(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a done context: %v", err)
	}
	if err := v.Announce(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Announce with a done context: %v", err)
	}
	if held, err := v.Held(); err != nil || held {
		t.Errorf("Held = %v, %v; want false, nil", held, err)
	}
	//lint:ignore SA1012 a nil context must not panic
	if err := v.Release(nil); err != nil {
		t.Errorf("Release of an address not held, nil context: %v", err)
	}
	if err := v.Announce(ctx); err == nil || !strings.Contains(err.Error(), "not announcing 192.0.2.10: it is not on lo") {
		t.Errorf("Announce of an address not held: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := v.Acquire(ctx); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("Acquire after Close: %v", err)
	}
	if _, err := v.Held(); err == nil {
		t.Errorf("Held after Close: no error")
	}
}
