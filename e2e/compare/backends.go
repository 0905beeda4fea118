package compare

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twonode-edge/twonode/bootstrap/witness/witnesstest"
	"github.com/twonode-edge/twonode/e2e/apiserver"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// Namespace prefixes and subnets of the two sites, reserved in harness.
var (
	pairPrefix, pairSubnet = harness.NetComparePair.Prefix, harness.NetComparePair.Subnet
	etcdPrefix, etcdSubnet = harness.NetCompareEtcd.Prefix, harness.NetCompareEtcd.Subnet
)

// pair is the twonode pair with a kube-apiserver on its leader, a, as k3s
// runs one: against that node's own Kine.
type pair struct {
	c   *cluster.Cluster
	api *apiserver.Server
	db  *pgx.Conn // the leader's PostgreSQL, as its superuser over the socket
	// syncNames is synchronous_standby_names as the agent set it for the
	// formed pair, what the synchronous cells run with.
	syncNames string
}

// startPair forms the pair and starts its API server (not yet ready).
func startPair(ctx context.Context, o Options, b binaries) (*pair, error) {
	opts, err := cluster.FromEnv(cluster.Options{Prefix: pairPrefix, Subnet: pairSubnet, Dir: filepath.Join(o.Dir, "pair"),
		TwonodeBin: b.twonode, KineBin: b.kine})
	if err != nil {
		return nil, err
	}
	c, err := cluster.New(opts)
	if err != nil {
		return nil, err
	}
	p := &pair{c: c}
	if err := c.Form(ctx, 90*time.Second); err != nil {
		return p, fmt.Errorf("forming the pair: %w\n%s", err, c.Logs("b", 20))
	}
	a := c.Nodes["a"]
	p.api, err = apiserver.Start(apiserver.Options{Bin: b.apiserver, NS: a.NS, Addr: a.Addr,
		Dir: filepath.Join(a.Dir, "kube-apiserver"), ClientNS: c.Net.NS("c")})
	return p, err
}

// hold pauses both agents (`twonode pause`: no promotion, no role change
// while the benchmark switches replication under them) and connects to
// the leader's PostgreSQL.
func (p *pair) hold(ctx context.Context) (string, error) {
	said, err := p.c.CLI(ctx, "a", "pause", "--for", "2h")
	if err != nil {
		return said, fmt.Errorf("twonode pause: %w: %s", err, said)
	}
	// The agent's own connection: its socket, user postgres (pg_hba: trust
	// on the socket only), no TLS.
	cfg, err := pgx.ParseConfig("sslmode=disable")
	if err != nil {
		return said, err
	}
	cfg.Host, cfg.Port = filepath.Join(p.c.Nodes["a"].Dir, "run", "pg"), 5432
	cfg.User, cfg.Database = "postgres", "postgres"
	if p.db, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		return said, fmt.Errorf("the leader's PostgreSQL: %w", err)
	}
	if err := p.db.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&p.syncNames); err != nil {
		return said, err
	}
	if p.syncNames == "" {
		return said, errors.New("the formed pair is not synchronous (synchronous_standby_names is empty)")
	}
	return strings.TrimSpace(said), p.checkMode(ctx, true)
}

// setSync switches the leader's replication: synchronous (the agent's
// own synchronous_standby_names) or asynchronous (empty), as the agent's
// SetSync does, and returns once PostgreSQL reports the standby in that
// mode.
func (p *pair) setSync(ctx context.Context, on bool) error {
	val := ""
	if on {
		val = p.syncNames
	}
	for _, q := range []string{"ALTER SYSTEM SET synchronous_standby_names = " + literal(val), "SELECT pg_reload_conf()"} {
		if _, err := p.db.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return p.checkMode(ctx, on)
}

// checkMode waits (2 s at most) until SHOW gives the mode's setting and
// pg_stat_replication the standby's sync_state: "sync" or "async".
func (p *pair) checkMode(ctx context.Context, on bool) error {
	want, state := "", "async"
	if on {
		want, state = p.syncNames, "sync"
	}
	var names, got string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := p.db.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&names); err != nil {
			return err
		}
		err := p.db.QueryRow(ctx, "SELECT coalesce(max(sync_state), 'none') FROM pg_stat_replication WHERE application_name = 'b'").Scan(&got)
		if err != nil {
			return err
		}
		if names == want && got == state {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the leader's replication: synchronous_standby_names %q, b's sync_state %q; want %q, %q", names, got, want, state)
		}
	}
}

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (p *pair) close(remove bool) error {
	var errs []error
	if p.api != nil {
		errs = append(errs, p.api.Stop())
	}
	if p.db != nil {
		errs = append(errs, p.db.Close(context.Background()))
	}
	return errors.Join(append(errs, p.c.Close(remove))...)
}

// etcdSite is a three-member etcd cluster on a site of its own (members
// in namespaces w1..w3 on the site's switch, TLS between members and to
// clients, as the pair's witness runs it: bootstrap/witness/witnesstest),
// with a kube-apiserver on w1, as kubeadm stacks one on each member,
// given all three members' URLs.
type etcdSite struct {
	net   *harness.Network
	procs []*harness.Proc
	api   *apiserver.Server
}

func startEtcd(o Options, b binaries) (*etcdSite, error) {
	n, err := harness.NewNetwork(etcdPrefix, harness.WithSubnet(etcdSubnet), harness.WithWitnesses(3))
	if err != nil {
		return nil, err
	}
	s := &etcdSite{net: n}
	dir := filepath.Join(o.Dir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return s, err
	}
	pki, err := witnesstest.NewPKI(dir)
	if err != nil {
		return s, err
	}
	var members []witnesstest.Member
	var urls []string
	for _, w := range n.Witnesses() {
		m := witnesstest.Member{Name: w, IP: net.ParseIP(n.Addr(w)), ClientPort: 2379, PeerPort: 2380}
		members, urls = append(members, m), append(urls, m.ClientURL())
	}
	for _, m := range members {
		args, err := pki.Args(m, members, dir)
		if err != nil {
			return s, err
		}
		p, err := harness.StartInNetns(n.NS(m.Name), "etcd-"+m.Name, filepath.Join(dir, m.Name+".log"), nil, append([]string{b.etcd}, args...)...)
		if err != nil {
			return s, err
		}
		s.procs = append(s.procs, p)
	}
	host := members[0]
	cert, key, err := pki.Issue("kube-apiserver", host.IP)
	if err != nil {
		return s, err
	}
	s.api, err = apiserver.Start(apiserver.Options{Bin: b.apiserver, NS: n.NS(host.Name), Addr: host.IP.String(),
		Dir: filepath.Join(dir, "kube-apiserver"), ClientNS: n.NS("c"), Etcd: strings.Join(urls, ","),
		ExtraArgs: []string{"--etcd-cafile=" + pki.CAFile, "--etcd-certfile=" + cert, "--etcd-keyfile=" + key}})
	return s, err
}

func (s *etcdSite) close() error {
	var errs []error
	if s.api != nil {
		errs = append(errs, s.api.Stop())
	}
	for _, p := range s.procs {
		errs = append(errs, p.Stop())
	}
	return errors.Join(append(errs, s.net.Close())...)
}

// binaries are the programs of the run: from the environment (as the
// tests name them), or else next to this program (bin/, where
// scripts/build.sh and scripts/build-apiserver.sh put them).
type binaries struct{ twonode, kine, etcd, apiserver string }

func findBinaries() (binaries, error) {
	self, _ := os.Executable()
	find := func(env, name string) string {
		if p := os.Getenv(env); p != "" {
			return p
		}
		return filepath.Join(filepath.Dir(self), name)
	}
	b := binaries{find("TWONODE_BIN", "twonode"), find("KINE_BIN", "kine"), find("ETCD_BIN", "etcd"), find("KUBE_APISERVER_BIN", "kube-apiserver")}
	for _, p := range []string{b.twonode, b.kine, b.etcd, b.apiserver} {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return b, fmt.Errorf("binary %s missing (scripts/build.sh and scripts/build-apiserver.sh build them into bin/)", p)
		}
	}
	return b, nil
}

// version is the first line a binary prints for --version.
func version(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
