// Package appliance proves the image build (issue 4) without Earthly, which
// cannot run on the CI machines: the tests run the same install script the
// Earthfile runs (scripts/install-two-node.sh) into a Debian root filesystem,
// boot two copies of the result with systemd as PID 1 (systemd-nspawn -b,
// each in its own network namespace from e2e/harness) and check what an
// operator relies on: the units load, nothing runs until the agent is
// enabled, the pair forms under systemd, systemd restarts a killed Kine,
// stopping the agent leaves the datastore serving, and the data directory
// survives a reboot.
//
// The static tests check the Earthfile (targets, ARGs, TWO_NODE gating,
// pinning), .arg.template, the units (systemd-analyze verify and security),
// every script (shellcheck) and the names the README and docs use. The size
// test prints what TWO_NODE adds to the image as RESULT lines.
//
// Everything needs root, debootstrap and systemd-container (scripts/deps.sh
// installs them); a missing prerequisite fails the test, nothing is skipped.
// The Debian root filesystem is built once and cached under
// /var/cache/twonode/rootfs-<hash of its inputs>.
package appliance
