package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const minimal = `
node: {name: a, address: 10.0.0.1}
peer: {name: b, address: 10.0.0.2}
secret_file: /etc/twonode/secret
`

func TestDefaults(t *testing.T) {
	d := Default()
	for _, tt := range []struct {
		field string
		got   any
		want  any
	}{
		{"node", d.Node, Host{}},
		{"peer", d.Peer, Host{}},
		{"secret_file", d.SecretFile, ""},
		{"preferred_leader", d.PreferredLeader, ""},
		{"data_dir", d.DataDir, "/usr/local/twonode"},
		{"run_dir", d.RunDir, "/run/twonode"},
		{"postgres.bin_dir", d.Postgres.BinDir, "/usr/lib/postgresql/15/bin"},
		{"postgres.port", d.Postgres.Port, 5432},
		{"postgres.os_user", d.Postgres.OSUser, "postgres"},
		{"postgres.shared_buffers", d.Postgres.SharedBuffers, ""},
		{"postgres.supervisor", d.Postgres.Supervisor, "process"},
		{"kine.binary", d.Kine.Binary, "/opt/twonode/bin/kine"},
		{"kine.listen", d.Kine.Listen, "127.0.0.1:2379"},
		{"kine.supervisor", d.Kine.Supervisor, "process"},
		{"kine.unit", d.Kine.Unit, "twonode-kine.service"},
		{"timers.probe_interval", d.Timers.ProbeInterval, 500 * time.Millisecond},
		{"timers.probe_timeout", d.Timers.ProbeTimeout, 400 * time.Millisecond},
		{"timers.failure_threshold", d.Timers.FailureThreshold, 3},
		{"timers.boot_grace", d.Timers.BootGrace, 30 * time.Second},
		{"timers.pause_expiry", d.Timers.PauseExpiry, 2 * time.Hour},
		{"timers.promote_timeout", d.Timers.PromoteTimeout, 60 * time.Second},
		{"timers.slow_commit", d.Timers.SlowCommit, time.Second},
		{"timers.slow_for", d.Timers.SlowFor, 2 * time.Second},
		{"api.peer_port", d.API.PeerPort, 8760},
		{"api.socket", d.API.Socket, "/run/twonode/agent.sock"},
		{"api.metrics", d.API.Metrics, "127.0.0.1:9641"},
		{"log.level", d.Log.Level, "info"},
		{"log.format", d.Log.Format, "text"},
		{"test_clock_offset", d.ClockOffset, time.Duration(0)},
	} {
		if tt.got != tt.want {
			t.Errorf("Default %s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
	if w := d.DetectionWindow(); w != 1500*time.Millisecond {
		t.Errorf("default detection window = %v, want 1.5s", w)
	}

	// A file with only the required fields gives exactly the defaults.
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if want := valid(); !reflect.DeepEqual(*c, want) {
		t.Errorf("Parse(minimal) =\n%+v\nwant\n%+v", *c, want)
	}
}

func TestSocketFollowsRunDir(t *testing.T) {
	c, err := Parse([]byte(minimal + "run_dir: /run/other\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Socket != "/run/other/agent.sock" {
		t.Errorf("socket = %q, want it under run_dir", c.API.Socket)
	}
	c, err = Parse([]byte(minimal + "run_dir: /run/other\napi: {socket: /run/x.sock}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Socket != "/run/x.sock" {
		t.Errorf("socket = %q, want the one set", c.API.Socket)
	}
	c, err = Parse([]byte(minimal + "api: {socket: \"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Socket != "/run/twonode/agent.sock" {
		t.Errorf("socket = %q, want the default for an empty one", c.API.Socket)
	}
}

func TestParseValues(t *testing.T) {
	c, err := Parse([]byte(minimal + `
preferred_leader: b
timers:
  probe_interval: 1s
  probe_timeout: 250ms
  failure_threshold: 5
  boot_grace: 0s
api:
  metrics: ""
test_clock_offset: -90m
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.PreferredLeader != "b" || c.Timers.ProbeInterval != time.Second || c.Timers.ProbeTimeout != 250*time.Millisecond ||
		c.Timers.FailureThreshold != 5 || c.Timers.BootGrace != 0 || c.API.Metrics != "" || c.ClockOffset != -90*time.Minute {
		t.Errorf("Parse got %+v", *c)
	}
	if c.Timers.PauseExpiry != 2*time.Hour {
		t.Errorf("an unset key in a set section lost its default: pause_expiry = %v", c.Timers.PauseExpiry)
	}
}

func TestParseAliasesAndMerges(t *testing.T) {
	c, err := Parse([]byte(`
node: &n {name: a, address: "fd00::1"}
peer:
  <<: *n
  name: b
  address: "fd00::2"
secret_file: /etc/twonode/secret
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Peer != (Host{Name: "b", Address: "fd00::2"}) {
		t.Errorf("peer = %+v", c.Peer)
	}
	_, err = Parse([]byte(minimal + "timers:\n  <<: {probe_intervall: 1s}\n"))
	if err == nil || !strings.Contains(err.Error(), "timers.probe_intervall (line 6): unknown key") {
		t.Errorf("an unknown key in a merged mapping: got %v", err)
	}
	// One anchor merged into two sections is checked in each.
	_, err = Parse([]byte(minimal + "timers: &t {<<: &m {boot_grace: 1s}}\nlog: {<<: *m}\n"))
	if want := "log.boot_grace (line 5): unknown key; log has level, format"; err == nil || err.Error() != want {
		t.Errorf("an anchor merged twice:\n got %v\nwant %q", err, want)
	}
	_, err = Parse([]byte(minimal + "timers: {<<: 5}\n"))
	if want := "timers.<< (line 5): a merge key needs a mapping or a list of mappings (got a single value)"; err == nil || err.Error() != want {
		t.Errorf("a merge of a value:\n got %v\nwant %q", err, want)
	}
	// An aliased key is the key it names.
	c, err = Parse([]byte("node: {&k name: a, address: 10.0.0.1}\npeer: {*k : b, address: 10.0.0.2}\nsecret_file: /s\n"))
	if err != nil || c.Peer.Name != "b" {
		t.Errorf("an aliased key: %v %+v", err, c)
	}
}

// TestParseErrors: what the decoder refuses, with the field and the line.
func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"empty", "", "the config is empty: it needs at least node, peer and secret_file"},
		{"only comments", "# nothing\n", "the config is empty: it needs at least node, peer and secret_file"},
		{"only a document marker", "---\n", "the config is empty: it needs at least node, peer and secret_file"},
		{"null", "~\n", "the config is empty: it needs at least node, peer and secret_file"},
		{"two documents", minimal + "---\n" + minimal, "the config must be one YAML document (a second one starts on line 5)"},
		{"a list", "- a\n- b\n", "the config must be a YAML mapping with keys such as node: and peer: (got a list on line 1)"},
		{"a bare value, never echoed", "0123456789abcdef0123456789abcdef\n",
			"the config must be a YAML mapping with keys such as node: and peer: (got a single value on line 1)"},
		{"unknown top-level key", minimal + "nodes: {name: a}\n",
			"nodes (line 5): unknown key; the top level has node, peer, secret_file, preferred_leader, failover, data_dir, run_dir, postgres, kine, timers, api, log, witness, vip, archives, test_clock_offset"},
		{"unknown nested key", minimal + "timers:\n  probe_interval: 1s\n  probe_intervall: 2s\n",
			"timers.probe_intervall (line 7): unknown key; timers has probe_interval, probe_timeout, failure_threshold, boot_grace, pause_expiry, promote_timeout, slow_commit, slow_for"},
		{"unknown key in node", "node:\n  name: a\n  adress: 10.0.0.1\n",
			"node.adress (line 3): unknown key; node has name, address"},
		{"wrong case", minimal + "Data_Dir: /x\n",
			"Data_Dir (line 5): unknown key; the top level has node, peer, secret_file, preferred_leader, failover, data_dir, run_dir, postgres, kine, timers, api, log, witness, vip, archives, test_clock_offset"},
		{"odd key", minimal + "\"a b\": 1\n",
			`"a b" (line 5): unknown key; the top level has node, peer, secret_file, preferred_leader, failover, data_dir, run_dir, postgres, kine, timers, api, log, witness, vip, archives, test_clock_offset`},
		{"duration without a unit", minimal + "timers: {probe_interval: 500}\n",
			"timers.probe_interval (line 5): a duration needs a unit, such as 500ms, 500s or 500m (got 500)"},
		{"zero duration without a unit", minimal + "timers: {boot_grace: 0}\n",
			"timers.boot_grace (line 5): a duration needs a unit, such as 0ms, 0s or 0m (got 0)"},
		{"not a duration", minimal + "timers:\n  boot_grace: soon\n",
			`timers.boot_grace (line 6): must be a duration such as 500ms, 30s or 2h (got "soon")`},
		{"a boolean duration", minimal + "test_clock_offset: true\n",
			`test_clock_offset (line 5): must be a duration such as 500ms, 30s or 2h (got "true")`},
		{"fractional number", minimal + "postgres:\n  port: 5432.5\n",
			`postgres.port (line 6): must be a whole number (got "5432.5")`},
		{"quoted number", minimal + "postgres:\n  port: \"5432\"\n",
			`postgres.port (line 6): must be a whole number (got "5432")`},
		{"number too large", minimal + "timers: {failure_threshold: 99999999999999999999}\n",
			`timers.failure_threshold (line 5): must be a whole number (got "99999999999999999999")`},
		{"empty value", minimal + "api:\n  metrics:\n",
			`api.metrics (line 6): has no value: remove the key for the default (127.0.0.1:9641) or give a value ("" for empty)`},
		{"empty socket value", minimal + "api:\n  socket: ~\n",
			`api.socket (line 6): has no value: remove the key for the default (<run_dir>/agent.sock) or give a value ("" for empty)`},
		{"empty preferred leader", minimal + "preferred_leader:\n",
			`preferred_leader (line 5): has no value: remove the key for the default ("") or give a value ("" for empty)`},
		{"a section as a value", minimal + "timers: fast\n",
			"timers (line 5): must be a mapping of keys (probe_interval, probe_timeout, failure_threshold, boot_grace, pause_expiry, promote_timeout, slow_commit, slow_for), not a single value"},
		{"a section as a list", "node: [a, 10.0.0.1]\n",
			"node (line 1): must be a mapping of keys (name, address), not a list"},
		{"a value as a mapping", "node: {name: {first: a}}\n",
			"node.name (line 1): must be a single value, not a mapping"},
		{"a value as a list", "secret_file: [/a, /b]\n",
			"secret_file (line 1): must be a single value, not a list"},
		{"duplicate key", "node: {name: a}\nnode: {name: b}\n",
			"node (line 2): appears twice (lines 1 and 2): keep one"},
		{"syntax error", "node: [\n", "invalid YAML: line 1: did not find expected node content"},
		{"tab indentation", "node:\n\tname: a\n", "invalid YAML: line 2: found character that cannot start any token"},
		{"several at once", "nodes: 1\ntimers:\n  probe_interval: 1\n  pause_expiry: x\n",
			"nodes (line 1): unknown key; the top level has node, peer, secret_file, preferred_leader, failover, data_dir, run_dir, postgres, kine, timers, api, log, witness, vip, archives, test_clock_offset\n" +
				"timers.probe_interval (line 3): a duration needs a unit, such as 1ms, 1s or 1m (got 1)\n" +
				`timers.pause_expiry (line 4): must be a duration such as 500ms, 30s or 2h (got "x")`},
		{"decodes, then fails validation", "node: {name: a}\n",
			"node.address: required\npeer.name: required\npeer.address: required\nsecret_file: required: the path of a file holding the cluster secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with its error")
			}
			if got := err.Error(); got != tt.want {
				t.Fatalf("Parse:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Load of a missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(minimal+"bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if want := "config file " + bad + ":\nbogus (line 5): unknown key"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load of a bad file:\n got %v\nwant prefix %q", err, want)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.Name != "a" {
		t.Errorf("Load: node %+v", c.Node)
	}
}

// TestExample: example.yaml parses, shows every key, and shows the
// defaults (everything but node, peer and secret_file).
func TestExample(t *testing.T) {
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	want := Default()
	want.Node = Host{Name: "a", Address: "10.99.0.1"}
	want.Peer = Host{Name: "b", Address: "10.99.0.2"}
	want.SecretFile = "/etc/twonode/secret"
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("example.yaml is not the defaults:\n got %+v\nwant %+v", *c, want)
	}

	data, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		t.Fatal(err)
	}
	for _, l := range leaves() {
		var node any = tree
		for _, key := range l.path {
			m, ok := node.(map[string]any)
			if !ok {
				node = nil
				break
			}
			node, ok = m[key]
			if !ok {
				node = nil
				break
			}
		}
		if node == nil {
			t.Errorf("example.yaml does not show %s", l.field())
		}
	}
}

// TestRoundTrip: a parsed config written back as YAML parses to itself.
func TestRoundTrip(t *testing.T) {
	c, err := Parse([]byte(minimal + "api: {metrics: \"\"}\npreferred_leader: \"a\"\ntest_clock_offset: 1h30m\n"))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
}

func roundTrip(t *testing.T, c *Config) {
	t.Helper()
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal(c)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip changed the config:\n got %+v\nwant %+v\nyaml:\n%s", back, c, out)
	}
}
