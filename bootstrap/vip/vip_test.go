package vip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// famCase is one IP family that the site tests run.
type famCase struct {
	name string
	vip  netip.Prefix
	idx  int // index into siteAddrs
}

// The VIPs share a longer prefix with the client (::10, .10) than the
// nodes' own addresses (::1, .1) do: by IPv6's longest-match rule the VIP
// would be the source of the node's connections to the client, unless it
// is marked deprecated; the source check below would see it.
var families = []famCase{
	{"IPv4", netip.MustParsePrefix("10.77.0.11/24"), 0},
	{"IPv6", netip.MustParsePrefix("fd77::11/64"), 1},
}

// testLog sends the package's log to the test's.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// prepareClient makes c, the client and switch side, take announcements
// for an address it has no entry for yet. The test's client has sent no
// traffic to the VIP, so its cache starts empty, which is the hardest
// case; a real client that talked to the old owner has an entry, and Linux
// updates an existing entry from any gratuitous ARP or overriding
// advertisement with the defaults.
//
//   - IPv4: arp_accept=1. With the default 0, Linux only updates existing
//     entries from unsolicited ARP and never creates one.
//   - IPv6: accept_untracked_na=1 (Linux 5.18 and later), and forwarding=1
//     on the bridge, since the kernel applies accept_untracked_na to
//     routers only; the switch side of a real site (its gateway) is one.
//     On a kernel without the setting, an old owner's entry is planted
//     instead, so the test still checks the override.
func prepareClient(t *testing.T, s *site, fam famCase) {
	t.Helper()
	if fam.idx == 0 {
		s.sysctl(t, "c", "net.ipv4.conf.all.arp_accept", "1")
		s.sysctl(t, "c", "net.ipv4.conf.br0.arp_accept", "1")
		return
	}
	if !s.hasSysctl(t, "c", "net.ipv6.conf.br0.accept_untracked_na") {
		t.Logf("this kernel has no accept_untracked_na: planting a stale entry with another MAC for %s in c", fam.vip.Addr())
		s.ip(t, "-n", s.ns("c"), "neigh", "add", fam.vip.Addr().String(), "lladdr", "02:00:00:00:00:99", "nud", "stale", "dev", "br0")
		return
	}
	s.sysctl(t, "c", "net.ipv6.conf.br0.accept_untracked_na", "1")
	s.sysctl(t, "c", "net.ipv6.conf.br0.forwarding", "1")
}

// neighbour is c's neighbour entry for ip on br0 (nil when none).
func neighbour(t testing.TB, h *netlink.Handle, ip netip.Addr) net.HardwareAddr {
	t.Helper()
	br, err := h.LinkByName("br0")
	if err != nil {
		t.Fatalf("br0 in c: %v", err)
	}
	fam := unix.AF_INET
	if ip.Is6() {
		fam = unix.AF_INET6
	}
	ns, err := h.NeighList(br.Attrs().Index, fam)
	if err != nil {
		t.Fatalf("c's neighbour table: %v", err)
	}
	for _, n := range ns {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && len(n.HardwareAddr) > 0 {
			return n.HardwareAddr
		}
	}
	return nil
}

// waitNeighbour waits up to 2 s for c's entry for ip to be want and says
// how long that took.
func waitNeighbour(t testing.TB, h *netlink.Handle, ip netip.Addr, want net.HardwareAddr) time.Duration {
	t.Helper()
	start := time.Now()
	var got net.HardwareAddr
	for time.Since(start) < 2*time.Second {
		if got = neighbour(t, h, ip); got.String() == want.String() {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("c's neighbour entry for %s is %v after 2 s, want %s", ip, got, want)
	return 0
}

// vipEntries lists the entries of ip on node's eth0.
func vipEntries(t testing.TB, h *netlink.Handle, ip netip.Addr) []netlink.Addr {
	t.Helper()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatalf("eth0: %v", err)
	}
	addrs, err := addrList(h, l, family(ip))
	if err != nil {
		t.Fatalf("addresses of eth0: %v", err)
	}
	var out []netlink.Addr
	for _, a := range addrs {
		if p, ok := prefixOf(a); ok && p.Addr() == ip {
			out = append(out, a)
		}
	}
	return out
}

func mac(t testing.TB, h *netlink.Handle, iface string) net.HardwareAddr {
	t.Helper()
	l, err := h.LinkByName(iface)
	if err != nil {
		t.Fatalf("%s: %v", iface, err)
	}
	return l.Attrs().HardwareAddr
}

// sourceTo is the source address the node's kernel picks for a UDP
// "connection" to dst (connect sends nothing).
func sourceTo(dst netip.Addr) (netip.Addr, error) {
	c, err := net.Dial("udp", netip.AddrPortFrom(dst, 9).String())
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// TestAcquireMovesClient is the whole life of the address on a site: a
// acquires it and the client's neighbour table names a's MAC without the
// client having sent anything, a releases it, b acquires it and the entry
// moves to b, b's agent "crashes" and a new one finds the address there.
func TestAcquireMovesClient(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			s := newSite(t)
			prepareClient(t, s, fam)
			ctx := context.Background()
			ip := fam.vip.Addr()
			ha, hb, hc := s.handle(t, "a"), s.handle(t, "b"), s.handle(t, "c")
			macA, macB := mac(t, ha, "eth0"), mac(t, hb, "eth0")
			client := siteAddrs["c"][fam.idx]
			cfg := Config{Address: fam.vip} // no interface: the one holding the node's address
			planted := neighbour(t, hc, ip)
			if planted != nil && planted.String() != "02:00:00:00:00:99" {
				t.Fatalf("c has an entry for %s (%s) before anyone announced it", ip, planted)
			}

			var va *VIP
			var took time.Duration
			s.in(t, "a", func() error {
				if err := cfg.Validate(siteAddrs["a"][fam.idx], siteAddrs["b"][fam.idx]); err != nil {
					return err
				}
				var err error
				if va, err = New(cfg, siteAddrs["a"][fam.idx], logger(t)); err != nil {
					return err
				}
				if va.Interface() != "eth0" {
					return fmt.Errorf("interface %q, want eth0 (the one holding %s)", va.Interface(), siteAddrs["a"][fam.idx])
				}
				if held, err := va.Held(); err != nil || held {
					return fmt.Errorf("Held before Acquire = %v, %v; want false, nil", held, err)
				}
				start := time.Now()
				if err := va.Acquire(ctx); err != nil {
					return err
				}
				took = time.Since(start)
				return nil
			})
			t.Cleanup(func() { va.Close() })
			seen := waitNeighbour(t, hc, ip, macA)
			t.Logf("%s: Acquire took %s (address added, first announcement sent); c's neighbour table named a's MAC %s after %s more",
				fam.name, took.Round(time.Microsecond), macA, seen.Round(time.Microsecond))

			// The address as installed: full length, flagged so that it is
			// never the node's source address.
			entries := vipEntries(t, ha, ip)
			if len(entries) != 1 {
				t.Fatalf("a has %d entries of %s, want 1: %v", len(entries), ip, entries)
			}
			e := entries[0]
			if ones, _ := e.Mask.Size(); ones != ip.BitLen() {
				t.Errorf("installed as /%d, want /%d", ones, ip.BitLen())
			}
			if fam.idx == 0 && e.Label != "eth0"+labelSuffix {
				t.Errorf("label %q, want eth0%s", e.Label, labelSuffix)
			}
			if fam.idx == 1 {
				if e.Flags&unix.IFA_F_NODAD == 0 || e.Flags&unix.IFA_F_DEPRECATED == 0 || e.Flags&unix.IFA_F_TENTATIVE != 0 {
					t.Errorf("flags %#x: want nodad and deprecated, not tentative", e.Flags)
				}
				if e.PreferedLft != 0 || uint32(e.ValidLft) != 0xffffffff {
					t.Errorf("lifetimes preferred %d valid %d, want 0 and forever", e.PreferedLft, e.ValidLft)
				}
			}

			// Idempotent acquire; the node's own address stays the source.
			s.in(t, "a", func() error {
				if err := va.Acquire(ctx); err != nil {
					return fmt.Errorf("second Acquire: %w", err)
				}
				if held, err := va.Held(); err != nil || !held {
					return fmt.Errorf("Held after Acquire = %v, %v; want true, nil", held, err)
				}
				src, err := sourceTo(client)
				if err != nil {
					return err
				}
				if src != siteAddrs["a"][fam.idx] {
					return fmt.Errorf("a's connections to %s leave from %s, want its own address %s", client, src, siteAddrs["a"][fam.idx])
				}
				return nil
			})
			if n := len(vipEntries(t, ha, ip)); n != 1 {
				t.Fatalf("after a second Acquire a has %d entries of %s, want 1", n, ip)
			}

			// a releases (twice) before its burst is over; b acquires.
			s.in(t, "a", func() error {
				for i := range 2 {
					if err := va.Release(ctx); err != nil {
						return fmt.Errorf("Release #%d: %w", i+1, err)
					}
				}
				if held, err := va.Held(); err != nil || held {
					return fmt.Errorf("Held after Release = %v, %v; want false, nil", held, err)
				}
				return nil
			})
			if n := len(vipEntries(t, ha, ip)); n != 0 {
				t.Fatalf("after Release a still has %d entries of %s", n, ip)
			}
			// a released in the middle of its burst: the announcements still
			// to come must not go out, or they would pull the segment back
			// from b. c's entry is set to a third MAC (an old owner's) and
			// must keep it for longer than a's burst would have lasted.
			const other = "02:00:00:00:00:99"
			s.ip(t, "-n", s.ns("c"), "neigh", "replace", ip.String(), "lladdr", other, "nud", "stale", "dev", "br0")
			time.Sleep(announceCount*announceInterval + 200*time.Millisecond)
			if got := neighbour(t, hc, ip); got.String() != other {
				t.Fatalf("after a released, c's entry for %s became %s (a's is %s): a announced after its Release", ip, got, macA)
			}

			var vb *VIP
			s.in(t, "b", func() error {
				var err error
				if vb, err = New(Config{Address: fam.vip, Interface: "eth0"}, siteAddrs["b"][fam.idx], logger(t)); err != nil {
					return err
				}
				return vb.Acquire(ctx)
			})
			moved := waitNeighbour(t, hc, ip, macB)
			t.Logf("%s: b acquired, c's entry moved from the old owner's MAC to b's %s in %s", fam.name, macB, moved.Round(time.Microsecond))

			// b's agent dies holding the address; the next one finds it,
			// announces it again and can release it.
			s.in(t, "b", func() error {
				if err := vb.Close(); err != nil {
					return err
				}
				if err := vb.Acquire(ctx); err == nil {
					return fmt.Errorf("Acquire after Close succeeded")
				}
				vb2, err := New(Config{Address: fam.vip, Interface: "eth0"}, siteAddrs["b"][fam.idx], logger(t))
				if err != nil {
					return err
				}
				defer vb2.Close()
				if held, err := vb2.Held(); err != nil || !held {
					return fmt.Errorf("a new agent's Held = %v, %v; want true, nil (left by the one before)", held, err)
				}
				if err := vb2.Acquire(ctx); err != nil {
					return err
				}
				if !vb2.announced {
					return fmt.Errorf("a new agent's Acquire of an address it found did not announce it")
				}
				if err := vb2.Release(ctx); err != nil {
					return err
				}
				if held, err := vb2.Held(); err != nil || held {
					return fmt.Errorf("Held after the new agent's Release = %v, %v", held, err)
				}
				return nil
			})
		})
	}
}

// TestOwnAddressChurnIPv4: the node's own address is removed and added
// again (a DHCP renewal, an operator): the VIP stays, and the node's
// connections still leave from its own address. As a /24 secondary the VIP
// would have been deleted with the primary here (promote_secondaries=0,
// set below), or promoted to the primary and the source (=1).
func TestOwnAddressChurnIPv4(t *testing.T) {
	s := newSite(t)
	s.sysctl(t, "a", "net.ipv4.conf.eth0.promote_secondaries", "0")
	vip := netip.MustParsePrefix("10.77.0.11/24")
	self := siteAddrs["a"][0]
	var v *VIP
	s.in(t, "a", func() error {
		var err error
		if v, err = New(Config{Address: vip}, self, logger(t)); err != nil {
			return err
		}
		return v.Acquire(context.Background())
	})
	defer v.Close()
	s.ip(t, "-n", s.ns("a"), "addr", "del", netip.PrefixFrom(self, 24).String(), "dev", "eth0")
	s.ip(t, "-n", s.ns("a"), "addr", "add", netip.PrefixFrom(self, 24).String(), "dev", "eth0")
	s.in(t, "a", func() error {
		if held, err := v.Held(); err != nil || !held {
			return fmt.Errorf("Held after the node's address came back = %v, %v; want true", held, err)
		}
		src, err := sourceTo(siteAddrs["c"][0])
		if err != nil {
			return err
		}
		if src != self {
			return fmt.Errorf("connections leave from %s, want the node's own %s", src, self)
		}
		return v.Release(context.Background())
	})
}

// TestAcquireTiming prints what Acquire and Release cost, over a few
// rounds (figures, not assertions: the machine is shared).
func TestAcquireTiming(t *testing.T) {
	s := newSite(t)
	const rounds = 20
	for _, fam := range families {
		var acq, rel []time.Duration
		s.in(t, "a", func() error {
			v, err := New(Config{Address: fam.vip}, siteAddrs["a"][fam.idx], nil)
			if err != nil {
				return err
			}
			defer v.Close()
			ctx := context.Background()
			for range rounds {
				start := time.Now()
				if err := v.Acquire(ctx); err != nil {
					return err
				}
				acq = append(acq, time.Since(start))
				start = time.Now()
				if err := v.Release(ctx); err != nil {
					return err
				}
				rel = append(rel, time.Since(start))
			}
			return nil
		})
		slices.Sort(acq)
		slices.Sort(rel)
		t.Logf("%s over %d rounds: Acquire median %s max %s; Release (stops the burst, removes) median %s max %s",
			fam.name, rounds, acq[rounds/2].Round(time.Microsecond), acq[rounds-1].Round(time.Microsecond),
			rel[rounds/2].Round(time.Microsecond), rel[rounds-1].Round(time.Microsecond))
	}
}

// BenchmarkAcquireRelease: go test -bench . ./bootstrap/vip (as root).
func BenchmarkAcquireRelease(b *testing.B) {
	s := newSite(b)
	s.in(b, "a", func() error {
		v, err := New(Config{Address: families[0].vip}, siteAddrs["a"][0], nil)
		if err != nil {
			return err
		}
		defer v.Close()
		ctx := context.Background()
		for b.Loop() {
			if err := v.Acquire(ctx); err != nil {
				return err
			}
			if err := v.Release(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestLifetime: with a lifetime, an address acquired again every half
// second stays, and one left alone is removed by the kernel itself, in
// both families: what takes it from a node whose agent hangs.
func TestLifetime(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			s := newSite(t)
			vip := fam.vip
			var v *VIP
			s.in(t, "a", func() error {
				var err error
				v, err = New(Config{Address: vip, Lifetime: time.Second}, siteAddrs["a"][fam.idx], logger(t))
				return err
			})
			defer v.Close()
			h := s.handle(t, "a")
			var left time.Time
			for i := range 6 { // 3 s, twice a second, as the agent's ticks
				s.in(t, "a", func() error { return v.Acquire(context.Background()) })
				left = time.Now()
				if got := vipEntries(t, h, vip.Addr()); len(got) != 1 || got[0].ValidLft > 1 {
					t.Fatalf("after acquiring %d times: %+v, want one entry valid for at most 1 s", i+1, got)
				}
				time.Sleep(500 * time.Millisecond)
			}
			for len(vipEntries(t, h, vip.Addr())) > 0 {
				if time.Since(left) > 5*time.Second {
					t.Fatalf("the address is still there 5 s after it was last acquired with a lifetime of 1 s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("%s: gone %s after it was last acquired, with a lifetime of 1 s", fam.name, time.Since(left).Round(10*time.Millisecond))
			s.in(t, "a", func() error {
				if held, err := v.Held(); err != nil || held {
					return fmt.Errorf("Held after it expired = %v, %v", held, err)
				}
				return nil
			})
		})
	}
}
