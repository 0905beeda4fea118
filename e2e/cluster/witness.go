package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	return fmt.Sprintf("witness: {endpoints: %q, ca_file: %s, cert_file: %s, key_file: %s, prefix: /twonode/%s/, watchdog: %q}\n",
		strings.Join(eps, ","), ws.pki.CAFile, ws.certs[node][0], ws.certs[node][1], c.Opts.Prefix, c.Opts.WatchdogPipe)
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
