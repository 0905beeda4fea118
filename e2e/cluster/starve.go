package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupCPU is the cgroup v1 cpu controller's mount; cgroupV2 the unified
// hierarchy's root. One of them is there on the machines the suite runs on.
const (
	cgroupCPU = "/sys/fs/cgroup/cpu"
	cgroupV2  = "/sys/fs/cgroup"
)

// StarveAgent holds the node's agent process (only it: PostgreSQL and Kine,
// started before, stay where they are) to percent of one CPU, as a busy
// small machine would, until release is called. Children the agent starts
// meanwhile (pg_ctl, pg_rewind) inherit the limit.
func (c *Cluster) StarveAgent(name string, percent int) (release func() error, err error) {
	c.mu.Lock()
	n := c.Nodes[name]
	var pid int
	if n.proc != nil && n.proc.Running() {
		pid = n.proc.Pid()
	}
	c.mu.Unlock()
	if pid == 0 {
		return nil, fmt.Errorf("cluster: %s's agent is not running", name)
	}
	if percent < 1 || percent > 100 {
		return nil, fmt.Errorf("cluster: starve to %d%% of a CPU: want 1..100", percent)
	}
	root, limit := cgroupCPU, func(dir string) error {
		// 100 ms periods; the kernel's smallest quota is 1 ms.
		if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte("100000"), 0o644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(percent*1000)), 0o644)
	}
	if _, err := os.Stat(filepath.Join(cgroupCPU, "cpu.cfs_quota_us")); err != nil {
		if _, err := os.Stat(filepath.Join(cgroupV2, "cgroup.controllers")); err != nil {
			return nil, errors.New("cluster: no cgroup cpu controller (neither v1 at " + cgroupCPU + " nor v2 at " + cgroupV2 + ")")
		}
		root, limit = cgroupV2, func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(fmt.Sprintf("%d 100000", percent*1000)), 0o644)
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
		// Every process in it goes back to the root, then the group goes.
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(f), 0o644)
		}
		return os.Remove(dir)
	}, nil
}
