package userdata

import "github.com/twonode-edge/twonode/bootstrap/config"

// The appliance the block configures: what the image build installs
// (scripts/install-two-node.sh, overlay/) and what the agent's config must
// say to match it. The agent's unit sets the same values through TWONODE_
// environment variables; a test keeps the two in step.
const (
	// AgentSecretPath is where the boot stages put the cluster secret for
	// the agent (root, 0600), under /etc/twonode (0700).
	AgentSecretPath = "/etc/twonode/secret"
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
