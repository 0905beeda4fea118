package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twonode-edge/twonode/bootstrap/witness/witnesstest"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// witnessSite is the pair's witness in a cluster: a real three-member etcd
// cluster in namespaces of its own on the site's switch (harness
// WithWitnesses), TLS everywhere, a client certificate per node.
type witnessSite struct {
	pki     *witnesstest.PKI
	members []witnesstest.Member
	procs   map[string]*harness.Proc
	certs   map[string][2]string // node -> cert, key
}

const witnessMembers = 3

// setupWitness makes the CA and the certificates; nothing starts yet.
func (c *Cluster) setupWitness() error {
	dir := filepath.Join(c.Opts.Dir, "witness")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	pki, err := witnesstest.NewPKI(dir)
	if err != nil {
		return err
	}
	ws := &witnessSite{pki: pki, procs: map[string]*harness.Proc{}, certs: map[string][2]string{}}
	for _, w := range c.Net.Witnesses() {
		ws.members = append(ws.members, witnesstest.Member{Name: w, IP: net.ParseIP(c.Net.Addr(w)), ClientPort: 2379, PeerPort: 2380})
	}
	for _, n := range []string{"a", "b"} {
		cert, key, err := pki.Issue("node-"+n, net.ParseIP(c.Net.Addr(n)))
		if err != nil {
			return err
		}
		ws.certs[n] = [2]string{cert, key}
	}
	c.wit = ws
	return nil
}

// witnessConfig is a node's witness block.
func (c *Cluster) witnessConfig(node string) string {
	ws := c.wit
	var eps []string
	for _, m := range ws.members {
		eps = append(eps, m.ClientURL())
	}
	wd := ""
	if c.Opts.Watchdog {
		wd = c.watchdogPipe(node)
	}
	policy := c.Opts.WitnessUnreachable
	if policy == "" {
		policy = "wait"
	}
	return fmt.Sprintf("witness: {endpoints: %q, ca_file: %s, cert_file: %s, key_file: %s, prefix: /twonode/%s/, watchdog: %q, watchdog_timeout: %s, unreachable: %s}\n",
		strings.Join(eps, ","), ws.pki.CAFile, ws.certs[node][0], ws.certs[node][1], c.Opts.Prefix, wd, WatchdogTimeout, policy)
}

// StartWitness starts the etcd members (or those not running).
func (c *Cluster) StartWitness() error {
	ws := c.wit
	if ws == nil {
		return errors.New("cluster: no witness (Options.Witness)")
	}
	dir := filepath.Join(c.Opts.Dir, "witness")
	for _, m := range ws.members {
		if p := ws.procs[m.Name]; p != nil && p.Running() {
			continue
		}
		args, err := ws.pki.Args(m, ws.members, dir)
		if err != nil {
			return err
		}
		p, err := harness.StartInNetns(c.Net.NS(m.Name), "etcd-"+m.Name, filepath.Join(dir, m.Name+".log"), nil,
			append([]string{c.Opts.EtcdBin}, args...)...)
		if err != nil {
			return err
		}
		ws.procs[m.Name] = p
	}
	return nil
}

// StopWitness kills every etcd member: the witness is down.
func (c *Cluster) StopWitness() error {
	var errs []error
	for _, w := range c.Net.Witnesses() {
		errs = append(errs, c.Net.PowerOff(w))
	}
	if c.wit != nil {
		for _, p := range c.wit.procs {
			_ = p.Wait(5 * time.Second)
		}
		clear(c.wit.procs)
	}
	return errors.Join(errs...)
}

// CutFromWitness makes node unable to reach any witness member (and the
// members unable to answer it).
func (c *Cluster) CutFromWitness(node string) error {
	var errs []error
	for _, w := range c.Net.Witnesses() {
		errs = append(errs, c.Net.Partition(node, w))
	}
	return errors.Join(errs...)
}

// watchdogPipe is the test stand-in for a node's watchdog device (FOR
// TESTS ONLY): a named pipe the agent writes its pets to. Once armed (a
// first pet), a read that finds no pet for WatchdogTimeout powers the node
// off, as a real watchdog resets the machine; 'V' disarms it.
func (c *Cluster) watchdogPipe(node string) string {
	return filepath.Join(c.Nodes[node].Dir, "watchdog")
}

// WatchdogTimeout is the agents' witness.watchdog_timeout in the cluster.
const WatchdogTimeout = 3 * time.Second

// startWatchdogs makes each node's pipe and reads it until the cluster
// closes. Resets are recorded (Resets).
func (c *Cluster) startWatchdogs() error {
	for _, n := range []string{"a", "b"} {
		path := c.watchdogPipe(n)
		_ = os.Remove(path)
		if err := unix.Mkfifo(path, 0o600); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		go c.readWatchdog(n, f)
	}
	return nil
}

func (c *Cluster) readWatchdog(node string, f *os.File) {
	defer f.Close()
	buf := make([]byte, 64)
	var armed bool
	var last time.Time
	for {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		// The file is in Go's poller (a non-blocking FIFO): a Read would
		// park until a pet came, so each one is bounded.
		_ = f.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _ := f.Read(buf)
		for _, b := range buf[:n] {
			armed, last = b != 'V', time.Now()
		}
		if armed && time.Since(last) > WatchdogTimeout {
			armed = false
			c.mu.Lock()
			c.resets = append(c.resets, WatchdogReset{Node: node, At: time.Now(), LastPet: last})
			c.mu.Unlock()
			_ = c.PowerOff(node)
		}
		if n == 0 {
			time.Sleep(50 * time.Millisecond) // no writer: reads return at once
		}
	}
}

// WatchdogReset is one node powered off by its (test) watchdog.
type WatchdogReset struct {
	Node        string
	At, LastPet time.Time
}

// FreezeAgent stops the node's agent process (SIGSTOP) and nothing else:
// PostgreSQL and Kine go on, as with an agent that hangs.
func (c *Cluster) FreezeAgent(node string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.Nodes[node].proc
	if p == nil {
		return fmt.Errorf("cluster: %s's agent is not running", node)
	}
	return p.Signal(syscall.SIGSTOP)
}

// Resets returns the watchdog resets so far.
func (c *Cluster) Resets() []WatchdogReset {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]WatchdogReset(nil), c.resets...)
}
