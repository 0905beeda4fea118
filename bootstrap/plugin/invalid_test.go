package plugin

import (
	"reflect"
	"strings"
	"testing"
)

// testSecret is the secret of the base cloud-config below.
const testSecret = "0123456789abcdef0123456789abcdef-test-only"

// base is a valid cloud-config; each case below edits it. Line numbers in
// the messages refer to it (the edits keep them, unless said).
const base = `#cloud-config
cluster:
  cluster_token: shared-token
  role: init
  providerConfig:
    cluster-init: "no"
    datastore-endpoint: http://127.0.0.1:2379
twonode:
  enabled: true
  node:
    name: edge-1
    address: 10.99.0.1
  peer:
    name: edge-2
    address: 10.99.0.2
  secret: ` + testSecret + `
  preferred_leader: edge-1
  timers:
    probe_interval: 500ms
    failure_threshold: 3
    boot_grace: 30s
    pause_expiry: 2h
`

// invalidCases: every field of the block (and of the cluster: block it
// checks) with a wrong value, and the exact message the operator gets.
var invalidCases = []struct {
	name     string
	old, new string // the edit of base
	want     []string
}{
	// enabled
	{"enabled not a boolean", "  enabled: true\n", "  enabled: yes\n",
		[]string{`twonode.enabled (line 9): must be true or false (got "yes")`}},
	{"enabled missing", "  enabled: true\n", "",
		[]string{`twonode.enabled (line 8): required: true to make this node one of a two-node pair, false to keep the block unused`}},

	// the block itself
	{"block empty", "twonode:\n  enabled: true\n", "twonode:\ntwonode_was:\n  enabled: true\n",
		[]string{`twonode (line 8): has no value: write its settings (enabled: true, node, peer, secret) or remove the key`}},
	{"block not a mapping", "twonode:\n", "twonode: on\ntwonode_was:\n",
		[]string{`twonode (line 8): must be a mapping of keys (enabled, node, peer, secret, secret_file, preferred_leader, failover, timers, postgres, api, log, witness, vip), not a single value`}},
	{"block twice", "#cloud-config\n", "#cloud-config\ntwonode: {enabled: false}\n",
		[]string{`twonode: the key appears 2 times (lines 2, 9): keep one`}},
	{"unknown key", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n  kubevip: 10.99.0.3\n",
		[]string{`twonode.kubevip (line 18): unknown key; twonode has enabled, node, peer, secret, secret_file, preferred_leader, failover, timers, postgres, api, log, witness, vip`}},
	{"vip not a mapping", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n  vip: 10.99.0.3\n",
		[]string{`twonode.vip (line 18): must be a mapping of keys (address, interface), not a single value`}},
	{"key twice", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n  preferred_leader: edge-2\n",
		[]string{`twonode.preferred_leader (line 18): appears twice (lines 17 and 18): keep one`}},
	{"merge key", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n  <<: {log: {level: debug}}\n",
		[]string{`twonode.<< (line 18): merge keys are not supported here: write the keys out`}},

	// node and peer
	{"node not a mapping", "  node:\n    name: edge-1\n    address: 10.99.0.1\n", "  node: edge-1\n\n\n",
		[]string{`twonode.node (line 10): must be a mapping of keys (name, address), not a single value`}},
	{"node unknown key", "    address: 10.99.0.1\n", "    address: 10.99.0.1\n    port: 22\n",
		[]string{`twonode.node.port (line 13): unknown key; twonode.node has name, address`}},
	{"node.name missing", "    name: edge-1\n", "",
		[]string{`twonode.node.name: required`}},
	{"node.name not a DNS label", "    name: edge-1\n", "    name: Edge_1\n",
		[]string{`twonode.node.name (line 11): must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit (got "Edge_1")`}},
	{"node.name too long", "    name: edge-1\n", "    name: " + strings.Repeat("n", 56) + "\n",
		[]string{`twonode.node.name (line 11): must be at most 55 characters, so that the replication slot twonode_<name> fits PostgreSQL's 63 (got 56 characters)`}},
	{"node.name a list", "    name: edge-1\n", "    name: [edge-1]\n",
		[]string{`twonode.node.name (line 11): must be a single value, not a list`}},
	{"node.address missing", "    address: 10.99.0.1\n", "",
		[]string{`twonode.node.address: required`}},
	{"node.address a host name", "    address: 10.99.0.1\n", "    address: edge-1.site.example\n",
		[]string{`twonode.node.address (line 12): must be an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1, not a host name (got "edge-1.site.example")`}},
	{"node.address unspecified", "    address: 10.99.0.1\n", "    address: 0.0.0.0\n",
		[]string{`twonode.node.address (line 12): must be this node's own address, not the unspecified address (got 0.0.0.0)`}},
	{"peer.name missing", "    name: edge-2\n", "",
		[]string{`twonode.peer.name: required`}},
	{"peer.name same as node.name", "    name: edge-2\n", "    name: edge-1\n",
		[]string{`twonode.peer.name (line 14): must differ from node.name (both edge-1)`}},
	{"peer.address missing", "    address: 10.99.0.2\n", "",
		[]string{`twonode.peer.address: required`}},
	{"peer.address same as node.address", "    address: 10.99.0.2\n", "    address: 10.99.0.1\n",
		[]string{`twonode.peer.address (line 15): must differ from node.address (both 10.99.0.1)`}},
	{"peer.address other IP family", "    address: 10.99.0.2\n", "    address: fd00::2\n",
		[]string{`twonode.peer.address (line 15): must be of the same IP family as node.address, or the peer's pg_hba would not know this node (got IPv6 fd00::2, node.address is IPv4 10.99.0.1)`}},
	{"peer.address link-local IPv6", "    address: 10.99.0.2\n", "    address: fe80::2\n",
		[]string{`twonode.peer.address (line 15): a link-local IPv6 address needs a zone, which pg_hba cannot express: use a global or unique-local address (got fe80::2)`}},

	// secret and secret_file
	{"secret missing", "  secret: " + testSecret + "\n", "",
		[]string{"twonode.secret: required: the cluster secret, the same on both nodes (generate one with `openssl rand -hex 32`), or secret_file, the path of a file holding it"}},
	{"secret too short", "  secret: " + testSecret + "\n", "  secret: short-secret-of-31-characters-x\n",
		[]string{"twonode.secret (line 16): too short: at least 32 bytes, not counting surrounding spaces (got 31); generate one with `openssl rand -hex 32`"}},
	{"secret short once trimmed", "  secret: " + testSecret + "\n", "  secret: \"   short-secret-of-29-characters   \"\n",
		[]string{"twonode.secret (line 16): too short: at least 32 bytes, not counting surrounding spaces (got 29); generate one with `openssl rand -hex 32`"}},
	{"secret with a control character", "  secret: " + testSecret + "\n", "  secret: \"0123456789abcdef\\n0123456789abcdef-test-only\"\n",
		[]string{"twonode.secret (line 16): must be printable text on one line, without control characters (generate one with `openssl rand -hex 32`)"}},
	{"secret too long", "  secret: " + testSecret + "\n", "  secret: " + strings.Repeat("s", 1025) + "\n",
		[]string{`twonode.secret (line 16): too long: at most 1024 bytes (got 1025)`}},
	{"secret a mapping", "  secret: " + testSecret + "\n", "  secret: {value: " + testSecret + "}\n",
		[]string{`twonode.secret (line 16): must be a single value, not a mapping`}},
	{"secret and secret_file", "  secret: " + testSecret + "\n", "  secret: " + testSecret + "\n  secret_file: /oem/twonode/secret\n",
		[]string{`twonode.secret_file (line 17): give either secret or secret_file, not both`}},
	{"secret_file relative (the secret itself?)", "  secret: " + testSecret + "\n", "  secret_file: " + testSecret + "\n",
		[]string{`twonode.secret_file (line 16): must be the absolute path of a file holding the secret, not the secret itself (got a relative value of 42 characters)`}},
	{"secret_file not a plain path", "  secret: " + testSecret + "\n", "  secret_file: /oem/my secret\n",
		[]string{`twonode.secret_file (line 16): must be a plain absolute path (letters, digits and . _ @ + : - /, no .. or //) (got "/oem/my secret")`}},
	{"secret_file with ..", "  secret: " + testSecret + "\n", "  secret_file: /oem/../etc/shadow\n",
		[]string{`twonode.secret_file (line 16): must be a plain absolute path (letters, digits and . _ @ + : - /, no .. or //) (got "/oem/../etc/shadow")`}},
	{"secret_file where the stages copy it", "  secret: " + testSecret + "\n", "  secret_file: /etc/twonode/secret\n",
		[]string{`twonode.secret_file (line 16): must not be under /etc/twonode: the boot stages copy the secret there from this file; keep it on a persistent path such as /oem/twonode/secret (got "/etc/twonode/secret")`}},

	// preferred_leader
	{"preferred_leader neither node", "  preferred_leader: edge-1\n", "  preferred_leader: edge-3\n",
		[]string{`twonode.preferred_leader (line 17): must be empty or one of node.name and peer.name (edge-1, edge-2) (got "edge-3")`}},

	// timers
	{"timers not a mapping", "  timers:\n    probe_interval: 500ms\n    failure_threshold: 3\n    boot_grace: 30s\n    pause_expiry: 2h\n", "  timers: fast\n",
		[]string{`twonode.timers (line 18): must be a mapping of keys (probe_interval, failure_threshold, boot_grace, pause_expiry, slow_commit, slow_for), not a single value`}},
	{"timers unknown key", "    pause_expiry: 2h\n", "    pause_expiry: 2h\n    probe_timeout: 400ms\n",
		[]string{`twonode.timers.probe_timeout (line 23): unknown key; twonode.timers has probe_interval, failure_threshold, boot_grace, pause_expiry, slow_commit, slow_for`}},
	{"slow_for zero", "    pause_expiry: 2h\n", "    pause_expiry: 2h\n    slow_for: 0s\n",
		[]string{`twonode.timers.slow_for (line 23): must be between 1s and 10m (got 0s)`}},
	{"slow_commit too short", "    pause_expiry: 2h\n", "    pause_expiry: 2h\n    slow_commit: 10ms\n",
		[]string{`twonode.timers.slow_commit (line 23): must be 0s (never) or between 100ms and 1m (got 10ms)`}},
	{"probe_interval without unit", "    probe_interval: 500ms\n", "    probe_interval: 500\n",
		[]string{`twonode.timers.probe_interval (line 19): a duration needs a unit, such as 500ms, 500s or 500m (got 500)`}},
	{"probe_interval not a duration", "    probe_interval: 500ms\n", "    probe_interval: fast\n",
		[]string{`twonode.timers.probe_interval (line 19): must be a duration such as 500ms, 30s or 2h (got "fast")`}},
	{"probe_interval too short", "    probe_interval: 500ms\n", "    probe_interval: 50ms\n",
		[]string{`twonode.timers.probe_interval (line 19): must be between 100ms and 10s (got 50ms)`}},
	{"probe_interval too long", "    probe_interval: 500ms\n", "    probe_interval: 11s\n",
		[]string{`twonode.timers.probe_interval (line 19): must be between 100ms and 10s (got 11s)`}},
	{"failure_threshold not a number", "    failure_threshold: 3\n", "    failure_threshold: three\n",
		[]string{`twonode.timers.failure_threshold (line 20): must be a whole number (got "three")`}},
	{"failure_threshold too low", "    failure_threshold: 3\n", "    failure_threshold: 1\n",
		[]string{`twonode.timers.failure_threshold (line 20): must be between 2 and 100 (got 1)`}},
	{"failure_threshold too high", "    failure_threshold: 3\n", "    failure_threshold: 101\n",
		[]string{`twonode.timers.failure_threshold (line 20): must be between 2 and 100 (got 101)`}},
	{"detection window too short", "    probe_interval: 500ms\n    failure_threshold: 3\n", "    probe_interval: 200ms\n    failure_threshold: 4\n",
		[]string{`twonode.timers.probe_interval × timers.failure_threshold: the detection window is too short to be safe: a GC pause or a busy disk would promote the follower (got 200ms × 4 = 800ms, minimum 1s)`}},
	{"detection window too long", "    probe_interval: 500ms\n    failure_threshold: 3\n", "    probe_interval: 10s\n    failure_threshold: 31\n",
		[]string{`twonode.timers.probe_interval × timers.failure_threshold: the detection window is too long: writes would stall that long after the leader dies (got 10s × 31 = 5m10s, maximum 5m)`}},
	{"boot_grace too long", "    boot_grace: 30s\n", "    boot_grace: 2h\n",
		[]string{`twonode.timers.boot_grace (line 21): must be between 0s and 1h (got 2h)`}},
	{"boot_grace negative", "    boot_grace: 30s\n", "    boot_grace: -1s\n",
		[]string{`twonode.timers.boot_grace (line 21): must be between 0s and 1h (got -1s)`}},
	{"pause_expiry too short", "    pause_expiry: 2h\n", "    pause_expiry: 30s\n",
		[]string{`twonode.timers.pause_expiry (line 22): must be between 1m and 24h (got 30s)`}},
	{"pause_expiry too long", "    pause_expiry: 2h\n", "    pause_expiry: 25h\n",
		[]string{`twonode.timers.pause_expiry (line 22): must be between 1m and 24h (got 25h)`}},
	{"pause_expiry empty", "    pause_expiry: 2h\n", "    pause_expiry:\n",
		[]string{`twonode.timers.pause_expiry (line 22): has no value: remove the key to keep the default, or give a value ("" for empty)`}},

	// postgres, api, log
	{"postgres.port out of range", "  timers:\n", "  postgres: {port: 70000}\n  timers:\n",
		[]string{`twonode.postgres.port (line 18): must be between 1 and 65535 (got 70000)`}},
	{"postgres.shared_buffers not a size", "  timers:\n", "  postgres: {shared_buffers: lots}\n  timers:\n",
		[]string{`twonode.postgres.shared_buffers (line 18): must be empty (PostgreSQL's default) or a size such as 128MB or 1GB (got "lots")`}},
	{"postgres.bin_dir is the image's", "  timers:\n", "  postgres: {bin_dir: /usr/lib/postgresql/16/bin}\n  timers:\n",
		[]string{`twonode.postgres.bin_dir (line 18): unknown key; twonode.postgres has port, shared_buffers`}},
	{"api.peer_port out of range", "  timers:\n", "  api: {peer_port: 0}\n  timers:\n",
		[]string{`twonode.api.peer_port (line 18): must be between 1 and 65535 (got 0)`}},
	{"api.peer_port same as postgres.port", "  timers:\n", "  api: {peer_port: 5432}\n  timers:\n",
		[]string{`twonode.api.peer_port (line 18): must differ from postgres.port: both listen on node.address (both 5432)`}},
	{"api.metrics not host:port", "  timers:\n", "  api: {metrics: nowhere}\n  timers:\n",
		[]string{`twonode.api.metrics (line 18): must be host:port such as 127.0.0.1:9641, or empty to disable metrics (got "nowhere")`}},
	{"api.metrics on Kine's port", "  timers:\n", "  api: {metrics: \"127.0.0.1:2379\"}\n  timers:\n",
		[]string{`twonode.api.metrics (line 18): must not listen where kine.listen does (got 127.0.0.1:2379, kine.listen 127.0.0.1:2379)`}},
	{"log.level unknown", "  timers:\n", "  log: {level: verbose}\n  timers:\n",
		[]string{`twonode.log.level (line 18): must be debug, info, warn or error (got "verbose")`}},
	{"log.format unknown", "  timers:\n", "  log: {format: xml}\n  timers:\n",
		[]string{`twonode.log.format (line 18): must be text or json (got "xml")`}},

	// failover and witness (witnessFiles, from line 18)
	{"failover neither auto nor manual", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n  failover: maybe\n",
		[]string{`twonode.failover (line 18): must be auto or manual (got "maybe")`}},
	{"witness without endpoints", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n" + strings.Replace(witnessFiles, "    endpoints: [https://10.0.0.21:2379, https://10.0.0.22:2379]\n", "", 1),
		[]string{"twonode.witness.endpoints: required with the witness's other keys (prefix, ca_file, cert_file, key_file): the https:// URLs of the witness's etcd cluster; remove the witness section for a pair that decides alone"}},
	{"witness endpoint http://", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n" + strings.Replace(witnessFiles, "https://10.0.0.22", "http://10.0.0.22", 1),
		[]string{`twonode.witness.endpoints (line 19): must be https:// URLs: the witness decides who may write, so it is reached over TLS only (got "http://10.0.0.22:2379")`}},
	{"witness ca and ca_file", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n" + strings.Replace(witnessFiles, "    ca_file:", "    ca: \"-----BEGIN CERTIFICATE-----\"\n    ca_file:", 1),
		[]string{`twonode.witness.ca_file (line 22): give either ca or ca_file, not both`}},
	{"witness ca not PEM", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n" + strings.Replace(witnessFiles, "    ca_file: /oem/twonode/witness-ca.pem\n", "    ca: |\n      -----BEGIN CERTIFICATE-----\n      hunter2\n      -----END CERTIFICATE-----\n", 1),
		[]string{`twonode.witness.ca (line 21): must be PEM: one or more blocks from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----, and nothing else`}},
	{"witness key not PEM (never shown)", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n" + strings.Replace(witnessFiles, "    key_file: /oem/twonode/witness.key\n", "    key: hunter2-not-a-key\n", 1),
		[]string{`twonode.witness.key (line 23): must be PEM: one block from -----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY----- (or EC PRIVATE KEY, RSA PRIVATE KEY), and nothing else`}},
	{"witness unknown key", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n" + witnessFiles + "    user: edge-1\n",
		[]string{`twonode.witness.user (line 24): unknown key; twonode.witness has endpoints, prefix, ca, ca_file, cert, cert_file, key, key_file, dial_timeout, request_timeout, lease_ttl, unreachable, watchdog, watchdog_timeout`}},
	{"witness unreachable neither wait nor promote", "  preferred_leader: edge-1\n", "  preferred_leader: edge-1\n" + witnessFiles + "    unreachable: maybe\n",
		[]string{`twonode.witness.unreachable (line 24): must be wait or promote (got "maybe")`}},

	// every problem at once
	{"three problems", "    address: 10.99.0.2\n", "    address: fd00::2\n  log: {level: loud, format: xml}\n",
		[]string{
			`twonode.peer.address (line 15): must be of the same IP family as node.address, or the peer's pg_hba would not know this node (got IPv6 fd00::2, node.address is IPv4 10.99.0.1)`,
			`twonode.log.level (line 16): must be debug, info, warn or error (got "loud")`,
			`twonode.log.format (line 16): must be text or json (got "xml")`,
		}},

	// the cluster: block (provider-k3s's), checked when twonode is enabled
	{"cluster empty", "cluster:\n  cluster_token: shared-token\n  role: init\n  providerConfig:\n    cluster-init: \"no\"\n    datastore-endpoint: http://127.0.0.1:2379\n",
		"cluster:\nwas:\n  cluster_token: shared-token\n  role: init\n  providerConfig:\n    cluster-init: \"no\"\n    datastore-endpoint: http://127.0.0.1:2379\n",
		[]string{`cluster (line 2): has no value: provider-k3s needs cluster_token, role and providerConfig (see docs/first-boot.md)`}},
	{"cluster not a mapping", "cluster:\n  cluster_token", "cluster: [a]\nwas:\n  cluster_token",
		[]string{`cluster (line 2): must be a mapping (cluster_token, role, providerConfig, ...), not a list`}},
	{"cluster value of the wrong type", "  role: init\n", "  role: init\n  import_local_images: maybe\n",
		[]string{"cluster (line 3): provider-k3s cannot read this block: a value has the wrong type (line 5: cannot unmarshal !!str <value> into bool)"}},
	{"cluster.role controlplane", "  role: init\n", "  role: controlplane\n",
		[]string{`cluster.role: must be init on both nodes of a pair: each is a k3s server on its own node's Kine, and controlplane would make this node's k3s join the other node's at control_plane_host (got "controlplane")`}},
	{"cluster.role worker", "  role: init\n", "  role: worker\n",
		[]string{`cluster.role: must be init on both nodes of a pair: each is a k3s server on its own node's Kine, and worker would make this node a k3s agent without a datastore (got "worker")`}},
	{"cluster.role unknown", "  role: init\n", "  role: master\n",
		[]string{`cluster.role: must be init on both nodes of a pair (got "master")`}},
	{"cluster.cluster_token missing", "  cluster_token: shared-token\n", "",
		[]string{`cluster.cluster_token: required: both k3s servers share one datastore and must use the same token`}},
	{"datastore-endpoint missing", "    datastore-endpoint: http://127.0.0.1:2379\n", "",
		[]string{`cluster.providerConfig.datastore-endpoint: required: http://127.0.0.1:2379, this node's Kine, so that k3s keeps its data in the pair's PostgreSQL`}},
	{"datastore-endpoint elsewhere (a password not shown)", "    datastore-endpoint: http://127.0.0.1:2379\n", "    datastore-endpoint: postgres://k3s:hunter2-db-password@db:5432/k3s\n",
		[]string{`cluster.providerConfig.datastore-endpoint: must be http://127.0.0.1:2379, this node's Kine, so that k3s keeps its data in the pair's PostgreSQL (got another value)`}},
	{"cluster-init missing with role init", "    cluster-init: \"no\"\n", "",
		[]string{`cluster.providerConfig.cluster-init: must be "no" with role init: the datastore is Kine, not an embedded etcd that k3s would start`}},
	{"cluster_config_path on twonode's file", "  role: init\n", "  role: init\n  cluster_config_path: <stage file>\n",
		[]string{`cluster.cluster_config_path: must not be <stage file>, twonode's own file: provider-k3s and twonode would overwrite each other's stages (remove the key for provider-k3s's default)`}},
}

// Every invalid field: the answer is an error naming the field and saying
// what is wrong, the report (stderr, journal) says the same, nothing on
// the machine changes (the files of the last good boot stay as they
// were), and the secret appears nowhere.
func TestBootInvalidChangesNothing(t *testing.T) {
	for _, c := range invalidCases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(base, c.old) {
				t.Fatalf("the base has no %q", c.old)
			}
			tp := newTestPlugin(t)
			// A good boot first: its files must survive the bad one.
			if resp, _ := tp.run(t, "agent.boot", bootEvent(t, base)); resp.State != "success" {
				t.Fatalf("the base is refused: %+v", resp)
			}
			before := tp.files(t)
			tp.report = nil

			want := make([]string, len(c.want))
			for i, w := range c.want {
				want[i] = strings.ReplaceAll(w, "<stage file>", tp.StageFile)
			}
			edited := strings.Replace(base, c.old, strings.ReplaceAll(c.new, "<stage file>", tp.StageFile), 1)
			resp, raw := tp.run(t, "agent.boot", bootEvent(t, edited))
			if resp.State != "error" || resp.Data != "" {
				t.Errorf("state %q data %q, want error and no data", resp.State, resp.Data)
			}
			head := "the twonode: block is invalid (1 problem); nothing was changed on this node:"
			if len(want) > 1 {
				head = strings.Replace(head, "(1 problem)", "(3 problems)", 1)
			}
			wantText := head + "\n" + strings.Join(want, "\n")
			if resp.Error != wantText {
				t.Errorf("error:\n%s\nwant:\n%s", resp.Error, wantText)
			}
			if resp.Logs != wantText {
				t.Errorf("log %q, want the error", resp.Logs)
			}
			var reported []string
			for _, l := range tp.report {
				if !l.Problem {
					t.Errorf("reported as information: %q", l.Text)
				}
				reported = append(reported, strings.TrimPrefix(l.Text, "  "))
			}
			if wantReport := append([]string{head}, want...); !reflect.DeepEqual(reported, wantReport) {
				t.Errorf("report:\n%q\nwant:\n%q", reported, wantReport)
			}
			if after := tp.files(t); !reflect.DeepEqual(after, before) {
				t.Errorf("the files changed:\n got %v\nwant %v", after, before)
			}
			for _, s := range []string{testSecret, "short-secret-of", "hunter2"} {
				if strings.Contains(raw, s) || strings.Contains(tp.reportText(), s) {
					t.Errorf("%q appears in the answer or the report", s)
				}
			}
		})
	}
}
