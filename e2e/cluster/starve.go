package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroupCPU is the cgroup v1 cpu controller's mount; cgroupV2 the unified
// hierarchy's root. One of them is there on the machines the suite runs on.
const (
	cgroupCPU = "/sys/fs/cgroup/cpu"
	cgroupV2  = "/sys/fs/cgroup"
	period    = 1000000 // µs
)

// StarveAgent holds the node's agent process (only it: PostgreSQL and Kine,
// started before, stay where they are) to share of CPU time per second, as
// a machine whose cores are all taken would, until release is called. The
// agent needs a few milliseconds a second: a share below that starves it. Children the agent starts
// meanwhile (pg_ctl, pg_rewind) inherit the limit.
func (c *Cluster) StarveAgent(name string, share time.Duration) (release func() error, err error) {
	pid := c.AgentPID(name)
	if pid == 0 {
		return nil, fmt.Errorf("cluster: %s's agent is not running", name)
	}
	quota := int(share.Microseconds())
	if quota < 1000 || quota > period {
		return nil, fmt.Errorf("cluster: starve to %s of CPU a second: want 1ms..1s", share)
	}
	root, limit := cgroupCPU, func(dir string) error {
		// One-second periods (the longest the kernel takes): the agent runs
		// for its share, then stands still for the rest of the second, as
		// on a machine whose cores are all taken; in 100 ms periods its
		// light ticks would fit in the share and nothing would time out.
		if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.Itoa(period)), 0o644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(quota)), 0o644)
	}
	if _, err := os.Stat(filepath.Join(cgroupCPU, "cpu.cfs_quota_us")); err != nil {
		if _, err := os.Stat(filepath.Join(cgroupV2, "cgroup.controllers")); err != nil {
			return nil, errors.New("cluster: no cgroup cpu controller (neither v1 at " + cgroupCPU + " nor v2 at " + cgroupV2 + ")")
		}
		root, limit = cgroupV2, func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(fmt.Sprintf("%d %d", quota, period)), 0o644)
		}
		// The v2 root must hand the cpu controller to its children.
		_ = os.WriteFile(filepath.Join(cgroupV2, "cgroup.subtree_control"), []byte("+cpu"), 0o644)
	}
	dir := filepath.Join(root, c.Opts.Prefix+"-starve-"+name)
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("cluster: cgroup for %s: %w", name, err)
	}
	if err := limit(dir); err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("cluster: limiting %s's cgroup: %w", name, err)
	}
	move := func(to string) error {
		return os.WriteFile(filepath.Join(to, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
	}
	if err := move(dir); err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("cluster: moving %s's agent (pid %d) into its cgroup: %w", name, pid, err)
	}
	return func() error {
		// The fault must have bitten: the kernel throttled the group.
		stat, _ := os.ReadFile(filepath.Join(dir, "cpu.stat"))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		throttled := strings.Contains(string(stat), "nr_throttled ") && !strings.Contains(string(stat), "nr_throttled 0\n")
		// Every process in it goes back to the root, then the group goes.
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(f), 0o644)
		}
		if err := os.Remove(dir); err != nil {
			return err
		}
		if !throttled {
			return fmt.Errorf("cluster: %s's agent (pid %d, %q) was never throttled: %s", name, pid, strings.TrimSpace(string(comm)), strings.Join(strings.Fields(string(stat)), " "))
		}
		return nil
	}, nil
}
