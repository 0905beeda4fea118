package kine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process supervises Kine as a detached process (own session), recorded in
// a pid file so that a restarted agent adopts the Kine it left running.
type Process struct {
	s   Settings
	log *slog.Logger

	mu     sync.Mutex
	pid    int
	target string
}

// NewProcess adopts a Kine left running by an earlier agent, if any.
func NewProcess(s Settings, log *slog.Logger) *Process {
	p := &Process{s: s, log: log}
	if pid, target, err := p.readPidfile(); err == nil && isKine(pid) {
		p.pid, p.target = pid, target
		log.Info("adopted running kine", "pid", pid, "target", target)
	}
	return p
}

func (p *Process) pidfile() string { return filepath.Join(p.s.RunDir, "kine.pid") }

func (p *Process) readPidfile() (int, string, error) {
	b, err := os.ReadFile(p.pidfile())
	if err != nil {
		return 0, "", err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, "", errors.New("malformed kine pid file")
	}
	pid, err := strconv.Atoi(f[0])
	return pid, f[1], err
}

// Target implements Runner.
func (p *Process) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid == 0 {
		return ""
	}
	return p.target
}

// Point implements Runner.
func (p *Process) Point(ctx context.Context, host string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid != 0 && p.target == host && isKine(p.pid) {
		return nil
	}
	if err := p.stopLocked(ctx); err != nil {
		return err
	}
	return p.startLocked(ctx, host)
}

// Ensure implements Runner.
func (p *Process) Ensure(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid == 0 || isKine(p.pid) {
		return nil
	}
	p.log.Warn("kine died: restarting it", "pid", p.pid, "target", p.target)
	return p.startLocked(ctx, p.target)
}

// Stop implements Runner.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(ctx)
}

// Kill implements Runner.
func (p *Process) Kill(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopWithin(ctx, 0)
}

func (p *Process) startLocked(ctx context.Context, host string) error {
	if err := p.s.writeFiles(); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(p.s.RunDir, "kine.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("kine: log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(p.s.Binary)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, p.s.env(host)...)
	cmd.Dir = p.s.RunDir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: a signal to the agent's process group (Ctrl-C, a
	// crash, systemd stopping the agent) does not reach Kine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kine: start %s: %w", p.s.Binary, err)
	}
	go func() { _ = cmd.Wait() }() // reap it when it exits while we live
	p.pid, p.target = cmd.Process.Pid, host
	if err := os.WriteFile(p.pidfile(), []byte(fmt.Sprintf("%d %s\n", p.pid, host)), 0o600); err != nil {
		return fmt.Errorf("kine: pid file: %w", err)
	}
	start := time.Now()
	if err := waitListening(ctx, p.s.Listen, 5*time.Second); err != nil {
		return err
	}
	p.log.Info("kine ready", "pid", p.pid, "target", host, "took", time.Since(start))
	return nil
}

func (p *Process) stopLocked(ctx context.Context) error { return p.stopWithin(ctx, StopGrace) }

// stopWithin sends SIGTERM and, if Kine is still there after grace,
// SIGKILL (at once when grace is 0).
func (p *Process) stopWithin(ctx context.Context, grace time.Duration) error {
	if p.pid == 0 {
		return nil
	}
	pid := p.pid
	if isKine(pid) && grace > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(grace)
		for isKine(pid) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if isKine(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && isKine(pid); i++ { // gone within a few ms: its port is free
			time.Sleep(time.Millisecond)
		}
	}
	p.pid, p.target = 0, ""
	_ = os.Remove(p.pidfile())
	p.log.Info("kine stopped", "pid", pid)
	return nil
}

// isKine: pid is a live (not zombie) process whose executable is kine.
func isKine(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0 := strings.SplitN(string(cmdline), "\x00", 2)[0]
	return strings.Contains(filepath.Base(argv0), "kine")
}

// waitListening waits until Kine accepts connections, so that the caller's
// "first write accepted" is not a race with Kine's start.
func waitListening(ctx context.Context, addr string, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("kine: not listening on %s after %s: %w", addr, max, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
