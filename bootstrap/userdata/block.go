package userdata

import (
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/yamlwalk"
)

// This file is what the twonode: block holds: its schema (the keys the
// walk accepts) and the Block built from the walk's leaves over the
// agent's defaults. Its rules are in validate.go.

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

// blockFields is the schema of the twonode: block.
var hostFields = []yamlwalk.Field{{Key: "name"}, {Key: "address"}}

var blockFields = []yamlwalk.Field{
	{Key: "enabled", Kind: yamlwalk.Bool},
	{Key: "node", Kind: yamlwalk.Section, Fields: hostFields},
	{Key: "peer", Kind: yamlwalk.Section, Fields: hostFields},
	{Key: "secret", Secret: true},
	{Key: "secret_file"},
	{Key: "preferred_leader"},
	{Key: "failover"},
	{Key: "timers", Kind: yamlwalk.Section, Fields: []yamlwalk.Field{
		{Key: "probe_interval", Kind: yamlwalk.Duration},
		{Key: "failure_threshold", Kind: yamlwalk.Whole},
		{Key: "boot_grace", Kind: yamlwalk.Duration},
		{Key: "pause_expiry", Kind: yamlwalk.Duration},
		{Key: "slow_commit", Kind: yamlwalk.Duration},
		{Key: "slow_for", Kind: yamlwalk.Duration},
	}},
	{Key: "postgres", Kind: yamlwalk.Section, Fields: []yamlwalk.Field{
		{Key: "port", Kind: yamlwalk.Whole},
		{Key: "shared_buffers"},
	}},
	{Key: "api", Kind: yamlwalk.Section, Fields: []yamlwalk.Field{
		{Key: "peer_port", Kind: yamlwalk.Whole},
		{Key: "metrics"},
	}},
	{Key: "log", Kind: yamlwalk.Section, Fields: []yamlwalk.Field{
		{Key: "level"},
		{Key: "format"},
	}},
	{Key: "witness", Kind: yamlwalk.Section, Fields: witnessFields},
	{Key: "vip", Kind: yamlwalk.Section, Fields: []yamlwalk.Field{{Key: "address"}, {Key: "interface"}}},
}

// leaves are the block's values as the walk decoded them, by their path
// below twonode: ("timers.probe_interval").
type leaves map[string]yamlwalk.Value

// block builds the Block from the decoded leaves over the agent's defaults.
func (set leaves) block() *Block {
	def := config.Default()
	return &Block{
		Node:            config.Host{Name: set.str("node.name", ""), Address: set.str("node.address", "")},
		Peer:            config.Host{Name: set.str("peer.name", ""), Address: set.str("peer.address", "")},
		Secret:          Secret(set.str("secret", "")),
		SecretFile:      set.str("secret_file", ""),
		PreferredLeader: set.str("preferred_leader", def.PreferredLeader),
		Failover:        set.str("failover", def.Failover),
		Timers: Timers{
			ProbeInterval:    set.dur("timers.probe_interval", def.Timers.ProbeInterval),
			FailureThreshold: set.num("timers.failure_threshold", def.Timers.FailureThreshold),
			BootGrace:        set.dur("timers.boot_grace", def.Timers.BootGrace),
			PauseExpiry:      set.dur("timers.pause_expiry", def.Timers.PauseExpiry),
			SlowCommit:       set.dur("timers.slow_commit", def.Timers.SlowCommit),
			SlowFor:          set.dur("timers.slow_for", def.Timers.SlowFor),
		},
		Postgres: Postgres{
			Port:          set.num("postgres.port", def.Postgres.Port),
			SharedBuffers: set.str("postgres.shared_buffers", def.Postgres.SharedBuffers),
		},
		API: API{
			PeerPort: set.num("api.peer_port", def.API.PeerPort),
			Metrics:  set.str("api.metrics", def.API.Metrics),
		},
		Log: Log{
			Level:  set.str("log.level", def.Log.Level),
			Format: set.str("log.format", def.Log.Format),
		},
		Witness: set.witness(def.Witness),
		VIP:     config.VIP{Address: set.str("vip.address", def.VIP.Address), Interface: set.str("vip.interface", def.VIP.Interface)},
	}
}

func (set leaves) str(k, d string) string {
	if l, ok := set[k]; ok {
		return l.Text
	}
	return d
}

func (set leaves) num(k string, d int) int {
	if l, ok := set[k]; ok {
		return l.Whole
	}
	return d
}

func (set leaves) dur(k string, d time.Duration) time.Duration {
	if l, ok := set[k]; ok {
		return l.Duration
	}
	return d
}
