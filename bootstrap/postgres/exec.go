package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// run executes a PostgreSQL tool from BinDir as OSUser, in a session of its
// own (a signal to the agent's process group must not reach a postmaster
// that pg_ctl forks), with a clean environment: stray PG* variables of the
// agent must not redirect the tools. extraEnv carries PGPASSFILE only.
// The returned output is for error messages; no tool prints a password
// because none is ever given one except through the passfile.
func (m *Manager) run(ctx context.Context, extraEnv []string, tool string, args ...string) (string, error) {
	uid, gid, err := m.ids()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(m.s.BinDir, tool), args...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "LANG=C"}, m.s.TestEnv...)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Dir = "/" // the agent's working directory may be closed to OSUser
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uid, Gid: gid}, // also drops root's groups
		Setsid:     true,
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second // never hang on a descendant holding the pipe
	err = cmd.Run()
	return out.String(), err
}

// toolErr names the step and keeps the tool's last words.
func toolErr(step string, err error, out string) error {
	out = strings.TrimSpace(out)
	if len(out) > 800 {
		out = "…" + out[len(out)-800:]
	}
	if out == "" {
		return fmt.Errorf("postgres: %s: %w", step, err)
	}
	return fmt.Errorf("postgres: %s: %w: %s", step, err, out)
}

// ErrNoPeerConnection: a tool could not connect to the peer's server at
// all (refused, timed out, authentication failed). Nothing of the local data
// was touched, and nothing else that needs the peer would do better now.
var ErrNoPeerConnection = errors.New("no connection to the peer's PostgreSQL")

// peerToolErr is toolErr for a tool that connects to the peer: a failed
// connection (libpq's "connection to server at ... failed") is also
// ErrNoPeerConnection.
func peerToolErr(step string, err error, out string) error {
	if strings.Contains(out, "connection to server at") && strings.Contains(out, "failed:") {
		err = fmt.Errorf("%w: %w", ErrNoPeerConnection, err)
	}
	return toolErr(step, err, out)
}

// seconds is the -t for pg_ctl: what is left of ctx, or a default.
func seconds(ctx context.Context) string {
	d := defaultTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	s := int(d / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// Running reports whether a postmaster runs on DataDir (pg_ctl status: it
// checks the pid in postmaster.pid is alive).
func (m *Manager) Running(ctx context.Context) bool {
	if !m.HasData() {
		return false
	}
	_, err := m.run(ctx, nil, "pg_ctl", "status", "-D", m.s.DataDir)
	return err == nil
}

// pgctlStart starts the server and waits until it accepts connections (a
// hot standby: until it is consistent).
func (m *Manager) pgctlStart(ctx context.Context) error {
	if err := m.ensureLogFile(); err != nil {
		return err
	}
	start := time.Now()
	out, err := m.run(ctx, nil, "pg_ctl", "start", "-w", "-t", seconds(ctx), "-D", m.s.DataDir, "-l", m.s.LogFile)
	if err != nil {
		return toolErr("pg_ctl start", err, out+"\n"+m.logTail())
	}
	m.log.Info("postgresql started", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// logTail is the end of the server log, for a failed start's error.
func (m *Manager) logTail() string {
	f, err := os.Open(m.s.LogFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	const n = 600
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return m.s.LogFile + ": " + strings.TrimSpace(string(b))
}

// Stop stops the server: fast (clean: every WAL record reaches a connected
// standby before the walsender exits) or immediate (a crash, for a copy
// that is about to be replaced). No-op when it is not running.
func (m *Manager) Stop(ctx context.Context, immediate bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stop(ctx, immediate)
}

// Crash begins an immediate stop and returns without waiting for it: the
// postmaster is told to quit at once (SIGQUIT, as pg_ctl -m immediate
// does), and the next Stop, Start or Rewind waits until it is gone (a
// postmaster in an immediate shutdown ignores the fast one those ask for).
// For a hand-over from a slow disk, where even an immediate stop waits for
// the fsync in progress. No-op when it is not running.
func (m *Manager) Crash(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.Running(ctx) {
		return nil
	}
	if out, err := m.run(ctx, nil, "pg_ctl", "stop", "-W", "-m", "immediate", "-D", m.s.DataDir); err != nil && m.Running(ctx) {
		return toolErr("pg_ctl stop -W -m immediate", err, out)
	}
	m.log.Info("postgresql told to quit at once", "mode", "immediate")
	return nil
}

func (m *Manager) stop(ctx context.Context, immediate bool) error {
	if !m.Running(ctx) {
		return nil
	}
	mode := "fast"
	if immediate {
		mode = "immediate"
	}
	start := time.Now()
	out, err := m.run(ctx, nil, "pg_ctl", "stop", "-w", "-t", seconds(ctx), "-m", mode, "-D", m.s.DataDir)
	if err != nil {
		if !m.Running(ctx) { // it went away by itself meanwhile
			return nil
		}
		return toolErr("pg_ctl stop -m "+mode, err, out)
	}
	m.log.Info("postgresql stopped", "mode", mode, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// clusterState is pg_controldata's "Database cluster state" ("shut down",
// "shut down in recovery", "in production", "in archive recovery", ...).
func (m *Manager) clusterState(ctx context.Context) (string, error) {
	out, err := m.run(ctx, nil, "pg_controldata", "-D", m.s.DataDir)
	if err != nil {
		return "", toolErr("pg_controldata", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Database cluster state" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("postgres: pg_controldata: no cluster state in its output")
}

// cleanlyStopped is what pg_rewind accepts as a target.
func cleanlyStopped(state string) bool {
	return state == "shut down" || state == "shut down in recovery"
}
