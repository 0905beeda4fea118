package vip

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// announcer sends one announcement of the address each time it is called;
// close releases its socket.
type announcer struct {
	what  string // "gratuitous ARP" or "neighbour advertisement", for errors and logs
	send  func() error
	close func() error
}

// newAnnouncer opens the socket for ip's announcements on ifi. The socket
// is made in the calling thread's network namespace and keeps it, so the
// follow-up announcements may be sent from any goroutine.
func newAnnouncer(ifi *net.Interface, ip netip.Addr) (*announcer, error) {
	if ip.Is4() {
		return newGARP(ifi, ip)
	}
	return newNA(ifi, ip)
}

// newGARP announces an IPv4 address by gratuitous ARP: an ARP request for
// the address from the address itself (sender and target protocol address
// both the VIP, target hardware address zero, as RFC 5227's "ARP
// Announcement"), broadcast. Linux hosts treat it as gratuitous (sender ==
// target, a unicast address of a subnet of theirs) and override an
// existing cache entry at once, whatever its lock time; switches learn the
// source MAC on the port it came from. A request rather than a reply: some
// hosts ignore unsolicited replies, none ignores a broadcast request.
func newGARP(ifi *net.Interface, ip netip.Addr) (*announcer, error) {
	p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, ip, make(net.HardwareAddr, len(ifi.HardwareAddr)), ip)
	if err != nil {
		return nil, fmt.Errorf("vip: building the gratuitous ARP for %s on %s: %w", ip, ifi.Name, err)
	}
	// arp.Dial binds a raw AF_PACKET socket for ARP to the interface; it
	// wants an IPv4 address on it, which the VIP just added is.
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, fmt.Errorf("vip: opening an ARP socket on %s: %w", ifi.Name, err)
	}
	return &announcer{
		what:  "gratuitous ARP",
		send:  func() error { return c.WriteTo(p, ethernet.Broadcast) },
		close: c.Close,
	}, nil
}

// newNA announces an IPv6 address by an unsolicited neighbour
// advertisement to all nodes (ff02::1): override set, so that hosts
// replace the link-layer address they have for it; solicited clear, as
// RFC 4861 7.2.6 asks; with the target link-layer address option carrying
// this node's MAC. It is sent from the VIP itself: the address is added
// with nodad, so it is usable at once, while the interface's link-local
// address may still be tentative on a freshly started link; a host that
// accepts untracked advertisements only from its own subnets
// (accept_untracked_na=2) takes it too.
func newNA(ifi *net.Interface, ip netip.Addr) (*announcer, error) {
	c, _, err := ndp.Listen(ifi, ndp.Addr(ip.String()))
	if err != nil {
		return nil, fmt.Errorf("vip: opening an ICMPv6 socket from %s on %s: %w", ip, ifi.Name, err)
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      ifi.HardwareAddr,
		}},
	}
	return &announcer{
		what:  "neighbour advertisement",
		send:  func() error { return c.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes()) },
		close: c.Close,
	}, nil
}
