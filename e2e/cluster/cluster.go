// Package cluster runs a real twonode pair on one machine: two node network
// namespaces (from package harness), and on each the real `twonode agent`,
// which in turn runs real PostgreSQL and Kine. The lab and the end-to-end
// tests both use it.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/localapi"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// Options describe the pair.
type Options struct {
	Prefix        string        // namespace prefix, e.g. "tnlab"
	Subnet        int           // third octet of 10.x.<Subnet>.0/24
	Dir           string        // everything the pair writes; must be traversable by the postgres user
	TwonodeBin    string        // the twonode binary
	KineBin       string        // the kine binary
	ProbeInterval time.Duration // 0 = the agent's default
	BootGrace     time.Duration // 0 = 5s (the product default is 30s; tests wait less)
	Preferred     string        // preferred first leader ("" = name order: a)
	// ClockOffset moves a node's wall clock (agent and PostgreSQL; the
	// agent's test_clock_offset), by node name.
	ClockOffset map[string]time.Duration
	// DataSize, if set, makes each node's data directory a filesystem of
	// its own of that size (tmpfs, e.g. "192m"), so that a test can fill
	// it (FillDisk).
	DataSize string
	// KineCompactMinRetain, if set, is the agents' kine.compact_min_retain
	// (Kine's own CI runs the storage tests with 0).
	KineCompactMinRetain *int
	// Witness: the pair decides with a witness, a real three-member etcd
	// cluster on the site (EtcdBin, from ETCD_BIN).
	Witness bool
	EtcdBin string
	// Watchdog, with a witness: each agent's watchdog is a named pipe the
	// cluster reads, powering the node off when the pets stop (FOR TESTS
	// ONLY; see watchdogPipe).
	Watchdog bool
	// WitnessUnreachable is the agents' witness.unreachable policy ("" =
	// the default, wait).
	WitnessUnreachable string
	// Failover is the agents' failover setting ("" = auto).
	Failover string
	// VIP: the pair has an address that follows the leader, 10.<Subnet>.0.100
	// (VIPAddr), on each node's eth0.
	VIP bool
	// SlowDisk: each node's PostgreSQL runs with the slow-sync library, so
	// that a test can slow its fsyncs (SlowDisk).
	SlowDisk bool
}

// Node is one member.
type Node struct {
	Name, NS, Addr string
	Dir            string // <cluster dir>/<name>: config, data, run, logs
	proc           *harness.Proc
}

// Socket is the node's local API socket.
func (n *Node) Socket() string { return filepath.Join(n.Dir, "run", "agent.sock") }

// DataDir is the node's persistent data (state file, pgdata, archives).
func (n *Node) DataDir() string { return filepath.Join(n.Dir, "data") }

// Cluster is a running pair.
type Cluster struct {
	Opts   Options
	Net    *harness.Network
	Nodes  map[string]*Node
	mu     sync.Mutex
	wit    *witnessSite    // nil: no witness
	resets []WatchdogReset // the nodes the test watchdog powered off (Resets)
	closed bool
}

// FromEnv fills the binaries from TWONODE_BIN and KINE_BIN, and fails
// loudly (no silent skip) when they are missing.
func FromEnv(o Options) (Options, error) {
	if o.TwonodeBin == "" {
		o.TwonodeBin = os.Getenv("TWONODE_BIN")
	}
	if o.KineBin == "" {
		o.KineBin = os.Getenv("KINE_BIN")
	}
	for _, b := range []string{o.TwonodeBin, o.KineBin} {
		if b == "" {
			return o, errors.New("TWONODE_BIN and KINE_BIN must name the built binaries (scripts/build.sh makes them; `make test` sets these)")
		}
		if _, err := os.Stat(b); err != nil {
			return o, fmt.Errorf("binary missing: %w (run scripts/build.sh)", err)
		}
	}
	if o.Witness {
		if o.EtcdBin == "" {
			o.EtcdBin = os.Getenv("ETCD_BIN")
		}
		if _, err := os.Stat(o.EtcdBin); o.EtcdBin == "" || err != nil {
			return o, fmt.Errorf("a witness needs ETCD_BIN to name the built etcd (scripts/build.sh makes bin/etcd; `make test` sets it): %q", o.EtcdBin)
		}
	}
	if os.Geteuid() != 0 {
		return o, errors.New("end-to-end tests need root: network namespaces, nftables, PostgreSQL as user postgres")
	}
	return o, nil
}

// New creates the network, the directories, the shared secret and the two
// configs. It starts nothing.
func New(o Options) (*Cluster, error) {
	if o.BootGrace == 0 {
		o.BootGrace = 5 * time.Second
	}
	_ = harness.CleanupStale(o.Prefix)
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	opts := []harness.Option{harness.WithSubnet(o.Subnet)}
	if o.Witness {
		opts = append(opts, harness.WithWitnesses(witnessMembers))
	}
	net, err := harness.NewNetwork(o.Prefix, opts...)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Opts: o, Net: net, Nodes: map[string]*Node{}}
	if o.SlowDisk {
		if err := c.buildSlowSync(); err != nil {
			return nil, errors.Join(err, net.Close())
		}
	}
	if o.Witness {
		if err := c.setupWitness(); err != nil {
			return nil, errors.Join(err, net.Close())
		}
	}

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	secretPath := filepath.Join(o.Dir, "secret")
	if err := os.WriteFile(secretPath, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return nil, err
	}
	for _, name := range []string{"a", "b"} {
		n := &Node{Name: name, NS: net.NS(name), Addr: net.Addr(name), Dir: filepath.Join(o.Dir, name)}
		c.Nodes[name] = n
		if err := os.MkdirAll(n.Dir, 0o755); err != nil {
			return nil, err
		}
		if o.DataSize != "" {
			if err := mountData(n.DataDir(), o.DataSize); err != nil {
				return nil, err
			}
		}
		other := harness.Peer(name)
		if err := os.WriteFile(filepath.Join(n.Dir, "config.yaml"), []byte(c.config(n, other, net.Addr(other), secretPath)), 0o600); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) config(n *Node, peer, peerAddr, secret string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node: {name: %s, address: %s}\n", n.Name, n.Addr)
	fmt.Fprintf(&b, "peer: {name: %s, address: %s}\n", peer, peerAddr)
	fmt.Fprintf(&b, "secret_file: %s\n", secret)
	if c.Opts.Preferred != "" {
		fmt.Fprintf(&b, "preferred_leader: %s\n", c.Opts.Preferred)
	}
	fmt.Fprintf(&b, "data_dir: %s\n", n.DataDir())
	fmt.Fprintf(&b, "run_dir: %s\n", filepath.Join(n.Dir, "run"))
	fmt.Fprintf(&b, "postgres: {shared_buffers: 32MB}\n")
	fmt.Fprintf(&b, "kine: {binary: %s", c.Opts.KineBin)
	if r := c.Opts.KineCompactMinRetain; r != nil {
		fmt.Fprintf(&b, ", compact_min_retain: %d", *r)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "timers: {boot_grace: %s", c.Opts.BootGrace)
	if c.Opts.ProbeInterval > 0 {
		fmt.Fprintf(&b, ", probe_interval: %s, probe_timeout: %s", c.Opts.ProbeInterval, c.Opts.ProbeInterval*4/5)
	}
	b.WriteString("}\nlog: {level: debug}\n")
	if off := c.Opts.ClockOffset[n.Name]; off != 0 {
		fmt.Fprintf(&b, "test_clock_offset: %s\n", off)
	}
	if c.wit != nil {
		b.WriteString(c.witnessConfig(n.Name))
	}
	if c.Opts.Failover != "" {
		fmt.Fprintf(&b, "failover: %s\n", c.Opts.Failover)
	}
	if c.Opts.VIP {
		fmt.Fprintf(&b, "vip: {address: %s/24}\n", c.VIPAddr())
	}
	return b.String()
}

// Start starts the node's agent (which starts PostgreSQL and Kine).
func (c *Cluster) Start(name string) error { return c.StartEnv(name) }

// StartEnv starts the node's agent with extra environment (the fault
// hooks, agent.FaultEnv).
func (c *Cluster) StartEnv(name string, env ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[name]
	if n.proc != nil && n.proc.Running() {
		return nil
	}
	env = append(env, c.slowSyncEnv(name)...)
	p, err := harness.StartInNetns(n.NS, "agent-"+name, filepath.Join(n.Dir, "agent.log"), env,
		c.Opts.TwonodeBin, "agent", "--config", filepath.Join(n.Dir, "config.yaml"))
	if err != nil {
		return err
	}
	n.proc = p
	return nil
}

// AgentExited reports whether the node's agent process has ended by
// itself (a fault hook), and forgets it so that Start runs a new one.
func (c *Cluster) AgentExited(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[name]
	if n.proc == nil || n.proc.Running() {
		return false
	}
	n.proc = nil
	return true
}

// Archives reads every split-brain archive the node wrote (sealed with the
// pair's secret, which it reads as the agent does).
func (c *Cluster) Archives(name string) ([]harness.ArchiveRow, error) {
	cfg, err := config.Load(filepath.Join(c.Nodes[name].Dir, "config.yaml"))
	if err != nil {
		return nil, err
	}
	secret, err := cfg.ReadSecret()
	if err != nil {
		return nil, err
	}
	return harness.ReadArchives(filepath.Join(c.Nodes[name].DataDir(), "archive"), secret)
}

// AgentPID is the process ID of the node's running agent (0: none runs).
func (c *Cluster) AgentPID(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.Nodes[name]; n.proc != nil && n.proc.Running() {
		return n.proc.Pid()
	}
	return 0
}

// StopAgent stops only the agent (SIGTERM, or SIGKILL when kill): PostgreSQL
// and Kine go on.
func (c *Cluster) StopAgent(name string, kill bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[name]
	if n.proc == nil {
		return nil
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = n.proc.Signal(sig)
	err := n.proc.Wait(10 * time.Second)
	n.proc = nil
	if kill {
		return nil
	}
	return err
}

// PowerOff kills every process of the node at once (SIGKILL) and empties
// its run directory, as a reboot empties /run.
func (c *Cluster) PowerOff(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[name]
	if err := c.Net.PowerOff(name); err != nil {
		return err
	}
	if n.proc != nil {
		_ = n.proc.Wait(5 * time.Second)
		n.proc = nil
	}
	// Processes outside the namespace view (none expected) would keep files open;
	// the run dir is tmpfs on a real node.
	return os.RemoveAll(filepath.Join(n.Dir, "run"))
}

// Status asks the node's agent through its local API.
func (c *Cluster) Status(ctx context.Context, name string) (localapi.StatusReport, error) {
	return localapi.NewClient(c.Nodes[name].Socket()).Status(ctx)
}

// CLI runs the twonode CLI against a node's socket and returns its output.
func (c *Cluster) CLI(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Opts.TwonodeBin, args...)
	cmd.Env = append(os.Environ(), "TWONODE_SOCKET="+c.Nodes[name].Socket())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Client is an etcd client for the node's Kine, dialled inside its namespace
// (Kine listens on the node's loopback only).
func (c *Cluster) Client(name string) (*clientv3.Client, error) {
	return harness.NewEtcdClient(c.Nodes[name].NS, "127.0.0.1:2379", 2*time.Second)
}

// WaitState waits until the node reports one of the states.
func (c *Cluster) WaitState(ctx context.Context, name string, timeout time.Duration, states ...string) (localapi.StatusReport, error) {
	deadline := time.Now().Add(timeout)
	var last localapi.StatusReport
	var lastErr error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		r, err := c.Status(cctx, name)
		cancel()
		if err == nil {
			last = r
			for _, s := range states {
				if r.State == s {
					return r, nil
				}
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last, fmt.Errorf("node %s not in %v after %s (last state %q, last error %v)", name, states, timeout, last.State, lastErr)
}

// Form starts both agents and waits for a synchronous pair: a leads, b follows.
func (c *Cluster) Form(ctx context.Context, timeout time.Duration) error {
	if c.wit != nil {
		if err := c.StartWitness(); err != nil {
			return err
		}
	}
	if c.Opts.Watchdog {
		if err := c.startWatchdogs(); err != nil {
			return err
		}
	}
	for _, n := range []string{"a", "b"} {
		if err := c.Start(n); err != nil {
			return err
		}
	}
	leader := "a"
	if c.Opts.Preferred != "" {
		leader = c.Opts.Preferred
	}
	if _, err := c.WaitState(ctx, leader, timeout, "leader"); err != nil {
		return err
	}
	_, err := c.WaitState(ctx, harness.Peer(leader), timeout, "follower")
	return err
}

// Logs returns the tail of a node's agent log, for failure messages.
func (c *Cluster) Logs(name string, lines int) string {
	b, _ := os.ReadFile(filepath.Join(c.Nodes[name].Dir, "agent.log"))
	all := strings.Split(string(b), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Close kills everything and removes the network. The directory stays
// unless remove is set (its logs explain a failure).
func (c *Cluster) Close(remove bool) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	var errs []error
	for name := range c.Nodes {
		errs = append(errs, c.PowerOff(name))
	}
	errs = append(errs, c.Net.Close())
	if c.Opts.DataSize != "" {
		for _, n := range c.Nodes {
			errs = append(errs, unmountData(n.DataDir()))
		}
	}
	if remove {
		errs = append(errs, os.RemoveAll(c.Opts.Dir))
	}
	return errors.Join(errs...)
}
