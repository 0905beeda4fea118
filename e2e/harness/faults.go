package harness

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// FaultTable is the nftables table the partition rules live in, one per
// namespace. Deleting it heals everything at once.
const FaultTable = "twonode_fault"

// Partition silently drops every packet node `from` sends to node `to`
// (one-way). It is an output-hook rule in from's namespace matching
// daddr=to, so it also cuts established connections and the replies to
// anything `to` sends: a TCP connection needs both directions, so a one-way
// partition breaks TCP both ways, while one-way traffic (UDP datagrams,
// ICMP echo requests) from `to` still arrives at `from`. Nodes: "a", "b",
// "c" (rules in c only affect traffic c itself originates, not bridged
// traffic between a and b). Packets are dropped, not rejected: peers see
// timeouts, as with a cut cable between switches.
func (n *Network) Partition(from, to string) error {
	if from == to {
		return fmt.Errorf("harness: partition %s from itself", from)
	}
	return n.dropFrom(from, to, "")
}

// dropFrom adds, in from's namespace, one drop rule per match (an nft
// match such as "tcp dport 5432"; "" drops everything) for the packets
// from sends to node to. "add" is idempotent for the table and the chain;
// one transaction.
func (n *Network) dropFrom(from, to string, matches ...string) error {
	f, err := n.Node(from)
	if err != nil {
		return err
	}
	t, err := n.Node(to)
	if err != nil {
		return err
	}
	script := fmt.Sprintf("add table inet %[1]s\nadd chain inet %[1]s output { type filter hook output priority 0; policy accept; }\n", FaultTable)
	for _, m := range matches {
		script += fmt.Sprintf("add rule inet %s output ip daddr %s %s counter drop\n", FaultTable, t.Addr, m)
	}
	return nft(f.NS, script)
}

// BlockPort drops every TCP packet between a and b to or from port (both
// directions, both ends): one service's traffic is cut while the rest of
// the link works (the pair's PostgreSQL port, with the agents still
// talking).
func (n *Network) BlockPort(a, b string, port int) error {
	dport, sport := fmt.Sprintf("tcp dport %d", port), fmt.Sprintf("tcp sport %d", port)
	return errors.Join(n.dropFrom(a, b, dport, sport), n.dropFrom(b, a, dport, sport))
}

// RefuseConnects makes node `from` unable to open (or keep) TCP
// connections to those ports of node `to`, while `to` still connects to
// `from`'s: for instance a leader that cannot reach its follower's agent
// or database while the follower's walreceiver streams from it.
func (n *Network) RefuseConnects(from, to string, ports ...int) error {
	matches := make([]string, len(ports))
	for i, p := range ports {
		matches[i] = fmt.Sprintf("tcp dport %d", p)
	}
	return n.dropFrom(from, to, matches...)
}

// Isolate partitions a and b in both directions.
func (n *Network) Isolate(a, b string) error {
	return errors.Join(n.Partition(a, b), n.Partition(b, a))
}

// Heal removes the fault tables from all namespaces of the site.
func (n *Network) Heal() error {
	var errs []error
	for _, ns := range n.Namespaces() {
		// Adding before deleting makes the delete succeed whether or not
		// the table existed, in one atomic transaction.
		errs = append(errs, nft(ns, fmt.Sprintf("add table inet %[1]s\ndelete table inet %[1]s\n", FaultTable)))
	}
	return errors.Join(errs...)
}

// FaultRules returns the ruleset of node's fault table ("" when none), for
// logs and assertions.
func (n *Network) FaultRules(node string) (string, error) {
	x, err := n.Node(node)
	if err != nil {
		return "", err
	}
	out, err := runTool("ip", nil, "netns", "exec", x.NS, "nft", "list", "table", "inet", FaultTable)
	if err != nil {
		return "", nil // no table: no fault
	}
	return string(out), nil
}

func nft(ns, script string) error {
	_, err := runTool("ip", []byte(script), "netns", "exec", ns, "nft", "-f", "-")
	return err
}

// LinkDown sets the node's LAN interface down. Unlike a partition this fails
// fast: the connected route disappears and sends fail with "Network is
// unreachable" at once. The address stays configured.
func (n *Network) LinkDown(node string) error { return n.setLink(node, "down") }

// LinkUp undoes LinkDown.
func (n *Network) LinkUp(node string) error { return n.setLink(node, "up") }

func (n *Network) setLink(node, state string) error {
	x, err := n.Node(node)
	if err != nil {
		return err
	}
	return ip("-n", x.NS, "link", "set", x.Iface, state)
}

// PowerOff kills every process of the node at once (SIGKILL), like pulling
// the plug: no shutdown handlers, no flushes beyond what the kernel has.
func (n *Network) PowerOff(node string) error {
	x, err := n.Node(node)
	if err != nil {
		return err
	}
	return KillNamespace(x.NS, syscall.SIGKILL)
}

// Freeze stops every process of the node (SIGSTOP): a hung machine that
// keeps its sockets open. Thaw resumes it.
func (n *Network) Freeze(node string) error {
	x, err := n.Node(node)
	if err != nil {
		return err
	}
	return KillNamespace(x.NS, syscall.SIGSTOP)
}

// Thaw resumes a frozen node (SIGCONT).
func (n *Network) Thaw(node string) error {
	x, err := n.Node(node)
	if err != nil {
		return err
	}
	return KillNamespace(x.NS, syscall.SIGCONT)
}

// Ping sends one ICMP echo from node `from` to node `to` (1 s timeout) and
// reports whether a reply came back. Needs ping (iputils-ping).
func (n *Network) Ping(from, to string) bool {
	f, err := n.Node(from)
	if err != nil {
		return false
	}
	t, err := n.Node(to)
	if err != nil {
		return false
	}
	_, err = Exec(f.NS, 3*time.Second, "ping", "-n", "-q", "-c1", "-W1", t.Addr)
	return err == nil
}

// Restore undoes every fault of the site: partitions healed, node links up,
// frozen nodes thawed (powered-off processes are gone; restart them).
func (n *Network) Restore() error {
	errs := []error{n.Heal()}
	for _, x := range []string{"a", "b"} {
		errs = append(errs, n.LinkUp(x), n.Thaw(x))
	}
	return errors.Join(errs...)
}
