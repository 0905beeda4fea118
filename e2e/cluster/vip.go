package cluster

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/twonode-edge/twonode/e2e/harness"
)

// VIPAddr is the pair's address with Options.VIP: host 100 of the site
// subnet, which no node or client of the harness uses.
func (c *Cluster) VIPAddr() string { return fmt.Sprintf("10.%d.0.100", c.Opts.Subnet) }

// VIPReader says which nodes have the pair's address on an interface, read
// from each node's kernel through netlink handles opened once (cheap
// enough to sample every 100 ms); safe for concurrent use.
type VIPReader struct {
	ip netip.Addr
	mu sync.Mutex
	h  map[string]*netlink.Handle
}

// VIPReader opens a handle in each node's network namespace.
func (c *Cluster) VIPReader() (*VIPReader, error) {
	r := &VIPReader{ip: netip.MustParseAddr(c.VIPAddr()), h: map[string]*netlink.Handle{}}
	for _, name := range []string{"a", "b"} {
		ns, err := netns.GetFromName(c.Nodes[name].NS)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("cluster: namespace of %s: %w", name, err)
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("cluster: netlink in %s's namespace: %w", name, err)
		}
		r.h[name] = h
	}
	return r, nil
}

// Held reports whether node has the address on its interface.
func (r *VIPReader) Held(node string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.h[node]
	if h == nil {
		return false, fmt.Errorf("cluster: no handle for %s", node)
	}
	link, err := h.LinkByName(harness.NodeIface)
	if err != nil {
		return false, err
	}
	addrs, err := h.AddrList(link, unix.AF_INET)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == r.ip {
			return true, nil
		}
	}
	return false, nil
}

// Close closes the handles.
func (r *VIPReader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.h {
		h.Close()
	}
	r.h = nil
}
