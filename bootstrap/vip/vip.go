package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// announceCount announcements are sent per acquisition,
	// announceInterval apart, the first at once: one lost frame (a switch
	// port still coming up, a busy host) does not leave the segment
	// pointing at the old owner, and the burst is over in a second.
	announceCount    = 3
	announceInterval = 500 * time.Millisecond

	// netlinkTimeout bounds each netlink call: the kernel answers at once,
	// and a call that hangs must fail rather than hold the agent.
	netlinkTimeout = 5 * time.Second

	// labelSuffix marks the IPv4 address in `ip addr` (eth0:vip).
	labelSuffix = ":vip"

	// forever is the kernel's infinite address lifetime (0xffffffff s);
	// netlink takes an int, so a 32-bit build says the longest it can
	// (68 years).
	forever = min(math.MaxUint32, math.MaxInt)
)

// VIP holds the virtual IP on this node's interface. It is safe for
// concurrent use; every method is idempotent.
//
// The netlink socket is opened by New and the announcement sockets by
// Acquire and Announce, each in the network namespace of the calling
// thread (the agent's, in production).
type VIP struct {
	ip       netip.Addr
	iface    string
	lifetime int // seconds; 0: forever
	log      *slog.Logger

	mu        sync.Mutex
	nl        *netlink.Handle
	announced bool               // this VIP announced the address since it was last absent
	cancel    context.CancelFunc // stops the announcements still to come
	done      chan struct{}      // closed when they have stopped
	closed    bool
}

// New prepares the address of c on this node; self is the node's own
// address, which finds the interface when c names none. Check the config
// with Validate first. New changes nothing: it looks at what is there (a
// crashed agent may have left the address behind) and logs it; Held says
// it to the caller.
func New(c Config, self netip.Addr, log *slog.Logger) (*VIP, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := c.Address.Addr()
	if !c.Address.IsValid() {
		return nil, errors.New("vip: no address configured")
	}
	if a.Is4In6() || !a.IsGlobalUnicast() {
		return nil, fmt.Errorf("vip: address %s is not a unicast address with a prefix length (Validate says why)", c.Address)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("vip: opening a netlink socket: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("vip: setting the netlink socket's timeout: %w", err)
	}
	link, err := findLink(h, c.Interface, self)
	if err != nil {
		h.Close()
		return nil, err
	}
	if c.Lifetime < 0 || c.Lifetime%time.Second != 0 {
		h.Close()
		return nil, fmt.Errorf("vip: lifetime %s: must be whole seconds, or 0 for forever", c.Lifetime)
	}
	v := &VIP{ip: a, iface: link.Attrs().Name, lifetime: int(c.Lifetime / time.Second), log: log, nl: h}
	held, _, err := v.state(link)
	if err != nil {
		h.Close()
		return nil, err
	}
	if held {
		log.Info("vip: the address is already on the interface (left by an earlier agent, or added by hand)",
			"address", v.ip, "interface", v.iface)
	}
	return v, nil
}

// Address is the virtual IP.
func (v *VIP) Address() netip.Addr {
	if v == nil {
		return netip.Addr{}
	}
	return v.ip
}

// Interface is the name of the interface that carries it.
func (v *VIP) Interface() string {
	if v == nil {
		return ""
	}
	return v.iface
}

// Held says whether the address is on the interface now, whoever put it
// there. A missing interface holds nothing, and says so in the error.
func (v *VIP) Held() (bool, error) {
	if err := v.begin(context.Background(), "Held"); err != nil {
		return false, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	_, held, _, err := v.lookLocked("Held")
	return held, err
}

// Acquire puts the address on the interface and announces it, and with a
// lifetime starts it again: the holder calls it at every tick while it
// leads. Already there and announced by this VIP: nothing is sent again
// (see Announce).
// Already there but not announced by this VIP (an agent restarted while
// leading): it is announced, since the segment may have moved to the peer
// meanwhile. The first announcement is sent before Acquire returns, the
// others follow in the background unless Release stops them.
//
// The address added but the announcement failed: the address stays and
// the error says so; calling Acquire again retries the announcement.
func (v *VIP) Acquire(ctx context.Context) error {
	if err := v.begin(ctx, "Acquire"); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	start := time.Now()
	link, held, canonical, err := v.lookLocked("Acquire")
	if err != nil {
		return err
	}
	if !canonical || v.lifetime > 0 {
		// Replace, not add: a leftover of the same address with other
		// flags or lifetimes is brought to what addrFor says, and a
		// lifetime starts again.
		if err := v.nl.AddrReplace(link, v.addrFor()); err != nil {
			return fmt.Errorf("vip: adding %s to %s: %w", v.ip, v.iface, err)
		}
	}
	if !held {
		v.announced = false
	}
	if v.announced {
		return nil
	}
	what, err := v.announceLocked(link)
	if err != nil {
		return err
	}
	v.log.Info("vip: holding the address", "address", v.ip, "interface", v.iface,
		"was_there", held, "announced_by", what, "took", time.Since(start))
	return nil
}

// Announce sends the announcements again while the address is held, for
// when the segment may point elsewhere though this node kept the address
// (the other node held it too during a split, and has let it go).
func (v *VIP) Announce(ctx context.Context) error {
	if err := v.begin(ctx, "Announce"); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	link, held, _, err := v.lookLocked("Announce")
	if err != nil {
		return err
	}
	if !held {
		return fmt.Errorf("vip: not announcing %s: it is not on %s (Acquire adds it)", v.ip, v.iface)
	}
	_, err = v.announceLocked(link)
	return err
}

// Release stops the announcements still to come, then removes the address
// from the interface in every form it is there (any prefix length: an
// earlier agent or a hand may have added it otherwise). Already gone, or
// the interface gone: nothing to do. Release does not give up when ctx is
// done: the removal is a few netlink calls, and holding the address longer
// than leading is the dangerous side.
func (v *VIP) Release(ctx context.Context) error {
	// ctx is not consulted: see above.
	if err := v.begin(context.Background(), "Release"); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return v.errClosed("Release")
	}
	// Stopped first and waited for: no announcement of this node may
	// leave after Release returns, or it would pull the segment back
	// from the node that acquires the address next.
	v.stopLocked()
	v.announced = false
	link, err := v.nl.LinkByName(v.iface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			v.log.Warn("vip: the interface is gone, so is the address", "address", v.ip, "interface", v.iface)
			return nil
		}
		return fmt.Errorf("vip: looking up interface %s to release %s: %w", v.iface, v.ip, err)
	}
	addrs, err := addrList(v.nl, link, family(v.ip))
	if err != nil {
		return fmt.Errorf("vip: listing the addresses of %s to release %s: %w", v.iface, v.ip, err)
	}
	var errs []error
	removed := 0
	for _, x := range addrs {
		if p, ok := prefixOf(x); !ok || p.Addr() != v.ip {
			continue
		}
		switch err := v.nl.AddrDel(link, &x); {
		case err == nil:
			removed++
		case errors.Is(err, unix.EADDRNOTAVAIL), errors.Is(err, unix.ENOENT):
			// removed meanwhile by someone else: gone is what we want
		default:
			errs = append(errs, fmt.Errorf("vip: removing %s from %s: %w", x.IPNet, v.iface, err))
		}
	}
	if removed > 0 {
		v.log.Info("vip: released the address", "address", v.ip, "interface", v.iface)
	}
	return errors.Join(errs...)
}

// Close stops the announcements still to come and closes the netlink
// socket. It leaves the address as it is: the caller releases it first
// when this node must not keep it.
func (v *VIP) Close() error {
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	v.stopLocked()
	v.closed = true
	v.nl.Close()
	return nil
}

func (v *VIP) errClosed(op string) error {
	return fmt.Errorf("vip: %s of %s after Close", op, v.ip)
}

// begin refuses a nil VIP and a done context (a nil one has no end),
// before anything is touched.
func (v *VIP) begin(ctx context.Context, op string) error {
	if v == nil {
		return fmt.Errorf("vip: %s on a nil VIP", op)
	}
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("vip: %s of %s: %w", op, v.ip, err)
		}
	}
	return nil
}

// lookLocked finds the interface and the address on it (see state); the
// caller holds v.mu.
func (v *VIP) lookLocked(op string) (link netlink.Link, held, canonical bool, err error) {
	if v.closed {
		return nil, false, false, v.errClosed(op)
	}
	if link, err = findLink(v.nl, v.iface, netip.Addr{}); err != nil {
		return nil, false, false, err
	}
	held, canonical, err = v.state(link)
	return link, held, canonical, err
}

// state says whether the address is on link at all (held) and whether it
// is there as addrFor installs it (canonical).
func (v *VIP) state(link netlink.Link) (held, canonical bool, err error) {
	addrs, err := addrList(v.nl, link, family(v.ip))
	if err != nil {
		return false, false, fmt.Errorf("vip: listing the addresses of %s: %w", v.iface, err)
	}
	for _, x := range addrs {
		p, ok := prefixOf(x)
		if !ok || p.Addr() != v.ip {
			continue
		}
		held = true
		if p.Bits() == v.ip.BitLen() && (v.ip.Is4() ||
			x.Flags&unix.IFA_F_NODAD != 0 && x.Flags&unix.IFA_F_NOPREFIXROUTE != 0 && x.PreferedLft == 0) {
			canonical = true
		}
	}
	return held, canonical, nil
}

// addrFor is the address as it is installed.
//
// Full length (/32, /128), with no prefix route: the subnet's on-link
// route is already there through the node's own address, and the VIP
// needs none of its own. For IPv4 this also keeps it out of Linux's
// primary/secondary bookkeeping: with the subnet's length (/24) it would
// be a secondary of the node's address, deleted with it when that is
// removed (a DHCP renewal that re-adds it, promote_secondaries=0) or made
// the primary and so the source of the node's own connections
// (promote_secondaries=1); or, added before the node's address, the
// primary whose removal takes the node's address with it. As a /32 it is a
// primary of its own prefix that matches no other destination, so the
// node's own address stays the source of what the node sends (the
// subnet's route names it as preferred source). IFA_F_NOPREFIXROUTE says
// "no route" explicitly; a /32 would get none anyway.
//
// IPv6 chooses a source by RFC 6724, where a longer common prefix with the
// destination (rule 8) could prefer the VIP over the node's address; a
// preferred lifetime of 0 makes it deprecated, and rule 3 (avoid
// deprecated addresses) comes first, so it is never chosen unless a
// socket binds to it (kube-apiserver's listener accepts on it all the
// same: deprecated addresses still receive). nodad: no duplicate address
// detection, so the address is usable the moment it is added (DAD would
// keep it tentative for a second or more) and is not disabled when the
// other node still holds it: two nodes hold it only while two nodes lead,
// which the agent's decisions, not DAD, settle.
//
// The valid lifetime is the configured one (Config.Lifetime), infinite
// without one; an IPv4 address's preferred lifetime equals it (IPv4 has
// no use for a deprecated address).
func (v *VIP) addrFor() *netlink.Addr {
	bits := v.ip.BitLen()
	a := &netlink.Addr{
		IPNet: &net.IPNet{IP: v.ip.AsSlice(), Mask: net.CIDRMask(bits, bits)},
		Flags: unix.IFA_F_NOPREFIXROUTE,
	}
	valid := forever
	if v.lifetime > 0 {
		valid = v.lifetime
	}
	if v.ip.Is4() {
		if l := v.iface + labelSuffix; len(l) < unix.IFNAMSIZ {
			a.Label = l
		}
		if v.lifetime > 0 {
			a.ValidLft, a.PreferedLft = valid, valid
		}
		return a
	}
	a.Flags |= unix.IFA_F_NODAD
	a.PreferedLft = 0
	a.ValidLft = valid
	return a
}

// announceLocked sends the first announcement now and the others in the
// background; a burst still running is stopped first.
func (v *VIP) announceLocked(link netlink.Link) (string, error) {
	v.stopLocked()
	v.announced = false
	mac, err := hardwareAddr(link)
	if err != nil {
		return "", err
	}
	attrs := link.Attrs()
	ifi := &net.Interface{Index: attrs.Index, MTU: attrs.MTU, Name: attrs.Name, HardwareAddr: mac, Flags: attrs.Flags}
	an, err := newAnnouncer(ifi, v.ip)
	if err != nil {
		return "", fmt.Errorf("%w (the address is on %s, but not announced)", err, v.iface)
	}
	if err := an.send(); err != nil {
		_ = an.close()
		return "", fmt.Errorf("vip: %s is on %s, but sending the %s failed: %w", v.ip, v.iface, an.what, err)
	}
	v.announced = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	v.cancel, v.done = cancel, done
	go v.followUp(ctx, an, done)
	return an.what, nil
}

// followUp sends the rest of the burst. done is closed as soon as nothing
// more can be sent, before the socket is: closing an AF_PACKET socket
// waits for an RCU grace period (10-20 ms), which Release need not wait
// for.
func (v *VIP) followUp(ctx context.Context, an *announcer, done chan struct{}) {
	defer func() { _ = an.close() }()
	defer close(done)
	t := time.NewTicker(announceInterval)
	defer t.Stop()
	for range announceCount - 1 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil {
			return // both were ready; stopping wins
		}
		if err := an.send(); err != nil {
			v.log.Warn("vip: a repeated announcement failed", "address", v.ip, "interface", v.iface, "kind", an.what, "err", err)
		}
	}
}

// stopLocked stops the announcements still to come and waits until they
// have.
func (v *VIP) stopLocked() {
	if v.cancel == nil {
		return
	}
	v.cancel()
	<-v.done
	v.cancel, v.done = nil, nil
}
