package kine

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	// ln is Kine's listening socket, bound by the agent on the first
	// start and handed to every Kine it starts (fd 3, LISTEN_FDS=1; Kine
	// patch 0005). It stays open while one Kine replaces the next, so an
	// API server reconnecting then waits in the accept queue for the new
	// Kine instead of being refused and backing off for a second. Kept
	// through a Kill (a promotion's, which points Kine here next) and
	// Point's swap; closed by Stop, so clients of a Kine stopped on
	// purpose (a demoted or fenced node, a rejoin) are refused at once as
	// before rather than left waiting. A Kine adopted from an earlier
	// agent keeps its own socket; the agent binds one at the next start.
	ln *net.TCPListener
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

// Stop implements Runner: Kine stops and its port is closed.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.stopLocked(ctx)
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	return err
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
	sock, err := p.socket()
	if err != nil {
		return err
	}
	defer sock.Close() // the child has its own copy
	cmd := exec.Command(p.s.Binary)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LISTEN_FDS=1"}, p.s.env(host)...)
	cmd.ExtraFiles = []*os.File{sock} // fd 3
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
	if err := waitServing(ctx, p.s.Listen, 5*time.Second); err != nil {
		return err
	}
	p.log.Info("kine ready", "pid", p.pid, "target", host, "took", time.Since(start))
	return nil
}

// socket returns a copy of the held listening socket for a child, binding
// it first if need be.
func (p *Process) socket() (*os.File, error) {
	if p.ln == nil {
		addr, err := net.ResolveTCPAddr("tcp", p.s.Listen)
		if err != nil {
			return nil, fmt.Errorf("kine: listen address %q: %w", p.s.Listen, err)
		}
		if p.ln, err = net.ListenTCP("tcp", addr); err != nil {
			return nil, fmt.Errorf("kine: listen on %s (another Kine or etcd there?): %w", p.s.Listen, err)
		}
	}
	f, err := p.ln.File()
	if err != nil {
		return nil, fmt.Errorf("kine: listening socket: %w", err)
	}
	return f, nil
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

// waitServing waits until Kine answers as an HTTP/2 (gRPC) server, so that
// the caller's "Kine ready" is not a race with Kine's start. A TCP connect
// is not enough: the socket the agent holds accepts connections before
// any Kine serves them. It sends the client preface and an empty SETTINGS
// frame and waits for the server's first frame (its SETTINGS).
func waitServing(ctx context.Context, addr string, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		err := http2Answers(addr, 200*time.Millisecond)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("kine: not serving on %s after %s: %w", addr, max, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// http2Preface is an HTTP/2 client's first bytes: the connection preface
// and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5).
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"

func http2Answers(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, http2Preface); err != nil {
		return err
	}
	var hdr [9]byte // a frame header: length (3), type (1), flags (1), stream (4)
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("no HTTP/2 answer: %w", err)
	}
	if hdr[3] != 0x4 {
		return fmt.Errorf("first HTTP/2 frame has type %d, not SETTINGS", hdr[3])
	}
	return nil
}
