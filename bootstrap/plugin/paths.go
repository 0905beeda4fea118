// Package plugin is the Kairos provider plugin agent-provider-twonode and
// the lifecycle helpers the image's baked stages (cloudconfig/) call.
//
// At every boot Kairos runs `kairos-agent notify agent.boot` from its
// initramfs stage (/system/oem/02_notify.yaml); the agent runs every
// /system/providers/agent-provider-* with the event's name as argument and
// the event, a JSON pluggable.Event whose data holds the whole cloud-config,
// on stdin, and reads a JSON pluggable.EventResponse from stdout. On
// agent.boot this plugin validates the cloud-config's twonode: block and
// writes the yip stages that configure this node to its own file, StageFile.
// It never touches provider-k3s's /usr/local/cloud-config/cluster.kairos.yaml.
package plugin

import "time"

// The plugin's own files. They are rewritten at every boot from the
// cloud-config and removed when twonode.enabled is false.
const (
	// StageFile holds the stages rendered for this node. It has no
	// #cloud-config header on purpose: yip runs it (it reads every .yaml of
	// /usr/local/cloud-config), but Kairos does not merge it into the
	// cloud-config it hands to plugins and prints with `kairos-agent config`.
	StageFile = "/usr/local/cloud-config/twonode.kairos.yaml"
	// SecretStash keeps an inline twonode.secret (root, 0600) so that the
	// stages copy it from a file: the secret is never in a stage, where
	// yip's debug logging would print it.
	SecretStash = "/usr/local/cloud-config/twonode.secret"
	// WitnessKeyStash keeps an inline twonode.witness.key (root, 0600), for
	// the same reason: a key, like the secret, is never in a stage.
	WitnessKeyStash = "/usr/local/cloud-config/twonode.witness.key"
)

// The appliance, as the image build lays it out (overlay/,
// scripts/install-two-node.sh); a test checks the units against overlay/.
const (
	ConfigDir  = "/etc/twonode"             // 0700, tmpfs: rewritten at every boot
	ConfigFile = "/etc/twonode/config.yaml" // 0600; the agent's unit waits for it
	// The secret's path is userdata.AgentSecretPath (it is in the config).

	AgentBinary    = "/opt/twonode/bin/twonode"
	ProviderBinary = "/system/providers/agent-provider-twonode"

	// AgentUnit is the one unit the stages enable: the agent starts the
	// other two itself, once it knows which node leads.
	AgentUnit    = "twonode-agent.service"
	KineUnit     = "twonode-kine.service"
	PostgresUnit = "twonode-postgresql.service"

	// DataDir is the agent's data directory on Kairos's persistent
	// partition (PostgreSQL's data is DataDir/pgdata).
	DataDir = "/usr/local/twonode"
	// StateFile is the agent's persisted state; "member": true once this
	// node has been part of the pair.
	StateFile = DataDir + "/state.json"
	// UpgradeMarker is written before an upgrade (by the old image) and
	// read at the first boot after it (by the new one).
	UpgradeMarker = DataDir + "/upgrade.json"
	// AgentSocket is the agent's local API.
	AgentSocket = "/run/twonode/agent.sock"

	// RejoinMarker is written before a reset, on the OEM partition (a reset
	// wipes the persistent partition, not this one). While it exists and
	// this node is not a member yet, the agent waits up to RejoinBootGrace
	// for its peer instead of forming a new pair alone after boot_grace.
	RejoinMarker    = "/oem/twonode/rejoin"
	RejoinBootGrace = time.Hour
)
