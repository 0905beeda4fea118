package appliance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// node is one booted copy of the image: systemd-nspawn -b with systemd as
// PID 1, in the network namespace of one harness node.
type node struct {
	name string // a or b: also its hostname
	dir  string // its root filesystem (persists across boots)
	ns   string // network namespace
	log  string // console output

	cmd  *exec.Cmd
	done chan struct{}
	pid1 int // the container's systemd, as seen from the host
}

// boot starts the container and waits until systemd finished booting.
func boot(t testing.TB, name, dir, ns, logDir string, boots int) *node {
	t.Helper()
	n := &node{name: name, dir: dir, ns: ns, log: filepath.Join(logDir, fmt.Sprintf("console-%s-%d.log", name, boots))}
	f, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n.cmd = exec.Command("systemd-nspawn", "-b", "-q", "-D", dir, "--register=no", "--keep-unit",
		"--network-namespace-path=/run/netns/"+ns, "--hostname="+name, "--machine=tnap-"+name,
		"--console=read-only", "--link-journal=no",
		// A real machine's root has it; nspawn withholds it unless asked.
		// The agent moves the pair's address with it (twonode.vip).
		"--capability=CAP_NET_ADMIN")
	n.cmd.Stdout, n.cmd.Stderr = f, f
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("appliance: systemd-nspawn %s: %v", name, err)
	}
	n.done = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() { n.shutdown(t) })

	deadline := time.Now().Add(30 * time.Second)
	for n.pid1 == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("appliance: %s: no systemd under systemd-nspawn after 30s; console:\n%s", name, tailFile(n.log, 30))
		}
		select {
		case <-n.done:
			t.Fatalf("appliance: %s: systemd-nspawn exited: %v; console:\n%s", name, n.cmd.ProcessState, tailFile(n.log, 30))
		case <-time.After(50 * time.Millisecond):
		}
		n.pid1 = systemdChild(n.cmd.Process.Pid)
	}
	// is-system-running --wait returns once boot is over: running, or
	// degraded when a unit failed (which an image must not do).
	// Until systemd listens on its socket, systemctl cannot connect.
	var state string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		state, _ = n.execTimeout(90*time.Second, "systemctl", "is-system-running", "--wait")
		if !strings.Contains(state, "Failed to connect") && strings.TrimSpace(state) != "offline" {
			break
		}
	}
	if strings.TrimSpace(state) != "running" {
		failed, _ := n.exec(t, "systemctl", "--failed", "--no-legend", "--plain")
		t.Fatalf("appliance: %s booted %q, failed units:\n%s\nconsole:\n%s", name, strings.TrimSpace(state), failed, tailFile(n.log, 40))
	}
	return n
}

// systemdChild finds the container's PID 1 among the children of nspawn.
func systemdChild(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, c := range strings.Fields(string(b)) {
			cp, _ := strconv.Atoi(c)
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cp)); strings.TrimSpace(string(comm)) == "systemd" {
				return cp
			}
			if gc := systemdChild(cp); gc != 0 {
				return gc
			}
		}
	}
	return 0
}

// exec runs a command inside the container (all its namespaces).
func (n *node) exec(t testing.TB, argv ...string) (string, error) {
	t.Helper()
	return n.execTimeout(30*time.Second, argv...)
}

func (n *node) execTimeout(d time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	args := append([]string{"-t", strconv.Itoa(n.pid1), "-a", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w: %s", n.name, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// must runs a command in the container and fails the test on error.
func (n *node) must(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := n.exec(t, argv...)
	if err != nil {
		t.Fatalf("appliance: %v", err)
	}
	return out
}

// show returns one property of a unit (systemctl show -p).
func (n *node) show(t testing.TB, unit, prop string) string {
	t.Helper()
	return strings.TrimSpace(n.must(t, "systemctl", "show", "-p", prop, "--value", unit))
}

// shutdown powers the container off cleanly (SIGTERM to systemd-nspawn
// makes the container's systemd halt), SIGKILL after 60 s.
func (n *node) shutdown(t testing.TB) {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(60 * time.Second):
		t.Errorf("appliance: %s did not power off in 60s: killed", n.name)
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
	}
}

// tailFile is the end of a log, for failure messages.
func tailFile(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
