// Package config is the agent's configuration: one struct, read from a YAML
// file (strictly: an unknown key is an error), overridden by command-line
// flags and their TWONODE_ environment twins, and validated once, reporting
// every problem at the same time.
//
// The defaults live in Default and nowhere else: Parse decodes onto them,
// Flags shows them in --help, and example.yaml documents them (a test keeps
// it in step). The one derived default is api.socket, which follows run_dir
// unless it is set.
package config

import (
	"math"
	"strings"
	"time"
)

// Config is everything the agent on one node needs to know.
type Config struct {
	Node            Host          `yaml:"node" usage:"this node's"`
	Peer            Host          `yaml:"peer" usage:"the peer's"`
	SecretFile      string        `yaml:"secret_file" usage:"file holding the cluster secret (at least 32 bytes, mode 0600 or 0400, owned by root)"`
	PreferredLeader string        `yaml:"preferred_leader" usage:"node that leads when the pair first forms; empty: the lexically smaller name"`
	Failover        string        `yaml:"failover" usage:"auto (the follower takes over by itself) or manual (it waits for an operator's twonode promote)"`
	DataDir         string        `yaml:"data_dir" usage:"persistent directory: state file, pgdata, split-brain archives"`
	RunDir          string        `yaml:"run_dir" usage:"runtime directory: sockets, pid files, passfiles"`
	Postgres        Postgres      `yaml:"postgres" usage:"PostgreSQL"`
	Kine            Kine          `yaml:"kine" usage:"Kine"`
	Timers          Timers        `yaml:"timers" usage:"failure detection"`
	API             API           `yaml:"api" usage:"the agent's APIs"`
	Log             Log           `yaml:"log" usage:"logging"`
	Witness         Witness       `yaml:"witness" usage:"the third vote"`
	VIP             VIP           `yaml:"vip" usage:"the pair's stable API address"`
	Archives        Archives      `yaml:"archives" usage:"split-brain archives"`
	ClockOffset     time.Duration `yaml:"test_clock_offset" usage:"FOR FAULT TESTS ONLY: added to the agent's wall clock (-24h..24h)"`
}

// Host names one node of the pair.
type Host struct {
	Name    string `yaml:"name" usage:"name: lower-case letters, digits and '-', at most 55 characters"`
	Address string `yaml:"address" usage:"address: an IPv4 or IPv6 literal, not a host name; PostgreSQL and the peer API listen on it"`
}

// Postgres is the local PostgreSQL installation.
type Postgres struct {
	BinDir        string `yaml:"bin_dir" usage:"directory of the PostgreSQL server binaries (pg_ctl, initdb, pg_basebackup, pg_rewind)"`
	Port          int    `yaml:"port" usage:"PostgreSQL TCP port, on both nodes"`
	OSUser        string `yaml:"os_user" usage:"operating-system user PostgreSQL runs as"`
	SharedBuffers string `yaml:"shared_buffers" usage:"PostgreSQL shared_buffers such as 256MB; empty: PostgreSQL's default"`
	Supervisor    string `yaml:"supervisor" usage:"how the server is run: process (pg_ctl, the agent's child) or systemd (the unit twonode-postgresql.service, which outlives the agent)"`
}

// Kine is the etcd shim the Kubernetes API server talks to.
type Kine struct {
	Binary     string `yaml:"binary" usage:"path of the kine binary"`
	Listen     string `yaml:"listen" usage:"loopback host:port Kine serves etcd on (Kine has no authentication)"`
	Supervisor string `yaml:"supervisor" usage:"how Kine is run: process (a child of the agent) or systemd"`
	Unit       string `yaml:"unit" usage:"systemd unit for Kine when supervisor is systemd"`
	// CompactMinRetain is Kine's --compact-min-retain: compaction never
	// removes the newest this many revisions.
	CompactMinRetain int `yaml:"compact_min_retain" usage:"revisions Kine's compaction always keeps (0..100000000; Kine's default 1000)"`
}

// Timers are the failure detector's settings. A follower promotes after
// FailureThreshold consecutive failed probes, ProbeInterval apart: the
// detection window.
type Timers struct {
	ProbeInterval    time.Duration `yaml:"probe_interval" usage:"time between two probes of the peer (100ms..10s)"`
	ProbeTimeout     time.Duration `yaml:"probe_timeout" usage:"how long one probe may take; shorter than probe_interval"`
	FailureThreshold int           `yaml:"failure_threshold" usage:"consecutive failed probes before acting (2..100)"`
	BootGrace        time.Duration `yaml:"boot_grace" usage:"how long a starting agent waits for its peer before acting alone (0s..1h)"`
	PauseExpiry      time.Duration `yaml:"pause_expiry" usage:"default length of 'twonode pause' (1m..24h)"`
	PromoteTimeout   time.Duration `yaml:"promote_timeout" usage:"how long a promotion may take (1s..1h)"`
	// SlowCommit and SlowFor: a disk whose commits (the leader's) or
	// flushes (the follower's) take longer than SlowCommit for SlowFor is
	// slow: a slow follower is left behind asynchronously, a slow leader
	// hands over to a follower seen to flush fast (docs/architecture.md,
	// "Slow, not dead").
	SlowCommit time.Duration `yaml:"slow_commit" usage:"a commit or flush slower than this counts as a slow disk (0s: never; else 100ms..1m)"`
	SlowFor    time.Duration `yaml:"slow_for" usage:"how long commits must stay slow before the pair acts (1s..10m)"`
}

// Archives bounds the split-brain archives a node keeps (sealed, in
// <data_dir>/archive): evidence an operator reads, not a store; pruned when
// one is written and when the agent starts.
type Archives struct {
	Keep   int           `yaml:"keep" usage:"archives kept; the oldest beyond are deleted (1..1000)"`
	MaxAge time.Duration `yaml:"max_age" usage:"archives older than this are deleted; 0s: kept however old (0s, or 24h..87600h)"`
}

// API are the agent's listeners.
type API struct {
	PeerPort int    `yaml:"peer_port" usage:"TCP port of the peer API on node.address"`
	Socket   string `yaml:"socket" usage:"unix socket of the local API; empty: <run_dir>/agent.sock"`
	Metrics  string `yaml:"metrics" usage:"host:port of the Prometheus metrics; empty: no metrics"`
}

// Witness is the pair's third vote: a record in an etcd cluster (its v3
// API) that both nodes reach, typically one cluster at a central site for a
// whole fleet, each pair under a prefix of its own. Optional: with no
// endpoints the pair decides alone, as without a witness.
type Witness struct {
	Endpoints      string        `yaml:"endpoints" usage:"comma-separated https:// client URLs of the etcd cluster; empty: no witness"`
	CAFile         string        `yaml:"ca_file" usage:"CA certificates (PEM) that sign the etcd servers' certificates"`
	CertFile       string        `yaml:"cert_file" usage:"this node's client certificate (PEM) for etcd"`
	KeyFile        string        `yaml:"key_file" usage:"that certificate's private key (PEM, mode 0600 or 0400)"`
	Prefix         string        `yaml:"prefix" usage:"key prefix unique to this pair, such as /twonode/site-042/"`
	DialTimeout    time.Duration `yaml:"dial_timeout" usage:"how long connecting to the witness may take (100ms..1m)"`
	RequestTimeout time.Duration `yaml:"request_timeout" usage:"how long one request to the witness may take (100ms..1m)"`
	LeaseTTL       time.Duration `yaml:"lease_ttl" usage:"lease of a leader that leads alone: it stops serving before it could expire (2s..10m, whole seconds)"`
	Unreachable    string        `yaml:"unreachable" usage:"when the witness cannot be reached: wait (no take-over, no going alone; safe) or promote (decide as without a witness)"`
	// The watchdog resets the node if the agent hangs while the witness may
	// hold its lease, so that a frozen agent's Kine cannot keep writing.
	Watchdog        string        `yaml:"watchdog" usage:"Linux watchdog device armed while this node holds the lease; empty: none (a hung agent could keep writing)"`
	WatchdogTimeout time.Duration `yaml:"watchdog_timeout" usage:"watchdog timeout (whole seconds, at most lease_ttl/2 - request_timeout - probe_interval)"`
}

// On reports whether a witness is configured.
func (w Witness) On() bool { return w.Endpoints != "" }

// EndpointList is Endpoints split at commas, spaces trimmed.
func (w Witness) EndpointList() []string {
	var out []string
	for _, e := range strings.Split(w.Endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// VIP is the pair's stable API address: a virtual IP on the leader's
// interface only, moved with the database and Kine by one decision (see
// package vip). Optional: empty, each node is reached at its own address.
type VIP struct {
	Address   string `yaml:"address" usage:"a free address of the site subnet with the subnet's prefix length, such as 10.0.0.100/24; empty: none"`
	Interface string `yaml:"interface" usage:"interface that carries it; empty: the one holding node.address"`
}

// On reports whether a virtual IP is configured.
func (v VIP) On() bool { return v.Address != "" }

// AddressLifetime is how long the kernel keeps the pair's address on the
// leader after its agent last renewed it (at every tick): failure_threshold
// - 1 probe intervals, in whole seconds, at least one. A leader whose agent
// hangs loses the address by itself before its follower can have decided
// to take over (after failure_threshold probes, each up to probe_timeout,
// and a promotion), so the address is never on two nodes because one
// agent stopped; the kernel may take up to a quarter second more than the
// lifetime. The price: an agent that stalls longer than that, or crashes
// and restarts, leaves its leader without the address until its next tick.
func (c *Config) AddressLifetime() time.Duration {
	return max(time.Second, (time.Duration(c.Timers.FailureThreshold-1) * c.Timers.ProbeInterval).Truncate(time.Second))
}

// Log is the agent's own logging.
type Log struct {
	Level  string `yaml:"level" usage:"debug, info, warn or error"`
	Format string `yaml:"format" usage:"text or json"`
}

// socketName is the local API socket's name inside run_dir, the one default
// that is derived from another setting.
const socketName = "agent.sock"

// Default is the configuration before the file and the flags: everything
// but node, peer and secret_file, which have no sensible default.
func Default() Config {
	return Config{
		Failover: "auto",
		DataDir:  "/usr/local/twonode", // persistent on Kairos
		RunDir:   "/run/twonode",
		Postgres: Postgres{
			BinDir:        "/usr/lib/postgresql/15/bin",
			Port:          5432,
			OSUser:        "postgres",
			SharedBuffers: "",
			Supervisor:    "process",
		},
		Kine: Kine{
			Binary:           "/opt/twonode/bin/kine",
			Listen:           "127.0.0.1:2379",
			Supervisor:       "process",
			Unit:             "twonode-kine.service",
			CompactMinRetain: 1000,
		},
		Timers: Timers{
			ProbeInterval:    500 * time.Millisecond,
			ProbeTimeout:     400 * time.Millisecond,
			FailureThreshold: 3,
			BootGrace:        30 * time.Second,
			PauseExpiry:      2 * time.Hour,
			PromoteTimeout:   60 * time.Second,
			SlowCommit:       time.Second,
			SlowFor:          2 * time.Second,
		},
		API: API{
			PeerPort: 8760,
			Socket:   "/run/twonode/" + socketName,
			Metrics:  "127.0.0.1:9641",
		},
		Log: Log{
			Level:  "info",
			Format: "text",
		},
		Archives: Archives{Keep: 20, MaxAge: 90 * 24 * time.Hour},
		Witness: Witness{
			DialTimeout:     2 * time.Second,
			RequestTimeout:  time.Second,
			LeaseTTL:        10 * time.Second,
			Unreachable:     "wait",
			Watchdog:        "/dev/watchdog",
			WatchdogTimeout: 3 * time.Second,
		},
	}
}

// DetectionWindow is how long the peer must fail every probe before the
// agent acts: ProbeInterval × FailureThreshold. It saturates instead of
// overflowing and is 0 when either factor is not positive.
func (c *Config) DetectionWindow() time.Duration {
	d, n := c.Timers.ProbeInterval, int64(c.Timers.FailureThreshold)
	if d <= 0 || n <= 0 {
		return 0
	}
	if int64(d) > math.MaxInt64/n {
		return time.Duration(math.MaxInt64)
	}
	return d * time.Duration(n)
}
