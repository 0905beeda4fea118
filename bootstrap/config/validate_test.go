package config

import (
	"strings"
	"testing"
	"time"
)

// valid is the smallest valid config: the defaults plus the required fields.
func withWitness(c *Config) {
	c.Witness = Witness{Endpoints: "https://10.0.0.5:2379,https://10.0.0.6:2379", CAFile: "/etc/twonode/witness-ca.pem",
		CertFile: "/etc/twonode/witness.pem", KeyFile: "/etc/twonode/witness-key.pem", Prefix: "/twonode/site-042/",
		DialTimeout: 2 * time.Second, RequestTimeout: time.Second, LeaseTTL: 10 * time.Second, Unreachable: "wait",
		Watchdog: "/dev/watchdog", WatchdogTimeout: 3 * time.Second}
}

func valid() Config {
	c := Default()
	c.Node = Host{Name: "a", Address: "10.0.0.1"}
	c.Peer = Host{Name: "b", Address: "10.0.0.2"}
	c.SecretFile = "/etc/twonode/secret"
	return c
}

func TestValidateAcceptsValid(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"defaults":                 func(*Config) {},
		"a virtual IP":             func(c *Config) { c.VIP.Address, c.VIP.Interface = "10.0.0.100/24", "eth0" },
		"IPv6 pair":                func(c *Config) { c.Node.Address, c.Peer.Address = "fd00::1", "fd00::2" },
		"IPv6 upper case":          func(c *Config) { c.Node.Address, c.Peer.Address = "FD00::1", "2001:DB8::2" },
		"loopback lab pair":        func(c *Config) { c.Node.Address, c.Peer.Address = "127.0.0.1", "127.0.0.2" },
		"hyphenated names":         func(c *Config) { c.Node.Name, c.Peer.Name = "edge-01", "edge-02" },
		"digit names":              func(c *Config) { c.Node.Name, c.Peer.Name = "1", "2" },
		"55-character name":        func(c *Config) { c.Node.Name = strings.Repeat("n", 55) },
		"preferred leader is node": func(c *Config) { c.PreferredLeader = "a" },
		"preferred leader is peer": func(c *Config) { c.PreferredLeader = "b" },
		"metrics disabled":         func(c *Config) { c.API.Metrics = "" },
		"metrics on all addresses": func(c *Config) { c.API.Metrics = ":9641" },
		"metrics on IPv6 loopback": func(c *Config) { c.API.Metrics = "[::1]:9641" },
		"kine on IPv6 loopback":    func(c *Config) { c.Kine.Listen = "[::1]:2379" },
		"kine on 127.0.0.53":       func(c *Config) { c.Kine.Listen = "127.0.0.53:2379" },
		"systemd supervisor":       func(c *Config) { c.Kine.Supervisor = "systemd"; c.Kine.Unit = "kine@a.service" },
		"postgres under systemd":   func(c *Config) { c.Postgres.Supervisor = "systemd" },
		"shared buffers 256MB":     func(c *Config) { c.Postgres.SharedBuffers = "256MB" },
		"shared buffers in pages":  func(c *Config) { c.Postgres.SharedBuffers = "16384" },
		"no boot grace":            func(c *Config) { c.Timers.BootGrace = 0 },
		"window exactly 1s": func(c *Config) {
			c.Timers.ProbeInterval, c.Timers.ProbeTimeout, c.Timers.FailureThreshold = 500*time.Millisecond, 100*time.Millisecond, 2
		},
		"window exactly 5m":         func(c *Config) { c.Timers.ProbeInterval, c.Timers.FailureThreshold = 10*time.Second, 30 },
		"clock offset -24h":         func(c *Config) { c.ClockOffset = -24 * time.Hour },
		"clock offset 24h":          func(c *Config) { c.ClockOffset = 24 * time.Hour },
		"pause expiry bounds":       func(c *Config) { c.Timers.PauseExpiry = time.Minute },
		"json debug logs":           func(c *Config) { c.Log.Level, c.Log.Format = "debug", "json" },
		"other ports":               func(c *Config) { c.Postgres.Port, c.API.PeerPort = 65535, 1 },
		"socket elsewhere":          func(c *Config) { c.API.Socket = "/var/run/twonode.sock" },
		"spaces in paths are fine":  func(c *Config) { c.DataDir = "/srv/two node" },
		"metrics beside kine port":  func(c *Config) { c.API.Metrics = "127.0.0.2:2379" },
		"probe timeout just under":  func(c *Config) { c.Timers.ProbeTimeout = c.Timers.ProbeInterval - 1 },
		"secret file in a tmp path": func(c *Config) { c.SecretFile = "/tmp/x/secret" },
	} {
		t.Run(name, func(t *testing.T) {
			c := valid()
			mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

// TestValidateErrors covers every check: one mistake, one exact message.
func TestValidateErrors(t *testing.T) {
	long := "/" + strings.Repeat("r", 100)
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"node name missing", func(c *Config) { c.Node.Name = "" }, "node.name: required"},
		{"node name upper case", func(c *Config) { c.Node.Name = "Node_A" },
			`node.name: must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit (got "Node_A")`},
		{"node name leading hyphen", func(c *Config) { c.Node.Name = "-a" },
			`node.name: must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit (got "-a")`},
		{"node name trailing hyphen", func(c *Config) { c.Node.Name = "a-" },
			`node.name: must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit (got "a-")`},
		{"node name with a dot", func(c *Config) { c.Node.Name = "a.example" },
			`node.name: must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit (got "a.example")`},
		{"node name too long", func(c *Config) { c.Node.Name = strings.Repeat("n", 56) },
			"node.name: must be at most 55 characters, so that the replication slot twonode_<name> fits PostgreSQL's 63 (got 56 characters)"},
		{"peer name missing", func(c *Config) { c.Peer.Name = "" }, "peer.name: required"},
		{"peer name invalid", func(c *Config) { c.Peer.Name = "b b" },
			`peer.name: must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit (got "b b")`},
		{"same names", func(c *Config) { c.Peer.Name = "a" }, "peer.name: must differ from node.name (both a)"},
		{"node address missing", func(c *Config) { c.Node.Address = "" }, "node.address: required"},
		{"node address a host name", func(c *Config) { c.Node.Address = "a.example" },
			`node.address: must be an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1, not a host name (got "a.example")`},
		{"node address with a prefix", func(c *Config) { c.Node.Address = "10.0.0.1/24" },
			`node.address: must be an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1, not a host name (got "10.0.0.1/24")`},
		{"node address with a zone", func(c *Config) { c.Node.Address = "fe80::1%eth0" },
			`node.address: must not carry an IPv6 zone: pg_hba cannot express one (got "fe80::1%eth0")`},
		{"node address IPv4-mapped", func(c *Config) { c.Node.Address = "::ffff:10.0.0.1" },
			"node.address: must be written as plain IPv4 (got ::ffff:10.0.0.1, write 10.0.0.1)"},
		{"node address unspecified", func(c *Config) { c.Node.Address = "0.0.0.0" },
			"node.address: must be this node's own address, not the unspecified address (got 0.0.0.0)"},
		{"node address IPv6 unspecified", func(c *Config) { c.Node.Address = "::" },
			"node.address: must be this node's own address, not the unspecified address (got ::)"},
		{"node address multicast", func(c *Config) { c.Node.Address = "224.0.0.1" },
			"node.address: must be a unicast address (got 224.0.0.1)"},
		{"node address link-local IPv6", func(c *Config) { c.Node.Address = "fe80::1" },
			"node.address: a link-local IPv6 address needs a zone, which pg_hba cannot express: use a global or unique-local address (got fe80::1)"},
		{"peer address missing", func(c *Config) { c.Peer.Address = "" }, "peer.address: required"},
		{"peer address a host name", func(c *Config) { c.Peer.Address = "b" },
			`peer.address: must be an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1, not a host name (got "b")`},
		{"same addresses", func(c *Config) { c.Peer.Address = "10.0.0.1" },
			"peer.address: must differ from node.address (both 10.0.0.1)"},
		{"same IPv6 addresses written differently", func(c *Config) { c.Node.Address, c.Peer.Address = "fd00::1", "fd00:0:0::1" },
			"peer.address: must differ from node.address (both fd00::1)"},
		{"mixed families", func(c *Config) { c.Peer.Address = "fd00::2" },
			"peer.address: must be of the same IP family as node.address, or the peer's pg_hba would not know this node (got IPv6 fd00::2, node.address is IPv4 10.0.0.1)"},
		{"secret file missing", func(c *Config) { c.SecretFile = "" },
			"secret_file: required: the path of a file holding the cluster secret"},
		{"secret file relative", func(c *Config) { c.SecretFile = "secret" },
			"secret_file: must be an absolute path to the file holding the secret, not the secret itself (got a relative value of 6 characters)"},
		{"secret file with a quote", func(c *Config) { c.SecretFile = "/etc/it's" },
			"secret_file: must not contain quotes, backslashes or control characters"},
		{"preferred leader unknown", func(c *Config) { c.PreferredLeader = "c" },
			`preferred_leader: must be empty or one of node.name and peer.name (a, b) (got "c")`},
		{"data dir missing", func(c *Config) { c.DataDir = "" }, "data_dir: required: an absolute path"},
		{"data dir relative", func(c *Config) { c.DataDir = "var/twonode" },
			`data_dir: must be an absolute path (got "var/twonode")`},
		{"data dir with a quote", func(c *Config) { c.DataDir = "/srv/it's" },
			`data_dir: must not contain quotes, backslashes or control characters: it is written into PostgreSQL's configuration (got "/srv/it's")`},
		{"data dir with a newline", func(c *Config) { c.DataDir = "/srv/a\nb" },
			`data_dir: must not contain quotes, backslashes or control characters: it is written into PostgreSQL's configuration (got "/srv/a\nb")`},
		{"run dir relative", func(c *Config) { c.RunDir = "run"; c.API.Socket = "/run/twonode/agent.sock" },
			`run_dir: must be an absolute path (got "run")`},
		{"run dir too long for the PostgreSQL socket", func(c *Config) { c.RunDir = long; c.API.Socket = "/run/twonode/agent.sock" },
			`run_dir: too long: PostgreSQL's socket ` + long + `/pg/.s.PGSQL.5432 would be 118 bytes, the limit is 107 (got "` + long + `")`},
		{"bin dir relative", func(c *Config) { c.Postgres.BinDir = "bin" },
			`postgres.bin_dir: must be an absolute path (got "bin")`},
		{"postgres port zero", func(c *Config) { c.Postgres.Port = 0 }, "postgres.port: must be between 1 and 65535 (got 0)"},
		{"postgres port too big", func(c *Config) { c.Postgres.Port = 65536 }, "postgres.port: must be between 1 and 65535 (got 65536)"},
		{"os user missing", func(c *Config) { c.Postgres.OSUser = "" },
			`postgres.os_user: must be an operating-system user name such as postgres (got "")`},
		{"os user with a space", func(c *Config) { c.Postgres.OSUser = "post gres" },
			`postgres.os_user: must be an operating-system user name such as postgres (got "post gres")`},
		{"shared buffers with a space", func(c *Config) { c.Postgres.SharedBuffers = "256 MB" },
			`postgres.shared_buffers: must be empty (PostgreSQL's default) or a size such as 128MB or 1GB (got "256 MB")`},
		{"shared buffers injecting a setting", func(c *Config) { c.Postgres.SharedBuffers = "1GB\nfsync=off" },
			`postgres.shared_buffers: must be empty (PostgreSQL's default) or a size such as 128MB or 1GB (got "1GB\nfsync=off")`},
		{"postgres supervisor unknown", func(c *Config) { c.Postgres.Supervisor = "runit" },
			`postgres.supervisor: must be process or systemd (got "runit")`},
		{"kine compact_min_retain negative", func(c *Config) { c.Kine.CompactMinRetain = -1 },
			"kine.compact_min_retain: must be between 0 and 100000000 (got -1)"},
		{"kine binary missing", func(c *Config) { c.Kine.Binary = "" }, "kine.binary: required: an absolute path"},
		{"kine on the node address", func(c *Config) { c.Kine.Listen = "10.0.0.1:2379" },
			`kine.listen: must be a loopback address such as 127.0.0.1:2379: Kine has no authentication (got "10.0.0.1:2379")`},
		{"kine on all addresses", func(c *Config) { c.Kine.Listen = ":2379" },
			`kine.listen: must be a loopback address such as 127.0.0.1:2379: Kine has no authentication (got ":2379")`},
		{"kine on localhost by name", func(c *Config) { c.Kine.Listen = "localhost:2379" },
			`kine.listen: must be a loopback address such as 127.0.0.1:2379: Kine has no authentication (got "localhost:2379")`},
		{"kine without a port", func(c *Config) { c.Kine.Listen = "127.0.0.1" },
			`kine.listen: must be host:port such as 127.0.0.1:2379 (got "127.0.0.1")`},
		{"kine port zero", func(c *Config) { c.Kine.Listen = "127.0.0.1:0" },
			`kine.listen: must have a port between 1 and 65535 (got "127.0.0.1:0")`},
		{"kine supervisor unknown", func(c *Config) { c.Kine.Supervisor = "runit" },
			`kine.supervisor: must be process or systemd (got "runit")`},
		{"kine unit not a service", func(c *Config) { c.Kine.Unit = "kine" },
			`kine.unit: must be a systemd service name such as twonode-kine.service (got "kine")`},
		{"probe interval too short", func(c *Config) {
			c.Timers.ProbeInterval = 50 * time.Millisecond
			c.Timers.ProbeTimeout = 40 * time.Millisecond
		},
			"timers.probe_interval: must be between 100ms and 10s (got 50ms)"},
		{"probe interval too long", func(c *Config) { c.Timers.ProbeInterval = 20 * time.Second },
			"timers.probe_interval: must be between 100ms and 10s (got 20s)"},
		{"probe timeout too short", func(c *Config) { c.Timers.ProbeTimeout = 5 * time.Millisecond },
			"timers.probe_timeout: must be at least 10ms (got 5ms)"},
		{"probe timeout equal to the interval", func(c *Config) { c.Timers.ProbeTimeout = 500 * time.Millisecond },
			"timers.probe_timeout: must be shorter than timers.probe_interval, or probes would overlap (got 500ms, probe_interval 500ms)"},
		{"failure threshold too small", func(c *Config) { c.Timers.FailureThreshold = 1 },
			"timers.failure_threshold: must be between 2 and 100 (got 1)"},
		{"failure threshold too large", func(c *Config) { c.Timers.FailureThreshold = 101 },
			"timers.failure_threshold: must be between 2 and 100 (got 101)"},
		{"detection window too short", func(c *Config) {
			c.Timers.ProbeInterval, c.Timers.ProbeTimeout, c.Timers.FailureThreshold = 100*time.Millisecond, 50*time.Millisecond, 5
		},
			"timers.probe_interval × timers.failure_threshold: the detection window is too short to be safe: a GC pause or a busy disk would promote the follower (got 100ms × 5 = 500ms, minimum 1s)"},
		{"detection window too long", func(c *Config) { c.Timers.ProbeInterval, c.Timers.FailureThreshold = 10*time.Second, 31 },
			"timers.probe_interval × timers.failure_threshold: the detection window is too long: writes would stall that long after the leader dies (got 10s × 31 = 5m10s, maximum 5m)"},
		{"boot grace negative", func(c *Config) { c.Timers.BootGrace = -time.Second },
			"timers.boot_grace: must be between 0s and 1h (got -1s)"},
		{"boot grace too long", func(c *Config) { c.Timers.BootGrace = 61 * time.Minute },
			"timers.boot_grace: must be between 0s and 1h (got 1h1m)"},
		{"pause expiry too short", func(c *Config) { c.Timers.PauseExpiry = 30 * time.Second },
			"timers.pause_expiry: must be between 1m and 24h (got 30s)"},
		{"pause expiry too long", func(c *Config) { c.Timers.PauseExpiry = 25 * time.Hour },
			"timers.pause_expiry: must be between 1m and 24h (got 25h)"},
		{"promote timeout zero", func(c *Config) { c.Timers.PromoteTimeout = 0 },
			"timers.promote_timeout: must be between 1s and 1h (got 0s)"},
		{"promote timeout too long", func(c *Config) { c.Timers.PromoteTimeout = 90 * time.Minute },
			"timers.promote_timeout: must be between 1s and 1h (got 1h30m)"},
		{"slow commit too short", func(c *Config) { c.Timers.SlowCommit = 10 * time.Millisecond },
			"timers.slow_commit: must be 0s (never) or between 100ms and 1m (got 10ms)"},
		{"slow for zero", func(c *Config) { c.Timers.SlowFor = 0 },
			"timers.slow_for: must be between 1s and 10m (got 0s)"},
		{"peer port zero", func(c *Config) { c.API.PeerPort = 0 }, "api.peer_port: must be between 1 and 65535 (got 0)"},
		{"witness prefix without endpoints", func(c *Config) { c.Witness.Prefix = "/twonode/x/" },
			"witness.prefix: is set but witness.endpoints is empty: give the endpoints, or remove the witness block"},
		{"witness ca without endpoints", func(c *Config) { c.Witness.CAFile = "/etc/ca.pem" },
			"witness.ca_file: is set but witness.endpoints is empty: give the endpoints, or remove the witness block"},
		{"witness cert without endpoints", func(c *Config) { c.Witness.CertFile = "/etc/c.pem" },
			"witness.cert_file: is set but witness.endpoints is empty: give the endpoints, or remove the witness block"},
		{"witness key without endpoints", func(c *Config) { c.Witness.KeyFile = "/etc/k.pem" },
			"witness.key_file: is set but witness.endpoints is empty: give the endpoints, or remove the witness block"},
		{"witness over plain http", func(c *Config) { withWitness(c); c.Witness.Endpoints = "http://10.0.0.5:2379" },
			`witness.endpoints: must be https:// URLs: the witness decides who may write, so it is reached over TLS only (got "http://10.0.0.5:2379")`},
		{"witness endpoint without a port", func(c *Config) { withWitness(c); c.Witness.Endpoints = "https://10.0.0.5:2379, https://10.0.0.6" },
			`witness.endpoints: must name a port, such as :2379 (got "https://10.0.0.6")`},
		{"witness endpoint with a path", func(c *Config) { withWitness(c); c.Witness.Endpoints = "https://10.0.0.5:2379/v3" },
			`witness.endpoints: must be scheme, host and port only (got "https://10.0.0.5:2379/v3")`},
		{"witness endpoint a bare host", func(c *Config) { withWitness(c); c.Witness.Endpoints = "10.0.0.5:2379" },
			`witness.endpoints: each must be a URL such as https://10.0.0.5:2379 (got "10.0.0.5:2379")`},
		{"witness without a ca", func(c *Config) { withWitness(c); c.Witness.CAFile = "" }, "witness.ca_file: required: an absolute path"},
		{"witness cert relative", func(c *Config) { withWitness(c); c.Witness.CertFile = "c.pem" }, `witness.cert_file: must be an absolute path (got "c.pem")`},
		{"witness without a key", func(c *Config) { withWitness(c); c.Witness.KeyFile = "" }, "witness.key_file: required: an absolute path"},
		{"witness without a prefix", func(c *Config) { withWitness(c); c.Witness.Prefix = "" },
			"witness.prefix: required with a witness: a key prefix unique to this pair, such as /twonode/site-042/"},
		{"vip not an address with a length", func(c *Config) { c.VIP.Address = "10.0.0.100" },
			`vip.address: must be an address with the subnet's prefix length, such as 10.0.0.100/24 or fd00:1::100/64 (got "10.0.0.100")`},
		{"vip the node's own address", func(c *Config) { c.VIP.Address = "10.0.0.1/24" },
			"vip.address: address 10.0.0.1 is this node's own address (node.address): the virtual IP must be a third, free address"},
		{"vip outside the nodes' subnet", func(c *Config) { c.VIP.Address = "10.0.1.100/24" },
			"vip.address: address 10.0.1.100/24: this node's own address (node.address) 10.0.0.1 is outside its subnet 10.0.1.0/24: the address follows the leader only within one L2 segment, so both nodes must be in its subnet\n" +
				"vip.address: address 10.0.1.100/24: the peer's address (peer.address) 10.0.0.2 is outside its subnet 10.0.1.0/24: the address follows the leader only within one L2 segment, so both nodes must be in its subnet"},
		{"vip interface without an address", func(c *Config) { c.VIP.Interface = "eth0" },
			"vip.interface: is set but vip.address is empty: give the address, or remove the vip block"},
		{"vip interface not a name", func(c *Config) { c.VIP.Address, c.VIP.Interface = "10.0.0.100/24", "eth0/x" },
			`vip.interface: interface "eth0/x" is not an interface name (at most 15 characters, no '/', ':' or spaces)`},
		{"witness prefix the root", func(c *Config) { withWitness(c); c.Witness.Prefix = "/" },
			`witness.prefix: must start and end with '/', name this pair (not just "/") and hold only letters, digits, '.', '_', '-' and '/' (got "/")`},
		{"witness prefix without the last slash", func(c *Config) { withWitness(c); c.Witness.Prefix = "/twonode/site" },
			`witness.prefix: must start and end with '/', name this pair (not just "/") and hold only letters, digits, '.', '_', '-' and '/' (got "/twonode/site")`},
		{"watchdog relative", func(c *Config) { c.Witness.Watchdog = "watchdog" }, `witness.watchdog: must be an absolute path (got "watchdog")`},
		{"watchdog timeout in milliseconds", func(c *Config) { c.Witness.WatchdogTimeout = 1500 * time.Millisecond },
			"witness.watchdog_timeout: must be whole seconds, at least 1s: watchdog devices count in seconds (got 1.5s)"},
		{"watchdog slower than the lease", func(c *Config) { withWitness(c); c.Witness.WatchdogTimeout = 4 * time.Second },
			"witness.watchdog_timeout: must be at most lease_ttl/2 - request_timeout - probe_interval (3.5s), or a hung agent's node would reset after its lease expired (got 4s)"},
		{"failover unknown", func(c *Config) { c.Failover = "automatic" }, `failover: must be auto or manual (got "automatic")`},
		{"no archive kept", func(c *Config) { c.Archives.Keep = 0 }, `archives.keep: must be between 1 and 1000 (got 0)`},
		{"archives kept for an hour", func(c *Config) { c.Archives.MaxAge = time.Hour }, `archives.max_age: must be between 24h and 87600h (got 1h)`},
		{"witness policy unknown", func(c *Config) { c.Witness.Unreachable = "retry" }, `witness.unreachable: must be wait or promote (got "retry")`},
		{"witness dial timeout too short", func(c *Config) { c.Witness.DialTimeout = time.Millisecond },
			"witness.dial_timeout: must be between 100ms and 1m (got 1ms)"},
		{"witness request timeout too long", func(c *Config) { c.Witness.RequestTimeout = time.Hour },
			"witness.request_timeout: must be between 100ms and 1m (got 1h)"},
		{"witness lease in milliseconds", func(c *Config) { c.Witness.LeaseTTL = 2500 * time.Millisecond },
			"witness.lease_ttl: must be whole seconds: etcd's leases count in seconds (got 2.5s)"},
		{"witness lease shorter than three requests", func(c *Config) { c.Witness.LeaseTTL = 2 * time.Second },
			"witness.lease_ttl: must be at least 3 × witness.request_timeout, so that a renewal can answer before the leader must stop (got 2s, request_timeout 1s)"},
		{"peer port is the postgres port", func(c *Config) { c.API.PeerPort = 5432 },
			"api.peer_port: must differ from postgres.port: both listen on node.address (both 5432)"},
		{"socket relative", func(c *Config) { c.API.Socket = "agent.sock" },
			`api.socket: must be an absolute path (got "agent.sock")`},
		{"socket too long", func(c *Config) { c.API.Socket = long + "/agent.sock" },
			`api.socket: too long for a unix socket: 112 bytes, the limit is 107 (got "` + long + `/agent.sock")`},
		{"metrics not host:port", func(c *Config) { c.API.Metrics = "9641" },
			`api.metrics: must be host:port such as 127.0.0.1:9641, or empty to disable metrics (got "9641")`},
		{"metrics port zero", func(c *Config) { c.API.Metrics = "127.0.0.1:0" },
			`api.metrics: must have a port between 1 and 65535 (got "127.0.0.1:0")`},
		{"metrics where kine is", func(c *Config) { c.API.Metrics = "127.0.0.1:2379" },
			"api.metrics: must not listen where kine.listen does (got 127.0.0.1:2379, kine.listen 127.0.0.1:2379)"},
		{"metrics on all addresses at kine's port", func(c *Config) { c.API.Metrics = ":2379" },
			"api.metrics: must not listen where kine.listen does (got :2379, kine.listen 127.0.0.1:2379)"},
		{"log level unknown", func(c *Config) { c.Log.Level = "verbose" },
			`log.level: must be debug, info, warn or error (got "verbose")`},
		{"log format unknown", func(c *Config) { c.Log.Format = "xml" },
			`log.format: must be text or json (got "xml")`},
		{"clock offset too far ahead", func(c *Config) { c.ClockOffset = 25 * time.Hour },
			"test_clock_offset: must be between -24h and 24h (got 25h)"},
		{"clock offset too far behind", func(c *Config) { c.ClockOffset = -25 * time.Hour },
			"test_clock_offset: must be between -24h and 24h (got -25h)"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate accepted it; want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Fatalf("Validate:\n got %q\nwant %q", got, tt.want)
			}
		})
		field, _, _ := strings.Cut(tt.want, ":")
		seen[field] = true
	}
	// Every leaf has at least one check in the table.
	for _, l := range leaves() {
		if !seen[l.field()] {
			t.Errorf("no validation case for %s", l.field())
		}
	}
}

// TestValidateReportsEverything: all problems at once, one line each, in
// field order.
func TestValidateReportsEverything(t *testing.T) {
	var c Config
	err := c.Validate()
	if err == nil {
		t.Fatal("the zero Config validated")
	}
	var fields []string
	for _, line := range strings.Split(err.Error(), "\n") {
		f, _, _ := strings.Cut(line, ":")
		fields = append(fields, f)
	}
	want := []string{
		"node.name", "node.address", "peer.name", "peer.address", "secret_file", "failover",
		"data_dir", "run_dir", "postgres.bin_dir", "postgres.port", "postgres.os_user",
		"postgres.supervisor", "kine.binary", "kine.listen", "kine.supervisor", "kine.unit",
		"timers.probe_interval", "timers.probe_timeout", "timers.failure_threshold",
		"timers.pause_expiry", "timers.promote_timeout", "timers.slow_for",
		"api.peer_port", "api.socket", "log.level", "log.format",
		"witness.dial_timeout", "witness.request_timeout", "witness.lease_ttl", "witness.unreachable", "witness.watchdog_timeout",
		"archives.keep",
	}
	if strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Fatalf("fields reported:\n got %v\nwant %v\nerror:\n%v", fields, want, err)
	}
}

func TestDetectionWindow(t *testing.T) {
	for _, tt := range []struct {
		interval time.Duration
		n        int
		want     time.Duration
	}{
		{500 * time.Millisecond, 3, 1500 * time.Millisecond},
		{time.Second, 0, 0},
		{0, 3, 0},
		{-time.Second, 3, 0},
		{time.Duration(1 << 62), 4, time.Duration(1<<63 - 1)}, // saturates
	} {
		c := Config{Timers: Timers{ProbeInterval: tt.interval, FailureThreshold: tt.n}}
		if got := c.DetectionWindow(); got != tt.want {
			t.Errorf("DetectionWindow(%v × %d) = %v, want %v", tt.interval, tt.n, got, tt.want)
		}
	}
}
