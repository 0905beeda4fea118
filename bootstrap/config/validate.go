package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/vip"
)

// Limits. Every one is checked by Validate and named in its message.
const (
	// maxNameLen keeps the replication slot name twonode_<name> within
	// PostgreSQL's 63 bytes.
	maxNameLen = 63 - len("twonode_")

	minProbeInterval    = 100 * time.Millisecond
	maxProbeInterval    = 10 * time.Second
	minProbeTimeout     = 10 * time.Millisecond
	minFailureThreshold = 2
	maxFailureThreshold = 100
	maxBootGrace        = time.Hour
	minPauseExpiry      = time.Minute
	maxPauseExpiry      = 24 * time.Hour
	minPromoteTimeout   = time.Second
	maxPromoteTimeout   = time.Hour
	minSlowCommit       = 100 * time.Millisecond
	maxSlowCommit       = time.Minute
	minSlowFor          = time.Second
	maxSlowFor          = 10 * time.Minute
	minDetectionWindow  = time.Second
	maxDetectionWindow  = 5 * time.Minute
	maxClockOffset      = 24 * time.Hour
	maxCompactMinRetain = 100_000_000
	minWitnessTimeout   = 100 * time.Millisecond
	maxWitnessTimeout   = time.Minute
	minLeaseTTL         = 2 * time.Second
	maxLeaseTTL         = 10 * time.Minute
	maxWitnessEndpoints = 9
	maxWitnessPrefix    = 200

	// maxSocketPath is the longest unix socket path Linux takes (sun_path
	// is 108 bytes with its terminating NUL).
	maxSocketPath = 107
)

var (
	nameRE          = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	osUserRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)
	sharedBuffersRE = regexp.MustCompile(`^[0-9]{1,12}(kB|MB|GB|TB)?$`)
	unitRE          = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+\.service$`)
)

// problems collects Validate's findings, each a sentence naming its field.
type problems []error

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, errors.New(field+": "+fmt.Sprintf(format, args...)))
}

// Validate checks the whole config and reports every problem at once
// (errors.Join), each as "field.path: what is wrong (got X)". It reads no
// files: the secret is checked by ReadSecret.
func (c *Config) Validate() error {
	var p problems

	nodeOK := p.name("node.name", c.Node.Name)
	nodeAddr, nodeAddrOK := p.address("node.address", c.Node.Address)
	peerOK := p.name("peer.name", c.Peer.Name)
	if nodeOK && peerOK && c.Node.Name == c.Peer.Name {
		p.add("peer.name", "must differ from node.name (both %s)", c.Node.Name)
	}
	peerAddr, peerAddrOK := p.address("peer.address", c.Peer.Address)
	if nodeAddrOK && peerAddrOK {
		switch {
		case nodeAddr == peerAddr:
			p.add("peer.address", "must differ from node.address (both %s)", nodeAddr)
		case nodeAddr.Is4() != peerAddr.Is4():
			p.add("peer.address", "must be of the same IP family as node.address, or the peer's pg_hba would not know this node (got %s %s, node.address is %s %s)",
				family(peerAddr), peerAddr, family(nodeAddr), nodeAddr)
		}
	}

	switch {
	case c.SecretFile == "":
		p.add("secret_file", "required: the path of a file holding the cluster secret")
	case !filepath.IsAbs(c.SecretFile):
		// Not echoed: what was written here may be the secret itself.
		p.add("secret_file", "must be an absolute path to the file holding the secret, not the secret itself (got a relative value of %d characters)", len(c.SecretFile))
	case hasUnsafeChars(c.SecretFile):
		p.add("secret_file", "must not contain quotes, backslashes or control characters")
	}

	if nodeOK && peerOK && c.PreferredLeader != "" && c.PreferredLeader != c.Node.Name && c.PreferredLeader != c.Peer.Name {
		p.add("preferred_leader", "must be empty or one of node.name and peer.name (%s, %s) (got %q)", c.Node.Name, c.Peer.Name, c.PreferredLeader)
	}

	if c.Failover != "auto" && c.Failover != "manual" {
		p.add("failover", "must be auto or manual (got %q)", c.Failover)
	}

	p.path("data_dir", c.DataDir)
	if p.path("run_dir", c.RunDir) {
		if sock := filepath.Join(c.RunDir, "pg", ".s.PGSQL."+strconv.Itoa(c.Postgres.Port)); len(sock) > maxSocketPath {
			p.add("run_dir", "too long: PostgreSQL's socket %s would be %d bytes, the limit is %d (got %q)", sock, len(sock), maxSocketPath, c.RunDir)
		}
	}

	p.path("postgres.bin_dir", c.Postgres.BinDir)
	pgPortOK := p.port("postgres.port", c.Postgres.Port)
	if !osUserRE.MatchString(c.Postgres.OSUser) {
		p.add("postgres.os_user", "must be an operating-system user name such as postgres (got %q)", c.Postgres.OSUser)
	}
	if c.Postgres.SharedBuffers != "" && !sharedBuffersRE.MatchString(c.Postgres.SharedBuffers) {
		p.add("postgres.shared_buffers", "must be empty (PostgreSQL's default) or a size such as 128MB or 1GB (got %q)", c.Postgres.SharedBuffers)
	}
	if c.Postgres.Supervisor != "process" && c.Postgres.Supervisor != "systemd" {
		p.add("postgres.supervisor", "must be process or systemd (got %q)", c.Postgres.Supervisor)
	}

	p.path("kine.binary", c.Kine.Binary)
	kineOK := false
	if host, port, ok := p.hostPort("kine.listen", c.Kine.Listen, "127.0.0.1:2379"); ok {
		if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() || a.Zone() != "" {
			p.add("kine.listen", "must be a loopback address such as 127.0.0.1:2379: Kine has no authentication (got %q)", c.Kine.Listen)
		} else {
			kineOK = port > 0
		}
	}
	if c.Kine.Supervisor != "process" && c.Kine.Supervisor != "systemd" {
		p.add("kine.supervisor", "must be process or systemd (got %q)", c.Kine.Supervisor)
	}
	if c.Kine.CompactMinRetain < 0 || c.Kine.CompactMinRetain > maxCompactMinRetain {
		p.add("kine.compact_min_retain", "must be between 0 and %d (got %d)", maxCompactMinRetain, c.Kine.CompactMinRetain)
	}
	if !unitRE.MatchString(c.Kine.Unit) {
		p.add("kine.unit", "must be a systemd service name such as twonode-kine.service (got %q)", c.Kine.Unit)
	}

	t := c.Timers
	intervalOK := p.between("timers.probe_interval", t.ProbeInterval, minProbeInterval, maxProbeInterval)
	switch {
	case t.ProbeTimeout < minProbeTimeout:
		p.add("timers.probe_timeout", "must be at least %s (got %s)", dur(minProbeTimeout), dur(t.ProbeTimeout))
	case intervalOK && t.ProbeTimeout >= t.ProbeInterval:
		p.add("timers.probe_timeout", "must be shorter than timers.probe_interval, or probes would overlap (got %s, probe_interval %s)", dur(t.ProbeTimeout), dur(t.ProbeInterval))
	}
	thresholdOK := true
	if t.FailureThreshold < minFailureThreshold || t.FailureThreshold > maxFailureThreshold {
		p.add("timers.failure_threshold", "must be between %d and %d (got %d)", minFailureThreshold, maxFailureThreshold, t.FailureThreshold)
		thresholdOK = false
	}
	if intervalOK && thresholdOK {
		const field = "timers.probe_interval × timers.failure_threshold"
		switch w := c.DetectionWindow(); {
		case w < minDetectionWindow:
			p.add(field, "the detection window is too short to be safe: a GC pause or a busy disk would promote the follower (got %s × %d = %s, minimum %s)",
				dur(t.ProbeInterval), t.FailureThreshold, dur(w), dur(minDetectionWindow))
		case w > maxDetectionWindow:
			p.add(field, "the detection window is too long: writes would stall that long after the leader dies (got %s × %d = %s, maximum %s)",
				dur(t.ProbeInterval), t.FailureThreshold, dur(w), dur(maxDetectionWindow))
		}
	}
	p.between("timers.boot_grace", t.BootGrace, 0, maxBootGrace)
	p.between("timers.pause_expiry", t.PauseExpiry, minPauseExpiry, maxPauseExpiry)
	p.between("timers.promote_timeout", t.PromoteTimeout, minPromoteTimeout, maxPromoteTimeout)
	if t.SlowCommit != 0 && (t.SlowCommit < minSlowCommit || t.SlowCommit > maxSlowCommit) {
		p.add("timers.slow_commit", "must be 0s (never) or between %s and %s (got %s)", dur(minSlowCommit), dur(maxSlowCommit), dur(t.SlowCommit))
	}
	p.between("timers.slow_for", t.SlowFor, minSlowFor, maxSlowFor)

	peerPortOK := p.port("api.peer_port", c.API.PeerPort)
	if pgPortOK && peerPortOK && c.API.PeerPort == c.Postgres.Port {
		p.add("api.peer_port", "must differ from postgres.port: both listen on node.address (both %d)", c.Postgres.Port)
	}
	if p.path("api.socket", c.API.Socket) && len(c.API.Socket) > maxSocketPath {
		p.add("api.socket", "too long for a unix socket: %d bytes, the limit is %d (got %q)", len(c.API.Socket), maxSocketPath, c.API.Socket)
	}
	if c.API.Metrics != "" {
		if host, port, ok := p.hostPort("api.metrics", c.API.Metrics, "127.0.0.1:9641, or empty to disable metrics"); ok && kineOK {
			kHost, kPort, _ := net.SplitHostPort(c.Kine.Listen)
			if kp, _ := strconv.Atoi(kPort); kp == port && sameHost(host, kHost) {
				p.add("api.metrics", "must not listen where kine.listen does (got %s, kine.listen %s)", c.API.Metrics, c.Kine.Listen)
			}
		}
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "must be debug, info, warn or error (got %q)", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		p.add("log.format", "must be text or json (got %q)", c.Log.Format)
	}

	p.witness(c.Witness)
	p.watchdog(c)
	if c.VIP.On() || c.VIP.Interface != "" {
		p.vip(c.VIP, nodeAddr, peerAddr)
	}
	if c.Archives.Keep < 1 || c.Archives.Keep > 1000 {
		p.add("archives.keep", "must be between 1 and 1000 (got %d)", c.Archives.Keep)
	}
	if c.Archives.MaxAge != 0 {
		p.between("archives.max_age", c.Archives.MaxAge, 24*time.Hour, 10*365*24*time.Hour)
	}

	p.between("test_clock_offset", c.ClockOffset, -maxClockOffset, maxClockOffset)

	return errors.Join(p...)
}

// watchdog checks the watchdog against the lease: a hung agent's node must
// reset before the witness can expire its lease, which has at least half
// its TTL left between two renewals (less a request's time), and the
// last pet may be one probe interval old.
func (p *problems) watchdog(c *Config) {
	w := c.Witness
	if w.Watchdog != "" {
		p.path("witness.watchdog", w.Watchdog)
	}
	limit := w.LeaseTTL/2 - w.RequestTimeout - c.Timers.ProbeInterval
	switch {
	case w.WatchdogTimeout < time.Second || w.WatchdogTimeout%time.Second != 0:
		p.add("witness.watchdog_timeout", "must be whole seconds, at least 1s: watchdog devices count in seconds (got %s)", dur(w.WatchdogTimeout))
	case w.On() && w.Watchdog != "" && w.WatchdogTimeout > limit:
		p.add("witness.watchdog_timeout", "must be at most lease_ttl/2 - request_timeout - probe_interval (%s), or a hung agent's node would reset after its lease expired (got %s)",
			dur(limit), dur(w.WatchdogTimeout))
	}
}

var witnessPrefixRE = regexp.MustCompile(`^/[A-Za-z0-9._/-]*/$`)

// witness checks the witness block: nothing but its timers when it has no
// endpoints (a half-written block is a mistake, not "no witness").
func (p *problems) witness(w Witness) {
	p.between("witness.dial_timeout", w.DialTimeout, minWitnessTimeout, maxWitnessTimeout)
	reqOK := p.between("witness.request_timeout", w.RequestTimeout, minWitnessTimeout, maxWitnessTimeout)
	switch {
	case !p.between("witness.lease_ttl", w.LeaseTTL, minLeaseTTL, maxLeaseTTL):
	case w.LeaseTTL%time.Second != 0:
		p.add("witness.lease_ttl", "must be whole seconds: etcd's leases count in seconds (got %s)", dur(w.LeaseTTL))
	case reqOK && w.LeaseTTL < 3*w.RequestTimeout:
		p.add("witness.lease_ttl", "must be at least 3 × witness.request_timeout, so that a renewal can answer before the leader must stop (got %s, request_timeout %s)",
			dur(w.LeaseTTL), dur(w.RequestTimeout))
	}
	if w.Unreachable != "wait" && w.Unreachable != "promote" {
		p.add("witness.unreachable", "must be wait or promote (got %q)", w.Unreachable)
	}
	if !w.On() {
		for _, f := range [][2]string{{"witness.ca_file", w.CAFile}, {"witness.cert_file", w.CertFile}, {"witness.key_file", w.KeyFile}, {"witness.prefix", w.Prefix}} {
			if f[1] != "" {
				p.add(f[0], "is set but witness.endpoints is empty: give the endpoints, or remove the witness block")
			}
		}
		return
	}
	eps := w.EndpointList()
	if len(eps) > maxWitnessEndpoints {
		p.add("witness.endpoints", "at most %d endpoints (got %d)", maxWitnessEndpoints, len(eps))
	}
	for _, e := range eps {
		u, err := url.Parse(e)
		switch {
		case err != nil || u.Host == "" || u.Opaque != "":
			p.add("witness.endpoints", "each must be a URL such as https://10.0.0.5:2379 (got %q)", e)
		case u.Scheme != "https":
			p.add("witness.endpoints", "must be https:// URLs: the witness decides who may write, so it is reached over TLS only (got %q)", e)
		case u.Port() == "":
			p.add("witness.endpoints", "must name a port, such as :2379 (got %q)", e)
		case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			p.add("witness.endpoints", "must be scheme, host and port only (got %q)", e)
		}
	}
	p.path("witness.ca_file", w.CAFile)
	p.path("witness.cert_file", w.CertFile)
	p.path("witness.key_file", w.KeyFile)
	switch {
	case w.Prefix == "":
		p.add("witness.prefix", "required with a witness: a key prefix unique to this pair, such as /twonode/site-042/")
	case len(w.Prefix) > maxWitnessPrefix:
		p.add("witness.prefix", "at most %d characters (got %d)", maxWitnessPrefix, len(w.Prefix))
	case w.Prefix == "/" || !witnessPrefixRE.MatchString(w.Prefix) || strings.Contains(w.Prefix, "//"):
		p.add("witness.prefix", "must start and end with '/', name this pair (not just \"/\") and hold only letters, digits, '.', '_', '-' and '/' (got %q)", w.Prefix)
	}
}

// name checks a node name; it reports whether the name is usable.
func (p *problems) name(field, v string) bool {
	switch {
	case v == "":
		p.add(field, "required")
	case !nameRE.MatchString(v):
		p.add(field, "must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit (got %q)", v)
	case len(v) > maxNameLen:
		p.add(field, "must be at most %d characters, so that the replication slot twonode_<name> fits PostgreSQL's 63 (got %d characters)", maxNameLen, len(v))
	default:
		return true
	}
	return false
}

// address checks a node address: one IP literal a peer can connect to.
func (p *problems) address(field, v string) (netip.Addr, bool) {
	if v == "" {
		p.add(field, "required")
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(v)
	switch {
	case err != nil:
		p.add(field, "must be an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1, not a host name (got %q)", v)
	case a.Zone() != "":
		p.add(field, "must not carry an IPv6 zone: pg_hba cannot express one (got %q)", v)
	case a.Is4In6():
		p.add(field, "must be written as plain IPv4 (got %s, write %s)", v, a.Unmap())
	case a.IsUnspecified():
		p.add(field, "must be this node's own address, not the unspecified address (got %s)", v)
	case a.IsMulticast():
		p.add(field, "must be a unicast address (got %s)", v)
	case a.Is6() && a.IsLinkLocalUnicast():
		p.add(field, "a link-local IPv6 address needs a zone, which pg_hba cannot express: use a global or unique-local address (got %s)", v)
	default:
		return a, true
	}
	return netip.Addr{}, false
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// path checks an absolute path that ends up in configuration files and
// command lines; it reports whether the path is usable.
func (p *problems) path(field, v string) bool {
	switch {
	case v == "":
		p.add(field, "required: an absolute path")
	case !filepath.IsAbs(v):
		p.add(field, "must be an absolute path (got %q)", v)
	case hasUnsafeChars(v):
		p.add(field, "must not contain quotes, backslashes or control characters: it is written into PostgreSQL's configuration (got %q)", v)
	default:
		return true
	}
	return false
}

func hasUnsafeChars(v string) bool {
	return strings.ContainsFunc(v, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r == '\'' || r == '"' || r == '\\'
	})
}

// port checks a TCP port number.
func (p *problems) port(field string, v int) bool {
	if v < 1 || v > 65535 {
		p.add(field, "must be between 1 and 65535 (got %d)", v)
		return false
	}
	return true
}

// hostPort checks a host:port listen address with a non-zero port.
func (p *problems) hostPort(field, v, example string) (string, int, bool) {
	host, portStr, err := net.SplitHostPort(v)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		p.add(field, "must be host:port such as %s (got %q)", example, v)
		return "", 0, false
	}
	if port < 1 || port > 65535 {
		p.add(field, "must have a port between 1 and 65535 (got %q)", v)
		return "", 0, false
	}
	return host, port, true
}

// sameHost reports whether two listeners on the same port would collide:
// the same host, or either one on every address.
func sameHost(a, b string) bool {
	wild := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || (err == nil && ip.IsUnspecified())
	}
	if wild(a) || wild(b) {
		return true
	}
	ia, errA := netip.ParseAddr(a)
	ib, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return ia.Unmap() == ib.Unmap()
	}
	return strings.EqualFold(a, b)
}

// between checks lo <= v <= hi.
func (p *problems) between(field string, v, lo, hi time.Duration) bool {
	if v < lo || v > hi {
		p.add(field, "must be between %s and %s (got %s)", dur(lo), dur(hi), dur(v))
		return false
	}
	return true
}

// dur prints a duration the way people write it: 1m, not 1m0s.
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// vip checks the address block as far as it can without the machine's
// interfaces (the agent checks those when it starts): a free host address
// of the subnet both nodes are on, with the subnet's prefix length.
func (p *problems) vip(v VIP, self, peer netip.Addr) {
	if v.Address == "" {
		p.add("vip.interface", "is set but vip.address is empty: give the address, or remove the vip block")
		return
	}
	a, err := netip.ParsePrefix(v.Address)
	if err != nil {
		p.add("vip.address", "must be an address with the subnet's prefix length, such as 10.0.0.100/24 or fd00:1::100/64 (got %q)", v.Address)
		return
	}
	if err := (vip.Config{Address: a, Interface: v.Interface}).Check(self, peer); err != nil {
		for _, e := range Unjoin(err) {
			msg, field := strings.TrimPrefix(e.Error(), "vip: "), "vip.address"
			if strings.HasPrefix(msg, "interface ") {
				field = "vip.interface"
			}
			p.add(field, "%s", msg)
		}
	}
}

// Unjoin lists the errors an errors.Join made (Validate's is one): one
// error per field, for a caller that files each under its own name.
func Unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
