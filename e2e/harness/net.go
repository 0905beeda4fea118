package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NetnsDir is where iproute2 keeps named network namespaces (bind mounts).
const NetnsDir = "/var/run/netns"

// DefaultOctet is the third octet of the default site subnet 10.99.0.0/24:
// node a 10.99.0.1, node b 10.99.0.2, client (bridge) 10.99.0.10.
const DefaultOctet = 99

// NodeIface is the name of the node's LAN interface inside its namespace.
const NodeIface = "eth0"

// cmdTimeout bounds every ip/nft invocation: they normally take a few ms, a
// hung one must fail the test instead of hanging it.
const cmdTimeout = 10 * time.Second

// Node is one namespace of the site.
type Node struct {
	Name  string // "a", "b" (the two twonode nodes) or "c" (switch + clients)
	NS    string // network namespace name, <prefix>-<name>
	Addr  string // IPv4 address without mask
	Iface string // interface holding Addr (eth0 on nodes, br0 on c)
}

// Network is a test site: namespaces <prefix>-a, <prefix>-b and <prefix>-c.
// c holds a bridge br0 (the LAN switch) with the client address; a and b are
// each joined to it by a veth pair (eth0 inside the node, veth-<node> in c).
type Network struct {
	Prefix string
	Octet  int           // third octet of 10.<Octet>.0.0/24
	Setup  time.Duration // how long NewNetwork took (reported by tests)

	nodes map[string]Node

	mu     sync.Mutex
	closed bool
}

type netOptions struct{ octet, witnesses int }

// Option tunes NewNetwork.
type Option func(*netOptions)

// WithSubnet sets the third octet of the site subnet 10.<octet>.0.0/24 so
// that two networks can exist at the same time (they are separate namespaces
// anyway; distinct subnets keep logs and addresses unambiguous).
func WithSubnet(octet int) Option { return func(o *netOptions) { o.octet = octet } }

// WithWitnesses adds n namespaces w1..wn (at most 3) on the site's switch,
// at 10.<octet>.0.21.., for the members of the pair's witness (an etcd
// cluster): a fault can then cut a node from the witness, or the
// witness from everyone.
func WithWitnesses(n int) Option { return func(o *netOptions) { o.witnesses = n } }

// witnessNames are the witness namespaces that may exist (cleanup looks
// for all of them).
var witnessNames = []string{"w1", "w2", "w3"}

// Witnesses names the witness members of the site ("w1".."wn").
func (n *Network) Witnesses() []string {
	var out []string
	for _, w := range witnessNames {
		if _, ok := n.nodes[w]; ok {
			out = append(out, w)
		}
	}
	return out
}

var prefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// NewNetwork creates the site. Leftovers of an earlier interrupted run with
// the same prefix are removed first (CleanupStale). On any error everything
// created so far is removed again.
func NewNetwork(prefix string, opts ...Option) (*Network, error) {
	o := netOptions{octet: DefaultOctet}
	for _, f := range opts {
		f(&o)
	}
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("harness: bad network prefix %q (want [a-z0-9-], at most 40 chars)", prefix)
	}
	if o.octet < 0 || o.octet > 255 {
		return nil, fmt.Errorf("harness: bad subnet octet %d", o.octet)
	}
	if o.witnesses < 0 || o.witnesses > len(witnessNames) {
		return nil, fmt.Errorf("harness: %d witness members, at most %d", o.witnesses, len(witnessNames))
	}
	if err := CleanupStale(prefix); err != nil {
		return nil, err
	}
	start := time.Now()
	n := &Network{Prefix: prefix, Octet: o.octet, nodes: map[string]Node{}}
	sub := fmt.Sprintf("10.%d.0.", o.octet)
	n.nodes["a"] = Node{Name: "a", NS: prefix + "-a", Addr: sub + "1", Iface: NodeIface}
	n.nodes["b"] = Node{Name: "b", NS: prefix + "-b", Addr: sub + "2", Iface: NodeIface}
	n.nodes["c"] = Node{Name: "c", NS: prefix + "-c", Addr: sub + "10", Iface: "br0"}
	for i, w := range witnessNames[:o.witnesses] {
		n.nodes[w] = Node{Name: w, NS: prefix + "-" + w, Addr: fmt.Sprintf("%s%d", sub, 21+i), Iface: NodeIface}
	}

	// Ownership record first, so that even a crash in the middle of the
	// setup leaves something CleanupStale recognises as abandoned.
	if err := writeOwner(prefix); err != nil {
		return nil, err
	}
	register(n)
	if err := n.setup(); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	n.Setup = time.Since(start)
	return n, nil
}

func (n *Network) setup() error {
	c := n.nodes["c"]
	attached := []Node{n.nodes["a"], n.nodes["b"]}
	for _, w := range n.Witnesses() {
		attached = append(attached, n.nodes[w])
	}
	for _, x := range append([]Node{c}, attached...) {
		if err := ip("netns", "add", x.NS); err != nil {
			return err
		}
	}
	steps := [][]string{
		// The switch: a plain bridge, no STP, forwarding at once.
		{"-n", c.NS, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"-n", c.NS, "addr", "add", c.Addr + "/24", "dev", "br0"},
		{"-n", c.NS, "link", "set", "br0", "up"},
	}
	for _, x := range attached {
		peer := "veth-" + x.Name
		steps = append(steps,
			// Created inside the node namespace with the peer placed straight
			// into c: interface names never touch the root namespace, so
			// concurrent networks cannot collide on them.
			[]string{"-n", x.NS, "link", "add", NodeIface, "type", "veth", "peer", "name", peer, "netns", c.NS},
			[]string{"-n", c.NS, "link", "set", peer, "master", "br0"},
			[]string{"-n", c.NS, "link", "set", peer, "up"},
			[]string{"-n", x.NS, "addr", "add", x.Addr + "/24", "dev", NodeIface},
			[]string{"-n", x.NS, "link", "set", NodeIface, "up"},
		)
	}
	for _, x := range append([]Node{c}, attached...) {
		steps = append(steps, []string{"-n", x.NS, "link", "set", "lo", "up"})
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// Node returns a node by name ("a", "b" or "c"; "client" is an alias of c).
func (n *Network) Node(name string) (Node, error) {
	if name == "client" {
		name = "c"
	}
	x, ok := n.nodes[name]
	if !ok {
		return Node{}, fmt.Errorf("harness: unknown node %q (want a, b or c)", name)
	}
	return x, nil
}

// mustNode is for accessors used with literal names; a wrong name is a bug
// in the test, and a panic inside a test still runs its cleanups.
func (n *Network) mustNode(name string) Node {
	x, err := n.Node(name)
	if err != nil {
		panic(err)
	}
	return x
}

// NS returns the namespace of node "a", "b" or "c".
func (n *Network) NS(name string) string { return n.mustNode(name).NS }

// Addr returns the IPv4 address of node "a", "b" or "c" (the client).
func (n *Network) Addr(name string) string { return n.mustNode(name).Addr }

// Peer returns the other node's name: a <-> b.
func Peer(name string) string {
	if name == "a" {
		return "b"
	}
	return "a"
}

// Namespaces lists the namespaces of the site (a, b, c).
func (n *Network) Namespaces() []string {
	out := []string{n.nodes["a"].NS, n.nodes["b"].NS, n.nodes["c"].NS}
	for _, w := range n.Witnesses() {
		out = append(out, n.nodes[w].NS)
	}
	return out
}

// Close kills every process in the site's namespaces and deletes them.
// Safe to call more than once and from a signal handler.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	unregister(n)
	err := removeSite(n.Prefix)
	if err == nil {
		_ = os.Remove(ownerPath(n.Prefix))
	}
	return err
}

// removeSite kills all processes in <prefix>-{a,b,c} and deletes the
// namespaces that exist. A namespace that still holds processes would
// survive `ip netns del` as an anonymous namespace (with kine or postgres
// still running in it), hence the kill first.
func removeSite(prefix string) error {
	var errs []error
	for _, s := range append([]string{"a", "b", "c"}, witnessNames...) {
		ns := prefix + "-" + s
		if _, err := os.Stat(NetnsDir + "/" + ns); err != nil {
			continue
		}
		if err := KillNamespace(ns, syscall.SIGKILL); err != nil {
			errs = append(errs, err)
		}
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ip runs one iproute2 command, bounded by cmdTimeout.
func ip(args ...string) error {
	_, err := runTool("ip", nil, args...)
	return err
}

// runTool runs a short host tool with optional stdin; errors carry the
// command line and its stderr.
func runTool(tool string, stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// ListNamespaces returns the names of all named network namespaces.
func ListNamespaces() ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}
