package vip

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// A test site: namespaces a and b (the two nodes, eth0 each) and c (the
// switch: a bridge br0 with a veth to each node, and the client's
// addresses on the bridge itself, so c is also the host whose neighbour
// table shows who owns the VIP).
//
//	a eth0 10.77.0.1/24 fd77::1/64 ── veth-a ┐
//	                                          br0 10.77.0.10/24 fd77::10/64 (c)
//	b eth0 10.77.0.2/24 fd77::2/64 ── veth-b ┘
//
// Everything lives in namespaces the test makes and removes; no address
// outside them is ever sent to.
type site struct {
	prefix string
}

var (
	siteSubnet4 = netip.MustParsePrefix("10.77.0.0/24")
	siteSubnet6 = netip.MustParsePrefix("fd77::/64")
	siteAddrs   = map[string][2]netip.Addr{
		"a": {netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("fd77::1")},
		"b": {netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("fd77::2")},
		"c": {netip.MustParseAddr("10.77.0.10"), netip.MustParseAddr("fd77::10")},
	}
	siteCount atomic.Int32
)

// nsPrefix starts every namespace of these tests: vipt<pid>x<n>-<node>.
const nsPrefix = "vipt"

// needRoot skips a test that makes namespaces when it cannot.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test makes network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
}

// newSite makes the namespaces, removed again when the test ends.
func newSite(t testing.TB) *site {
	t.Helper()
	needRoot(t)
	cleanupStale(t)
	s := &site{prefix: fmt.Sprintf("%s%dx%d", nsPrefix, os.Getpid(), siteCount.Add(1))}
	start := time.Now()
	t.Cleanup(func() {
		for _, n := range []string{"a", "b", "c"} {
			if _, err := os.Stat(filepath.Join("/var/run/netns", s.ns(n))); err == nil {
				if out, err := exec.Command("ip", "netns", "del", s.ns(n)).CombinedOutput(); err != nil {
					t.Errorf("removing namespace %s: %v: %s", s.ns(n), err, out)
				}
			}
		}
	})
	for _, n := range []string{"a", "b", "c"} {
		s.ip(t, "netns", "add", s.ns(n))
		// No duplicate address detection for what the test adds: the
		// nodes' addresses are usable at once, as on a booted machine.
		s.sysctl(t, n, "net.ipv6.conf.default.accept_dad", "0")
		s.sysctl(t, n, "net.ipv6.conf.all.accept_dad", "0")
		s.ip(t, "-n", s.ns(n), "link", "set", "lo", "up")
	}
	c := s.ns("c")
	s.ip(t, "-n", c, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	for _, n := range []string{"a", "b"} {
		s.ip(t, "-n", s.ns(n), "link", "add", "eth0", "type", "veth", "peer", "name", "veth-"+n, "netns", c)
		s.ip(t, "-n", c, "link", "set", "veth-"+n, "master", "br0")
		s.ip(t, "-n", c, "link", "set", "veth-"+n, "up")
	}
	for n, iface := range map[string]string{"a": "eth0", "b": "eth0", "c": "br0"} {
		addrs := siteAddrs[n]
		s.ip(t, "-n", s.ns(n), "addr", "add", netip.PrefixFrom(addrs[0], siteSubnet4.Bits()).String(), "dev", iface)
		s.ip(t, "-n", s.ns(n), "addr", "add", netip.PrefixFrom(addrs[1], siteSubnet6.Bits()).String(), "dev", iface, "nodad")
		s.ip(t, "-n", s.ns(n), "link", "set", iface, "up")
	}
	t.Logf("site %s-{a,b,c} made in %s", s.prefix, time.Since(start).Round(time.Millisecond))
	return s
}

func (s *site) ns(node string) string { return s.prefix + "-" + node }

// ip runs iproute2's ip; a failure ends the test.
func (s *site) ip(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// hasSysctl says whether a sysctl exists in node's namespace (per-netns
// files under /proc/sys/net are those of the reading thread's namespace).
func (s *site) hasSysctl(t testing.TB, node, key string) bool {
	t.Helper()
	var found bool
	s.in(t, node, func() error {
		_, err := os.Stat("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
		found = err == nil
		return nil
	})
	return found
}

// sysctl sets a sysctl in node's namespace.
func (s *site) sysctl(t testing.TB, node, key, value string) {
	t.Helper()
	s.in(t, node, func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644)
	})
}

// in runs f on an OS thread inside node's namespace and ends the test if
// f fails. Everything the package opens there (netlink, ARP and ICMPv6
// sockets) stays in that namespace whichever thread uses it later. The
// thread is never unlocked: the Go runtime ends it with the goroutine
// instead of handing it, still in the namespace, to other goroutines.
func (s *site) in(t testing.TB, node string, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(s.ns(node))
		if err != nil {
			errc <- fmt.Errorf("opening namespace %s: %w", s.ns(node), err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", s.ns(node), err)
			return
		}
		errc <- f()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in %s: %v", node, err)
	}
}

// handle is a netlink handle inside node's namespace, for the test's own
// looks at links, addresses and neighbours.
func (s *site) handle(t testing.TB, node string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromName(s.ns(node))
	if err != nil {
		t.Fatalf("opening namespace %s: %v", s.ns(node), err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink in %s: %v", s.ns(node), err)
	}
	t.Cleanup(h.Close)
	return h
}

// cleanupStale removes the namespaces of earlier runs of these tests whose
// process is gone (a run killed before its cleanups).
func cleanupStale(t testing.TB) {
	t.Helper()
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "x")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || err == syscall.EPERM {
			continue // its test process still runs
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("removing stale namespace %s: %v: %s", name, err, out)
		} else {
			t.Logf("removed stale namespace %s", name)
		}
	}
}
