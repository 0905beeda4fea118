package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config says which address the pair shares and where it lives.
type Config struct {
	// Address is the virtual IP with the site subnet's prefix length,
	// such as 10.0.0.100/24 or fd00:1::100/64. The length states the
	// subnet the address belongs to (Validate checks it against the
	// interface); the address itself is installed as a /32 or /128 (see
	// addrFor for why).
	Address netip.Prefix
	// Interface is the network interface that carries the address. Empty:
	// the interface that holds the node's own address.
	Interface string
	// Lifetime, if set (whole seconds), is how long the kernel keeps the
	// address after it was last acquired: the holder acquires it again
	// at every tick while it leads, and an agent that hangs (frozen,
	// starved, a deadlock) loses it by itself, since the kernel removes
	// it however stuck user space is. Zero: forever.
	Lifetime time.Duration
}

// Validate checks the config against this node: self is the node's own
// address and peer the other node's (config's node.address and
// peer.address). It reads the node's interfaces and addresses through
// netlink (no privilege needed) and reports every problem at once
// (errors.Join), each naming what is wrong and what was found.
//
// The address must be inside the node's subnet, with the subnet's prefix
// length, and the peer must be in that subnet too: the address moves
// between the nodes by ARP and neighbour discovery, which only reach the
// hosts of one L2 segment, and hosts only take a gratuitous ARP for an
// address of a subnet they are on.
func (c Config) Validate(self, peer netip.Addr) error {
	errs := c.check(self, peer)
	if len(errs) == 0 {
		errs = append(errs, c.checkSystem(self)...)
	}
	return errors.Join(errs...)
}

// Check is what Validate can judge without looking at the node: the
// address itself and both nodes' addresses against its subnet (the agent's
// config checks it before anything runs; Validate adds the interfaces).
func (c Config) Check(self, peer netip.Addr) error { return errors.Join(c.check(self, peer)...) }

// check is what can be judged without looking at the node.
func (c Config) check(self, peer netip.Addr) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("vip: "+format, args...))
	}
	if !c.Address.IsValid() {
		add("address is required: a free address in the site subnet with the subnet's prefix length, such as 10.0.0.100/24")
		return errs
	}
	a, bits := c.Address.Addr(), c.Address.Bits()
	switch {
	case a.Is4In6():
		add("address %s is an IPv4-mapped IPv6 address: write it as IPv4 (%s/%d)", c.Address, a.Unmap(), bits-96)
		return errs
	case !a.IsGlobalUnicast():
		add("address %s must be a unicast address of the site (got a %s address)", a, kind(a))
		return errs
	}
	// Room for the network itself, two nodes and the address: a /31 or
	// /127 (point-to-point) and a /32 or /128 name no subnet at all.
	if bits == 0 || bits > a.BitLen()-2 {
		add("address %s: prefix length /%d is not a site subnet: write the subnet's length, such as %s/24 or /64", c.Address, bits, a)
		return errs
	}
	subnet := c.Address.Masked()
	if a.Is4() && (a == subnet.Addr() || a == lastAddr(subnet)) {
		add("address %s is the network or broadcast address of %s: pick a free host address", a, subnet)
	}
	if c.Interface != "" && (len(c.Interface) >= unix.IFNAMSIZ || strings.ContainsAny(c.Interface, "/ \t\n\x00:")) {
		add("interface %q is not an interface name (at most %d characters, no '/', ':' or spaces)", c.Interface, unix.IFNAMSIZ-1)
	}
	for _, n := range []struct {
		what string
		addr netip.Addr
	}{{"this node's own address (node.address)", self}, {"the peer's address (peer.address)", peer}} {
		switch {
		case !n.addr.IsValid():
			add("%s is required to check the address", n.what)
		case n.addr.Unmap() == a:
			add("address %s is %s: the virtual IP must be a third, free address", a, n.what)
		case n.addr.Unmap().Is4() != a.Is4():
			add("address %s must be of the same IP family as %s %s: the address follows the leader on the segment the nodes share", a, n.what, n.addr)
		case !subnet.Contains(n.addr.Unmap()):
			add("address %s: %s %s is outside its subnet %s: the address follows the leader only within one L2 segment, so both nodes must be in its subnet", c.Address, n.what, n.addr, subnet)
		}
	}
	return errs
}

// checkSystem looks at the node: the interface exists, can carry
// announcements, and holds an address of the VIP's subnet.
func (c Config) checkSystem(self netip.Addr) []error {
	link, err := findLink(nil, c.Interface, self)
	if err != nil {
		return []error{err}
	}
	name := link.Attrs().Name
	var errs []error
	if len(link.Attrs().HardwareAddr) != 6 {
		errs = append(errs, fmt.Errorf("vip: interface %s has no Ethernet address (type %s): the address moves by ARP and neighbour discovery, which need an Ethernet segment", name, link.Type()))
	}
	addrs, err := addrList(nil, link, family(c.Address.Addr()))
	if err != nil {
		return append(errs, fmt.Errorf("vip: listing the addresses of %s: %w", name, err))
	}
	want := c.Address.Masked()
	var seen []string
	for _, x := range addrs {
		p, ok := prefixOf(x)
		if !ok || p.Addr() == c.Address.Addr() {
			continue // the VIP itself, left by an earlier agent, says nothing of the subnet
		}
		seen = append(seen, p.String())
		if p.Masked() == want {
			return errs
		}
		if p.Contains(c.Address.Addr()) {
			return append(errs, fmt.Errorf("vip: address %s: prefix length /%d differs from the subnet %s of %s's address %s: write %s/%d",
				c.Address, c.Address.Bits(), p.Masked(), name, p, c.Address.Addr(), p.Bits()))
		}
	}
	if len(seen) == 0 {
		return append(errs, fmt.Errorf("vip: address %s: interface %s has no %s address, so it is on no subnet the address could belong to",
			c.Address, name, familyName(c.Address.Addr())))
	}
	return append(errs, fmt.Errorf("vip: address %s is in none of the subnets of %s (its addresses: %s): the address must be a free address of the node's own subnet, on the segment the peer and the clients share",
		c.Address, name, strings.Join(seen, ", ")))
}

// findLink returns the interface named name or, when name is empty, the
// one that holds self. h nil uses the calling thread's network namespace.
func findLink(h *netlink.Handle, name string, self netip.Addr) (netlink.Link, error) {
	if h == nil {
		h = &netlink.Handle{}
	}
	if name != "" {
		l, err := h.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("vip: interface %s does not exist on this node (ip link lists the names)", name)
			}
			return nil, fmt.Errorf("vip: looking up interface %s: %w", name, err)
		}
		return l, nil
	}
	if !self.IsValid() {
		return nil, errors.New("vip: no interface named and no node address to find it by")
	}
	self = self.Unmap()
	addrs, err := addrList(h, nil, family(self))
	if err != nil {
		return nil, fmt.Errorf("vip: listing addresses to find the interface of %s: %w", self, err)
	}
	for _, x := range addrs {
		if p, ok := prefixOf(x); ok && p.Addr() == self {
			l, err := h.LinkByIndex(x.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("vip: looking up interface %d, which holds %s: %w", x.LinkIndex, self, err)
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("vip: no interface holds the node's address %s: name the interface that carries the site subnet", self)
}

// addrList lists link's addresses of one family (link nil: every link's),
// retrying a dump that a concurrent change interrupted.
func addrList(h *netlink.Handle, link netlink.Link, fam int) ([]netlink.Addr, error) {
	if h == nil {
		h = &netlink.Handle{}
	}
	var err error
	for range 5 {
		var addrs []netlink.Addr
		addrs, err = h.AddrList(link, fam)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return addrs, err
		}
	}
	return nil, err
}

// prefixOf converts a netlink address to a netip.Prefix.
func prefixOf(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	ones, size := a.Mask.Size()
	if size != ip.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(ip, ones), true
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// kind names what an address that is not a unicast address of a site is.
func kind(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsMulticast():
		return "multicast"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	default:
		return "reserved"
	}
}

// lastAddr is the highest address of p (the IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	host := len(b)*8 - p.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// hardwareAddr is link's MAC address, checked for announcements.
func hardwareAddr(link netlink.Link) (net.HardwareAddr, error) {
	mac := link.Attrs().HardwareAddr
	if len(mac) != 6 {
		return nil, fmt.Errorf("vip: interface %s has no Ethernet address: ARP and neighbour advertisements need an Ethernet segment", link.Attrs().Name)
	}
	return mac, nil
}
