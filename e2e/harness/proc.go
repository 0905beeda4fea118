package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultStopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// Spec describes a long-running process started inside a namespace.
type Spec struct {
	NS      string   // network namespace; "" runs in the root namespace
	Name    string   // label for logs and errors
	LogPath string   // stdout+stderr, appended (restarts keep history)
	Env     []string // added to (and overriding) the test's environment
	Dir     string   // working directory; "" = inherit
	Argv    []string
}

// Proc is a process started by Start / StartInNetns. It is the leader of its
// own process group, so signals reach its children too (an agent's kine and
// postgres), and it gets SIGKILL if the test process dies.
type Proc struct {
	Spec
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	exitAt  time.Time
}

// StartInNetns runs argv inside network namespace ns via `ip netns exec`,
// with stdout/stderr appended to logPath.
func StartInNetns(ns, name, logPath string, env []string, argv ...string) (*Proc, error) {
	return Start(Spec{NS: ns, Name: name, LogPath: logPath, Env: env, Argv: argv})
}

// Start runs a process described by s.
func Start(s Spec) (*Proc, error) {
	if len(s.Argv) == 0 {
		return nil, errors.New("harness: Start: empty argv")
	}
	if s.Name == "" {
		s.Name = filepath.Base(s.Argv[0])
	}
	if err := os.MkdirAll(filepath.Dir(s.LogPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy after Start
	fmt.Fprintf(logf, "=== harness %s: start %s in netns %q: %s\n",
		time.Now().Format(time.RFC3339Nano), s.Name, s.NS, strings.Join(s.Argv, " "))

	argv := s.Argv
	if s.NS != "" {
		// ip netns exec execs the command (same pid), after entering the
		// namespace and remounting /sys for it.
		argv = append([]string{"ip", "netns", "exec", s.NS}, s.Argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Power-loss semantics for a crashed test binary: children die with
		// it. Pdeathsig fires when the forking THREAD exits, which is why
		// forks happen on a dedicated thread that never exits (spawn).
		Pdeathsig: syscall.SIGKILL,
	}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("harness: start %s: %w", s.Name, err)
	}
	p := &Proc{Spec: s, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		p.exitAt = time.Now()
		close(p.done)
	}()
	if s.NS != "" {
		if err := p.waitInNetns(5 * time.Second); err != nil {
			_ = p.Kill()
			return nil, err
		}
	}
	return p, nil
}

// waitInNetns waits until the child has entered its namespace (ip netns
// exec takes a few ms to setns and exec). Without it, a KillNamespace right
// after Start could miss the process, which would then run on in a
// namespace the test believes powered off. A child that exits first is
// fine: its log says why.
func (p *Proc) waitInNetns(d time.Duration) error {
	want, err := statNetns(filepath.Join(NetnsDir, p.NS))
	if err != nil {
		return fmt.Errorf("harness: start %s: %w", p.Name, err)
	}
	deadline := time.Now().Add(d)
	for {
		id, err := statNetns(fmt.Sprintf("/proc/%d/ns/net", p.Pid()))
		if err == nil && id == want {
			return nil
		}
		if !p.Running() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("harness: start %s: not in netns %s after %v", p.Name, p.NS, d)
		}
		time.Sleep(time.Millisecond)
	}
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

// spawn starts cmd from a goroutine locked to one OS thread for the life of
// the process (see Pdeathsig above).
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread must live forever
			for r := range spawnCh {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, errc: make(chan error, 1)}
	spawnCh <- r
	return <-r.errc
}

// Pid is the process id (also its process group id).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitErr is the result of Wait once Done is closed (nil before).
func (p *Proc) ExitErr() error {
	select {
	case <-p.done:
		return p.waitErr
	default:
		return nil
	}
}

// ExitTime is when the process was reaped (zero while running).
func (p *Proc) ExitTime() time.Time {
	select {
	case <-p.done:
		return p.exitAt
	default:
		return time.Time{}
	}
}

// Signal sends sig to the whole process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	err := syscall.Kill(-p.Pid(), sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // already gone
	}
	return err
}

// Wait waits up to d for the process to exit.
func (p *Proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("harness: %s (pid %d) still running after %v", p.Name, p.Pid(), d)
	}
}

// Stop asks the process group to terminate (SIGTERM, plus SIGCONT in case it
// is frozen) and kills it after DefaultStopTimeout.
func (p *Proc) Stop() error { return p.StopTimeout(DefaultStopTimeout) }

// StopTimeout is Stop with an explicit grace period.
func (p *Proc) StopTimeout(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	_ = p.Signal(syscall.SIGCONT)
	if p.Wait(grace) == nil {
		return nil
	}
	return p.Kill()
}

// Kill sends SIGKILL to the process group and waits (bounded) for the exit.
func (p *Proc) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	return p.Wait(5 * time.Second)
}

// netnsID identifies a network namespace by device and inode.
type netnsID struct{ dev, ino uint64 }

func statNetns(path string) (netnsID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return netnsID{}, err
	}
	return netnsID{uint64(st.Dev), st.Ino}, nil
}

// PidsInNetns lists the processes whose network namespace is ns (what
// `ip netns pids` prints, read from /proc directly: no fork, no timeout
// needed). The test process itself is never listed: a goroutine of ours may
// momentarily have moved its thread into ns (see DialInNetns), and a power
// loss must not kill the test.
func PidsInNetns(ns string) ([]int, error) {
	want, err := statNetns(filepath.Join(NetnsDir, ns))
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		id, err := statNetns(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			continue // exited meanwhile, or a zombie (namespaces released)
		}
		if id == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// KillNamespace sends sig to every process in namespace ns. SIGKILL is a
// power loss of the node: it repeats until the namespace is empty (a dying
// parent may still fork), bounded by 5 s. SIGSTOP is a freeze (resume with
// SIGCONT); it is sent twice to catch a child forked during the first pass.
func KillNamespace(ns string, sig syscall.Signal) error {
	passes := 1
	if sig == syscall.SIGSTOP {
		passes = 2
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		pids, err := PidsInNetns(ns)
		if err != nil {
			return fmt.Errorf("harness: kill %v in %s: %w", sig, ns, err)
		}
		if len(pids) == 0 {
			return nil
		}
		if sig != syscall.SIGKILL && i >= passes {
			return nil
		}
		if sig == syscall.SIGKILL && time.Now().After(deadline) {
			return fmt.Errorf("harness: processes %v in %s survive SIGKILL", pids, ns)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, sig)
		}
		if sig == syscall.SIGKILL {
			time.Sleep(10 * time.Millisecond)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Exec runs a short command inside ns (e.g. `twonode status --json`) and
// returns its stdout. The whole process group is killed at the timeout. The
// error includes stderr.
func Exec(ns string, timeout time.Duration, argv ...string) ([]byte, error) {
	return ExecEnv(ns, timeout, nil, argv...)
}

// ExecEnv is Exec with extra environment variables.
func ExecEnv(ns string, timeout time.Duration, env []string, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("harness: Exec: empty argv")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := argv
	if ns != "" {
		full = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second // don't wait forever for a grandchild holding the pipes
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return stdout.Bytes(), fmt.Errorf("harness: %s in %s: timed out after %v: %s",
			strings.Join(argv, " "), ns, timeout, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("harness: %s in %s: %v: %s",
			strings.Join(argv, " "), ns, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
