package userdata

import (
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
)

// The appliance the block configures: what the image build installs
// (scripts/install-two-node.sh, overlay/) and what the agent's config must
// say to match it. The agent's unit sets the same values through TWONODE_
// environment variables; a test keeps the two in step.
const (
	// AgentDir is the agent's private directory (root, 0700), written by
	// the boot stages at every boot (/etc is rebuilt at boot).
	AgentDir = "/etc/twonode"
	// AgentSecretPath is where the boot stages put the cluster secret for
	// the agent (root, 0600).
	AgentSecretPath = AgentDir + "/secret"
	// The witness's inline PEMs (twonode.witness.ca, cert and key), where the
	// boot stages write them for the agent (root, 0600). A *_file is used
	// where it is instead.
	AgentWitnessCAPath   = AgentDir + "/witness-ca.pem"
	AgentWitnessCertPath = AgentDir + "/witness.crt"
	AgentWitnessKeyPath  = AgentDir + "/witness.key"
	// PostgresBinDir links to the distribution's PostgreSQL server binaries,
	// whatever their version (made by the image's install script).
	PostgresBinDir = "/usr/lib/twonode/pgbin"
	// Supervisor: PostgreSQL and Kine run in units of their own
	// (twonode-postgresql.service, twonode-kine.service), started by the
	// agent, so that stopping or upgrading the agent never stops the
	// datastore.
	Supervisor = "systemd"
)

// K3sDatastoreEndpoint is the datastore every k3s server of the pair uses:
// its own node's Kine, on loopback.
var K3sDatastoreEndpoint = "http://" + config.Default().Kine.Listen

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
