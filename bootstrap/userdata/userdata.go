// Package userdata is the twonode: block of a node's Kairos cloud-config
// (its user-data): the schema, the defaults (the agent's own, from
// config.Default), and the validation. Every problem is reported at once,
// each as a sentence naming its field: "twonode.peer.address: must be ...".
// The cluster secret never appears in an error, a warning or a printout.
//
// The block, with every key (docs/first-boot.md explains each):
//
//	twonode:
//	  enabled: true              # required; false keeps the block unused
//	  node: {name: edge-1, address: 10.99.0.1}
//	  peer: {name: edge-2, address: 10.99.0.2}
//	  secret: "..."              # or secret_file: /oem/twonode/secret (one of the two)
//	  preferred_leader: edge-1   # optional; the same on both nodes
//	  failover: auto             # or manual: only an operator's twonode promote takes over
//	  timers: {probe_interval: 500ms, failure_threshold: 3, boot_grace: 30s, pause_expiry: 2h, slow_commit: 1s, slow_for: 2s}
//	  postgres: {port: 5432, shared_buffers: ""}
//	  api: {peer_port: 8760, metrics: "127.0.0.1:9641"}
//	  log: {level: info, format: text}
//	  witness:                   # optional: the third vote, an etcd cluster (witness.go)
//	    endpoints: [https://10.0.0.21:2379, https://10.0.0.22:2379]  # or one string
//	    prefix: /twonode/site-0042/
//	    ca: |                    # inline PEM, or ca_file: /oem/twonode/witness-ca.pem
//	    cert: |                  # or cert_file
//	    key: |                   # or key_file; a secret, like the cluster secret
//	    dial_timeout: 2s
//	    request_timeout: 1s
//	    lease_ttl: 10s
//	    unreachable: wait        # or promote
//	    watchdog: /dev/watchdog  # "" for none
//	    watchdog_timeout: 3s
//	  vip:                       # optional: the pair's API address, on the leader only
//	    address: 10.99.0.100/24  # a free address of the nodes' subnet, with its prefix length
//	    interface: ""            # "" : the one holding node.address
//
// A key this version does not know is an error, not ignored: a setting that silently
// does nothing is worse than a node that refuses to start.
package userdata

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kairos-io/kairos-sdk/clusterplugin"
	"gopkg.in/yaml.v3"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/k3sconfig"
)

// Key is the block's key in the cloud-config.
const Key = "twonode"

// State is what the cloud-config asks of twonode on this node.
type State int

const (
	// Absent: no twonode: key. The node is not half of a pair.
	Absent State = iota
	// Disabled: twonode.enabled is false. Nothing else is read.
	Disabled
	// Enabled: twonode.enabled is true and the block is valid.
	Enabled
)

func (s State) String() string {
	switch s {
	case Absent:
		return "absent"
	case Disabled:
		return "disabled"
	case Enabled:
		return "enabled"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Block is a valid, enabled twonode: block with its defaults filled in.
type Block struct {
	Node config.Host
	Peer config.Host
	// Secret is the inline cluster secret; SecretFile the path of a file
	// holding it. Exactly one is set.
	Secret          Secret
	SecretFile      string
	PreferredLeader string
	Failover        string
	Timers          Timers
	Postgres        Postgres
	API             API
	Log             Log
	Witness         Witness
	VIP             config.VIP
}

// Timers are the failure detector's settings exposed to the user-data; the
// probe timeout follows the probe interval.
type Timers struct {
	ProbeInterval    time.Duration
	FailureThreshold int
	BootGrace        time.Duration
	PauseExpiry      time.Duration
	SlowCommit       time.Duration // 0: slow disks are not judged
	SlowFor          time.Duration
}

// Postgres is what a site may tune of PostgreSQL; where it is installed and
// how it runs are the image's business.
type Postgres struct {
	Port          int
	SharedBuffers string
}

// API are the agent's listeners.
type API struct {
	PeerPort int
	Metrics  string
}

// Log is the agent's logging.
type Log struct {
	Level  string
	Format string
}

// Secret is a value of the block that must never be printed: the inline
// cluster secret, the witness's inline client key. It prints as [redacted]
// with every fmt verb and in JSON, YAML or text encodings, so that no log
// line can carry it by accident; Reveal is the one way to read it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's bytes.
func (s Secret) Reveal() []byte { return []byte(s) }

// Format implements fmt.Formatter.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalText implements encoding.TextMarshaler (JSON and friends).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalYAML implements yaml.Marshaler.
func (Secret) MarshalYAML() (any, error) { return redacted, nil }

// Result is what a cloud-config says about twonode.
type Result struct {
	State State
	// Block is set when State is Enabled.
	Block *Block
	// Cluster is the cloud-config's cluster: block (provider-k3s's input)
	// when there is one and twonode is enabled.
	Cluster *clusterplugin.Cluster
	// Warnings are things worth an operator's attention that do not stop
	// the node: the example secret, no cluster: block to check.
	Warnings []string
}

// ExampleSecret is the secret in docs/user-data: accepted, so that the
// documented files work as they are, but warned about at every boot.
const ExampleSecret = "example-only-replace-with-output-of-openssl-rand-hex-32"

// Parse reads the twonode: block of a cloud-config (the YAML Kairos hands
// to its plugins) and, when twonode is enabled, the cluster: block that
// configures k3s. It returns an error (every problem, joined) when the
// cloud-config is not YAML or the enabled block is invalid; no error ever
// contains the secret.
func Parse(cloudConfig []byte) (res Result, err error) {
	defer func() {
		// yaml.v3 reports its own failures as errors; anything else it
		// throws must not take the plugin down.
		if r := recover(); r != nil {
			res, err = Result{}, fmt.Errorf("the cloud-config could not be read: the YAML parser failed")
		}
	}()
	var root yaml.Node
	if err := yaml.Unmarshal(cloudConfig, &root); err != nil {
		return Result{}, fmt.Errorf("the cloud-config is not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	doc = config.ResolveAlias(doc)
	if doc.Kind != yaml.MappingNode {
		return Result{State: Absent}, nil
	}
	block, clusterNode, err := topKeys(doc)
	if err != nil {
		return Result{}, err
	}
	if block == nil {
		return Result{State: Absent}, nil
	}

	w := walker{values: map[string]leaf{}, failed: map[string]bool{}}
	w.section(block.key, config.ResolveAlias(block.value), blockFields, Key)
	if enabled, ok := w.values["enabled"]; ok && !enabled.b {
		// Disabled: nothing else is read, its mistakes included.
		return Result{State: Disabled}, nil
	}
	if _, ok := w.values["enabled"]; !ok && !w.failed[Key+".enabled"] && !w.failed[Key] {
		w.fail(Key+".enabled", block.key.Line, "required: true to make this node one of a two-node pair, false to keep the block unused")
	}
	if len(w.errs) > 0 {
		return Result{}, errors.Join(w.errs...)
	}

	b, errs := w.block()
	res = Result{State: Enabled, Block: b}
	if string(b.Secret) == ExampleSecret {
		res.Warnings = append(res.Warnings, Key+".secret: this is the example secret from docs/first-boot.md: anyone who read it can join or impersonate this pair; generate one with `openssl rand -hex 32` and put the same value on both nodes")
	}
	if clusterNode == nil {
		res.Warnings = append(res.Warnings, "cluster: absent: k3s's datastore is not checked; each k3s server must use "+K3sDatastoreEndpoint+" (its own Kine) as datastore-endpoint and the same token")
	} else {
		c, cerrs := checkCluster(clusterNode)
		res.Cluster = c
		errs = append(errs, cerrs...)
		if len(cerrs) == 0 {
			warn, err := checkControlPlaneHost(c.ControlPlaneHost, b)
			if err != nil {
				errs = append(errs, err)
			}
			if warn != "" {
				res.Warnings = append(res.Warnings, warn)
			}
		}
	}
	if len(errs) > 0 {
		return Result{}, errors.Join(errs...)
	}
	return res, nil
}

// keyValue is one key of a YAML mapping with its value.
type keyValue struct{ key, value *yaml.Node }

// topKeys finds the twonode: and cluster: keys of the cloud-config.
func topKeys(doc *yaml.Node) (block *keyValue, cluster *yaml.Node, err error) {
	var lines []string
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k := config.ResolveAlias(doc.Content[i])
		if k.Kind != yaml.ScalarNode {
			continue
		}
		switch k.Value {
		case Key:
			if block == nil {
				block = &keyValue{k, doc.Content[i+1]}
			}
			lines = append(lines, fmt.Sprint(k.Line))
		case "cluster":
			cluster = config.ResolveAlias(doc.Content[i+1])
		}
	}
	if len(lines) > 1 {
		return nil, nil, fmt.Errorf("%s: the key appears %d times (lines %s): keep one", Key, len(lines), strings.Join(lines, ", "))
	}
	return block, cluster, nil
}

// kind is the type of one key of the block.
type kind int

const (
	text kind = iota
	whole
	duration
	boolean
	section
	list // a list of values, or one value
)

type field struct {
	key    string
	kind   kind
	fields []field // of a section
	secret bool    // never shown, whatever its problem
}

var hostFields = []field{{key: "name"}, {key: "address"}}

// blockFields is the schema of the twonode: block.
var blockFields = []field{
	{key: "enabled", kind: boolean},
	{key: "node", kind: section, fields: hostFields},
	{key: "peer", kind: section, fields: hostFields},
	{key: "secret", secret: true},
	{key: "secret_file"},
	{key: "preferred_leader"},
	{key: "failover"},
	{key: "timers", kind: section, fields: []field{
		{key: "probe_interval", kind: duration},
		{key: "failure_threshold", kind: whole},
		{key: "boot_grace", kind: duration},
		{key: "pause_expiry", kind: duration},
		{key: "slow_commit", kind: duration},
		{key: "slow_for", kind: duration},
	}},
	{key: "postgres", kind: section, fields: []field{
		{key: "port", kind: whole},
		{key: "shared_buffers"},
	}},
	{key: "api", kind: section, fields: []field{
		{key: "peer_port", kind: whole},
		{key: "metrics"},
	}},
	{key: "log", kind: section, fields: []field{
		{key: "level"},
		{key: "format"},
	}},
	{key: "witness", kind: section, fields: witnessFields},
	{key: "vip", kind: section, fields: []field{{key: "address"}, {key: "interface"}}},
}

// leaf is one scalar of the block, decoded to its kind.
type leaf struct {
	s    string
	n    int
	d    time.Duration
	b    bool
	line int
}

// walker checks the block's YAML against blockFields, keeping the decoded
// leaves by path ("timers.probe_interval") and every problem found.
type walker struct {
	values map[string]leaf
	errs   []error
	failed map[string]bool // fields with an error
}

func (w *walker) fail(field string, line int, format string, args ...any) {
	w.failed[field] = true
	w.errs = append(w.errs, fmt.Errorf("%s (line %d): %s", field, line, fmt.Sprintf(format, args...)))
}

// section checks a mapping meant for fields; name is its dotted path.
func (w *walker) section(key, v *yaml.Node, fields []field, name string) {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
		if name == Key {
			w.fail(name, key.Line, "has no value: write its settings (enabled: true, node, peer, secret) or remove the key")
		}
		return // an empty section: its defaults
	}
	if v.Kind != yaml.MappingNode {
		w.fail(name, v.Line, "must be a mapping of keys (%s), not %s", keysOf(fields), config.KindName(v))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := config.ResolveAlias(v.Content[i]), config.ResolveAlias(v.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			w.fail(name, k.Line, "has a key that is %s; its keys are %s", config.KindName(k), keysOf(fields))
			continue
		}
		path := name + "." + k.Value
		if k.ShortTag() == "!!merge" || k.Value == "<<" {
			w.fail(path, k.Line, "merge keys are not supported here: write the keys out")
			continue
		}
		f, ok := lookup(fields, k.Value)
		if !ok {
			w.fail(name+"."+quoteKey(k.Value), k.Line, "unknown key; %s has %s", name, keysOf(fields))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.fail(path, k.Line, "appears twice (lines %d and %d): keep one", first, k.Line)
			continue
		}
		seen[k.Value] = k.Line
		if f.kind == section {
			w.section(k, val, f.fields, path)
			continue
		}
		w.leaf(path, val, f)
	}
}

// leaf checks and decodes one scalar (a list's items are kept joined with
// commas, as the agent's configuration writes them).
func (w *walker) leaf(path string, v *yaml.Node, f field) {
	rel := strings.TrimPrefix(path, Key+".")
	if f.kind == list && v.Kind == yaml.SequenceNode {
		items := make([]string, 0, len(v.Content))
		for i, item := range v.Content {
			if item = config.ResolveAlias(item); item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
				w.fail(path, item.Line, "must be a list of single values (or one value); item %d is not one", i+1)
				return
			}
			items = append(items, item.Value)
		}
		w.values[rel] = leaf{s: strings.Join(items, ","), line: v.Line}
		return
	}
	if v.Kind != yaml.ScalarNode {
		w.fail(path, v.Line, "must be a single value, not %s", config.KindName(v))
		return
	}
	if v.ShortTag() == "!!null" {
		w.fail(path, v.Line, "has no value: remove the key to keep the default, or give a value (\"\" for empty)")
		return
	}
	// A secret's text is never shown, whatever its problem.
	shown := v.Value
	if f.secret {
		shown = redacted
	}
	l := leaf{line: v.Line}
	switch f.kind {
	case text, list:
		l.s = v.Value
	case whole:
		if v.ShortTag() != "!!int" || v.Decode(&l.n) != nil {
			w.fail(path, v.Line, "must be a whole number (got %q)", shown)
			return
		}
	case duration:
		d, err := time.ParseDuration(v.Value)
		switch {
		case v.ShortTag() == "!!int":
			w.fail(path, v.Line, "a duration needs a unit, such as %sms, %ss or %sm (got %s)", shown, shown, shown, shown)
			return
		case v.ShortTag() != "!!str" || err != nil:
			w.fail(path, v.Line, "must be a duration such as 500ms, 30s or 2h (got %q)", shown)
			return
		}
		l.d = d
	case boolean:
		if v.ShortTag() != "!!bool" || v.Decode(&l.b) != nil {
			w.fail(path, v.Line, "must be true or false (got %q)", shown)
			return
		}
	}
	w.values[rel] = l
}

// block builds the Block from the decoded leaves over the agent's defaults
// and validates it: the block's own rules, then the agent's (config.Validate)
// for what those do not cover, every error named after the block's field
// (with its line when the block set it) and in the block's order.
func (w *walker) block() (*Block, []error) {
	def := config.Default()
	b := &Block{
		Node:            config.Host{Name: w.str("node.name", ""), Address: w.str("node.address", "")},
		Peer:            config.Host{Name: w.str("peer.name", ""), Address: w.str("peer.address", "")},
		Secret:          Secret(w.str("secret", "")),
		SecretFile:      w.str("secret_file", ""),
		PreferredLeader: w.str("preferred_leader", def.PreferredLeader),
		Failover:        w.str("failover", def.Failover),
		Timers: Timers{
			ProbeInterval:    w.dur("timers.probe_interval", def.Timers.ProbeInterval),
			FailureThreshold: w.num("timers.failure_threshold", def.Timers.FailureThreshold),
			BootGrace:        w.dur("timers.boot_grace", def.Timers.BootGrace),
			PauseExpiry:      w.dur("timers.pause_expiry", def.Timers.PauseExpiry),
			SlowCommit:       w.dur("timers.slow_commit", def.Timers.SlowCommit),
			SlowFor:          w.dur("timers.slow_for", def.Timers.SlowFor),
		},
		Postgres: Postgres{
			Port:          w.num("postgres.port", def.Postgres.Port),
			SharedBuffers: w.str("postgres.shared_buffers", def.Postgres.SharedBuffers),
		},
		API: API{
			PeerPort: w.num("api.peer_port", def.API.PeerPort),
			Metrics:  w.str("api.metrics", def.API.Metrics),
		},
		Log: Log{
			Level:  w.str("log.level", def.Log.Level),
			Format: w.str("log.format", def.Log.Format),
		},
		Witness: w.witness(def.Witness),
		VIP:     config.VIP{Address: w.str("vip.address", def.VIP.Address), Interface: w.str("vip.interface", def.VIP.Interface)},
	}

	f := &findings{w: w, covered: map[string]bool{}}
	f.source(secretSource, true)
	f.witness(b.Witness)

	// The agent's own rules, for the rest.
	c := b.AgentConfig()
	if err := c.Validate(); err != nil {
		list := config.Unjoin(err)
		for _, e := range list {
			// The probe timeout follows the interval: its complaint is the
			// interval's.
			if strings.HasPrefix(e.Error(), "timers.probe_interval:") {
				f.covered["timers.probe_timeout"] = true
			}
		}
		for _, e := range list {
			if field, _, _ := strings.Cut(e.Error(), ": "); !f.covered[field] {
				f.push(e.Error())
			}
		}
	}
	slices.SortStableFunc(f.errs, func(a, b error) int { return cmp.Compare(rank(a), rank(b)) })
	return b, f.errs
}

func (w *walker) str(k, d string) string {
	if l, ok := w.values[k]; ok {
		return l.s
	}
	return d
}

func (w *walker) num(k string, d int) int {
	if l, ok := w.values[k]; ok {
		return l.n
	}
	return d
}

func (w *walker) dur(k string, d time.Duration) time.Duration {
	if l, ok := w.values[k]; ok {
		return l.d
	}
	return d
}

// findings are the block's problems and the agent's fields (by the names
// config.Validate gives them) whose problems they already cover.
type findings struct {
	w       *walker
	errs    []error
	covered map[string]bool
}

// add reports a problem of one of the block's fields.
func (f *findings) add(field, format string, args ...any) {
	covered := field
	if s, ok := sourceOf[field]; ok {
		covered = s.file // the agent knows the file, whatever the block gave
	}
	f.covered[covered] = true
	f.push(field + ": " + fmt.Sprintf(format, args...))
}

// push adds a "field: problem" message, with the field's line.
func (f *findings) push(msg string) {
	f.errs = append(f.errs, fmt.Errorf("%s.%s", Key, f.w.withLine(msg)))
}

// withLine adds the line of the field a message names ("peer.address:
// ..."), when the block set that field.
func (w *walker) withLine(msg string) string {
	field, rest, ok := strings.Cut(msg, ": ")
	if l, set := w.values[field]; ok && set {
		return fmt.Sprintf("%s (line %d): %s", field, l.line, rest)
	}
	return msg
}

// fieldOrder ranks the block's fields as blockFields lists them.
var fieldOrder = func() map[string]int {
	m := map[string]int{}
	var walk func(prefix string, fields []field)
	walk = func(prefix string, fields []field) {
		for _, f := range fields {
			m[prefix+f.key] = len(m)
			walk(prefix+f.key+".", f.fields)
		}
	}
	walk("", blockFields)
	return m
}()

// rank is the place of the field an error names in the block.
func rank(err error) int {
	field := strings.TrimPrefix(err.Error(), Key+".")
	if i := strings.IndexAny(field, " :"); i >= 0 {
		field = field[:i]
	}
	if r, ok := fieldOrder[field]; ok {
		return r
	}
	return len(fieldOrder)
}

// AgentConfig is the agent's configuration for this block on the
// appliance: the block's settings over the agent's defaults, the secret at
// AgentSecretPath, the witness's inline PEMs at AgentWitnessCAPath,
// AgentWitnessCertPath and AgentWitnessKeyPath, PostgreSQL and Kine under
// systemd.
func (b *Block) AgentConfig() config.Config {
	c := config.Default()
	c.Node, c.Peer = b.Node, b.Peer
	c.SecretFile = AgentSecretPath
	c.PreferredLeader = b.PreferredLeader
	c.Failover = b.Failover
	c.Postgres.BinDir = PostgresBinDir
	c.Postgres.Supervisor = Supervisor
	c.Postgres.Port = b.Postgres.Port
	c.Postgres.SharedBuffers = b.Postgres.SharedBuffers
	c.Kine.Supervisor = Supervisor
	c.Timers.ProbeInterval = b.Timers.ProbeInterval
	c.Timers.ProbeTimeout = probeTimeout(b.Timers.ProbeInterval)
	c.Timers.FailureThreshold = b.Timers.FailureThreshold
	c.Timers.BootGrace = b.Timers.BootGrace
	c.Timers.PauseExpiry = b.Timers.PauseExpiry
	c.Timers.SlowCommit = b.Timers.SlowCommit
	c.Timers.SlowFor = b.Timers.SlowFor
	c.API.PeerPort = b.API.PeerPort
	c.API.Metrics = b.API.Metrics
	c.Log.Level = b.Log.Level
	c.Log.Format = b.Log.Format
	c.Witness = b.Witness.agent()
	c.VIP = b.VIP
	return c
}

// probeTimeout is four fifths of the probe interval, in whole milliseconds:
// the agent's default ratio (400ms of 500ms).
func probeTimeout(interval time.Duration) time.Duration {
	return (interval * 4 / 5).Truncate(time.Millisecond)
}

// checkControlPlaneHost: provider-k3s puts control_plane_host in k3s's
// tls-san, and kubeconfigs and joining workers use it, so it must be the
// address that follows the leader. An address literal other than the
// pair's address is a mistake; a name cannot be checked here.
func checkControlPlaneHost(host string, b *Block) (warning string, err error) {
	if !b.VIP.On() {
		return "twonode.vip: absent: kubeconfigs and workers reach k3s at cluster.control_plane_host, one address, which stops answering when its node does; give the pair an address that follows the leader (docs/first-boot.md)", nil
	}
	vip, perr := netip.ParsePrefix(b.VIP.Address)
	if perr != nil {
		return "", nil // twonode.vip.address has its own error
	}
	if a, perr := netip.ParseAddr(host); perr != nil {
		return fmt.Sprintf("cluster.control_plane_host: %q is a name: it must resolve to the pair's address %s, or kubeconfigs stop working when this node does", host, vip.Addr()), nil
	} else if a.Unmap() != vip.Addr() {
		return "", fmt.Errorf("cluster.control_plane_host: must be the pair's address %s (twonode.vip.address): provider-k3s puts it in k3s's certificate, and kubeconfigs and joining workers use it, so it must follow the leader (got %s)", vip.Addr(), a)
	}
	return "", nil
}

// checkCluster reads provider-k3s's cluster: block and checks that it makes
// k3s keep its data in this node's Kine, the way both servers of a pair
// must: role init (or none), cluster-init "no", the same token on both
// nodes, datastore-endpoint the local Kine. No value of the block is shown:
// a datastore endpoint can hold a password.
func checkCluster(n *yaml.Node) (*clusterplugin.Cluster, []error) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return &clusterplugin.Cluster{}, []error{fmt.Errorf("cluster (line %d): has no value: provider-k3s needs cluster_token, role and providerConfig (see docs/first-boot.md)", n.Line)}
	}
	if n.Kind != yaml.MappingNode {
		return nil, []error{fmt.Errorf("cluster (line %d): must be a mapping (cluster_token, role, providerConfig, ...), not %s", n.Line, config.KindName(n))}
	}
	var c clusterplugin.Cluster
	if err := n.Decode(&c); err != nil {
		return nil, []error{fmt.Errorf("cluster (line %d): provider-k3s cannot read this block: a value has the wrong type (%s)", n.Line, typeProblem(err))}
	}
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cluster.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.Role {
	case "", clusterplugin.RoleInit:
	case clusterplugin.RoleControlPlane:
		add("role", "must be init on both nodes of a pair: each is a k3s server on its own node's Kine, and controlplane would make this node's k3s join the other node's at control_plane_host (got %q)", string(c.Role))
	case clusterplugin.RoleWorker:
		add("role", "must be init on both nodes of a pair: each is a k3s server on its own node's Kine, and worker would make this node a k3s agent without a datastore (got %q)", string(c.Role))
	default:
		add("role", "must be init on both nodes of a pair (got %q)", string(c.Role))
	}
	if strings.TrimSpace(c.ClusterToken) == "" {
		add("cluster_token", "required: both k3s servers share one datastore and must use the same token")
	}
	switch ep, ok := c.ProviderOptions["datastore-endpoint"]; {
	case !ok || ep == "":
		add("providerConfig.datastore-endpoint", "required: %s, this node's Kine, so that k3s keeps its data in the pair's PostgreSQL", K3sDatastoreEndpoint)
	case ep != K3sDatastoreEndpoint:
		add("providerConfig.datastore-endpoint", "must be %s, this node's Kine, so that k3s keeps its data in the pair's PostgreSQL (got another value)", K3sDatastoreEndpoint)
	}
	if c.Role == clusterplugin.RoleInit && c.ProviderOptions["cluster-init"] != "no" {
		add("providerConfig.cluster-init", `must be "no" with role init: the datastore is Kine, not an embedded etcd that k3s would start`)
	}
	if len(errs) == 0 {
		errs = checkWritten(c)
	}
	return &c, errs
}

// checkWritten derives the k3s configuration provider-k3s writes from the
// block (k3sconfig, at the version the image pins) and checks what the
// pair needs of it: config and providerConfig may add k3s options, but not
// ones that make provider-k3s stop or crash, nor change the datastore or
// make k3s start an etcd of its own or join another server. No value is
// shown.
func checkWritten(c clusterplugin.Cluster) []error {
	w, err := k3sconfig.Server(c)
	if err != nil {
		return []error{err}
	}
	var errs []error
	add := func(key, why string) {
		errs = append(errs, fmt.Errorf("cluster: the k3s configuration provider-k3s %s writes from this block (%s) must not set %s (set in config or providerConfig): %s",
			k3sconfig.ProviderVersion, k3sconfig.ConfigFile, key, why))
	}
	if ep, _ := w.Config["datastore-endpoint"].(string); ep != K3sDatastoreEndpoint {
		add("datastore-endpoint other than "+K3sDatastoreEndpoint, "a datastore-endpoint in config is joined to providerConfig's, and k3s would use neither this node's Kine")
	}
	if w.Config["cluster-init"] == true {
		add("cluster-init", "k3s would start an embedded etcd instead of using Kine")
	}
	if _, ok := w.Config["server"]; ok {
		add("server", "k3s would join another server's cluster instead of serving from this node's Kine")
	}
	if w.Config["disable-etcd"] == true {
		add("disable-etcd", "k3s refuses it without server (and newer k3s releases with a datastore-endpoint)")
	}
	if w.Config["disable-apiserver"] == true {
		add("disable-apiserver", "this node's k3s would serve no API from its Kine (and newer k3s releases refuse it with a datastore-endpoint)")
	}
	return errs
}

// typeProblem keeps yaml.v3's line numbers and type names but none of the
// values it quotes.
func typeProblem(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return "unreadable"
	}
	var out []string
	for _, e := range te.Errors {
		if i := strings.Index(e, "`"); i >= 0 {
			if j := strings.LastIndex(e, "`"); j > i {
				e = e[:i] + "<value>" + e[j+1:]
			}
		}
		out = append(out, e)
	}
	return strings.Join(out, "; ")
}

func lookup(fields []field, key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

func keysOf(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// quoteKey shows an unknown key as typed, quoted (and cut) when it is not
// plain.
func quoteKey(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	if len(k) > 64 {
		k = k[:64] + "..."
	}
	return fmt.Sprintf("%q", k)
}
