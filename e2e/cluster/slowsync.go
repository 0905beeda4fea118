package cluster

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// A disk that answers, slowly (issue 16): PostgreSQL's fsync and
// fdatasync sleep as long as a node's control file says, through a
// preload library built here from slowsync/slowsync.c with the machine's C
// compiler. Only PostgreSQL is slowed (the agent's Go code calls the
// kernel directly): what Kine's writes wait for, which is what a slow
// disk does to a client. tmpfs under the data directory makes the real
// calls free, so the delay is the whole of it.

//go:embed slowsync/slowsync.c
var slowSyncSource string

const slowSyncLib = "libslowsync.so"

// buildSlowSync compiles the library into the cluster's directory.
func (c *Cluster) buildSlowSync() error {
	src := filepath.Join(c.Opts.Dir, "slowsync.c")
	if err := os.WriteFile(src, []byte(slowSyncSource), 0o644); err != nil {
		return err
	}
	out, err := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-o", filepath.Join(c.Opts.Dir, slowSyncLib), src, "-ldl").CombinedOutput()
	if err != nil {
		return fmt.Errorf("cluster: building the slow-sync library (needs a C compiler: apt-get install gcc): %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// slowSyncFile is the node's control file: milliseconds per sync.
func (n *Node) slowSyncFile() string { return filepath.Join(n.Dir, "slow-sync-ms") }

// slowSyncEnv is the agent's environment for the fault (none without
// Options.SlowDisk).
func (c *Cluster) slowSyncEnv(name string) []string {
	if !c.Opts.SlowDisk {
		return nil
	}
	return []string{postgres.SlowSyncEnv + "=" + filepath.Join(c.Opts.Dir, slowSyncLib) + ":" + c.Nodes[name].slowSyncFile()}
}

// SlowDisk makes every fsync of the node's PostgreSQL take d (0 heals
// it). The pair was made with Options.SlowDisk.
func (c *Cluster) SlowDisk(name string, d time.Duration) error {
	if !c.Opts.SlowDisk {
		return fmt.Errorf("cluster: SlowDisk needs Options.SlowDisk")
	}
	f := c.Nodes[name].slowSyncFile()
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d\n", d.Milliseconds())), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f) // whole: a sync never reads half a number
}
