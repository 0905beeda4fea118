package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// SystemdUnit is the unit that runs this node's PostgreSQL on the appliance
// (overlay/etc/systemd/system/twonode-postgresql.service). It runs the
// postgres binary of /usr/lib/twonode/pgbin (a link to the distribution's
// server binaries made by scripts/install-two-node.sh) on the data
// directory named in its EnvironmentFile, <run_dir>/postgres.env.
const SystemdUnit = "twonode-postgresql.service"

// Systemd is a Manager whose long-running server is a systemd unit instead
// of a child of pg_ctl. Under systemd a postmaster that pg_ctl forks lives in
// the agent's control group and dies when the agent's unit stops; in a unit
// of its own it keeps serving while the agent is stopped, restarted or
// upgraded, as Kine does (kine.Systemd).
//
// Only the starts that leave a server running for the node go through the
// unit (Start and the end of InitDB). Short-lived servers the agent runs for
// itself (initdb's setup, crash recovery before pg_rewind) still use pg_ctl
// and are stopped before the call returns. Stopping works on either: pg_ctl
// signals the postmaster named in postmaster.pid, and systemd records the
// unit as stopped. The unit has no Restart=: only the agent decides when
// PostgreSQL runs (it must render the configuration first, and must not see
// a server come back in the middle of a base backup).
type Systemd struct {
	*Manager
	unit    string
	envFile string
	// systemctl is the systemctl executable (a test replaces it).
	systemctl string
}

// NewSystemd wraps m; envFile is the unit's EnvironmentFile (the agent
// passes <run_dir>/postgres.env).
func NewSystemd(m *Manager, unit, envFile string) *Systemd {
	return &Systemd{Manager: m, unit: unit, envFile: envFile, systemctl: "systemctl"}
}

// Start is Manager.Start with the server started by systemd.
func (s *Systemd) Start(ctx context.Context, standby bool) error {
	return s.Manager.start(ctx, standby, s.unitStart)
}

// InitDB is Manager.InitDB, after which the new primary is handed to the
// unit: stopped cleanly and started again by systemd (once in a node's life).
func (s *Systemd) InitDB(ctx context.Context) error {
	if err := s.Manager.InitDB(ctx); err != nil {
		return err
	}
	m := s.Manager
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.stop(ctx, false); err != nil {
		return err
	}
	return s.unitStart(ctx)
}

// Stop stops the server, in either mode (see Manager.Stop): an immediate
// stop sends SIGQUIT to the postmaster, as pg_ctl -m immediate does; then
// systemd stops the unit (SIGINT: a fast shutdown, if it still runs).
func (s *Systemd) Stop(ctx context.Context, immediate bool) error {
	m := s.Manager
	m.mu.Lock()
	defer m.mu.Unlock()
	if immediate && s.active(ctx) {
		_, _ = s.run(ctx, "kill", "--kill-who=main", "--signal=SIGQUIT", s.unit)
	}
	if _, err := s.run(ctx, "stop", s.unit); err != nil {
		return err
	}
	// A server pg_ctl started (one left by an agent that ran with the
	// process supervisor) is stopped too.
	if err := m.stop(ctx, immediate); err != nil {
		return err
	}
	_, _ = s.run(ctx, "reset-failed", s.unit) // an immediate stop leaves it "failed"
	return nil
}

// Crash is Manager.Crash for the unit: SIGQUIT to its main process; the
// next Stop (systemctl stop) waits for it to be gone.
func (s *Systemd) Crash(ctx context.Context) error {
	m := s.Manager
	m.mu.Lock()
	defer m.mu.Unlock()
	if !s.active(ctx) {
		return nil
	}
	if out, err := s.run(ctx, "kill", "--kill-who=main", "--signal=SIGQUIT", s.unit); err != nil {
		return fmt.Errorf("postgres: systemctl kill %s: %w: %s", s.unit, err, out)
	}
	m.log.Info("postgresql told to quit at once", "unit", s.unit)
	return nil
}

// unitStart writes the unit's environment and starts it. The unit is
// Type=notify: systemctl returns once PostgreSQL is ready to accept
// connections (a hot standby: once it is consistent), as pg_ctl -w would.
// A start that fails or outlives ctx leaves the unit to systemd; the next
// Start finds a running server or tries again.
func (s *Systemd) unitStart(ctx context.Context) error {
	m := s.Manager
	if err := m.ensureDir(m.s.SocketDir); err != nil {
		return err
	}
	if err := s.writeEnv(); err != nil {
		return err
	}
	start := time.Now()
	_, _ = s.run(ctx, "reset-failed", s.unit)
	if out, err := s.run(ctx, "start", s.unit); err != nil {
		return fmt.Errorf("postgres: systemctl start %s: %w: %s%s", s.unit, err, out, s.journalTail())
	}
	m.log.Info("postgresql started by systemd", "unit", s.unit, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// env is the unit's environment: PGDATA, which postgres reads when it is
// given no -D.
func (s *Systemd) env() string {
	env := "# written by the twonode agent before every start of " + s.unit + "\n" +
		"PGDATA=" + s.Manager.s.DataDir + "\n"
	for _, kv := range s.Manager.s.TestEnv {
		env += kv + "\n"
	}
	return env
}

func (s *Systemd) writeEnv() error {
	if strings.ContainsAny(s.Manager.s.DataDir, "\n\"'\\$") {
		return fmt.Errorf("postgres: data directory %q cannot be passed to a systemd unit", s.Manager.s.DataDir)
	}
	if err := os.MkdirAll(filepath.Dir(s.envFile), 0o755); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	tmp := s.envFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(s.env()), 0o644); err != nil {
		return fmt.Errorf("postgres: unit environment: %w", err)
	}
	if err := os.Rename(tmp, s.envFile); err != nil {
		return fmt.Errorf("postgres: unit environment: %w", err)
	}
	return nil
}

func (s *Systemd) active(ctx context.Context) bool {
	_, err := s.run(ctx, "is-active", "--quiet", s.unit)
	return err == nil
}

func (s *Systemd) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.systemctl, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// journalTail is the unit's last log lines, for a failed start's error.
func (s *Systemd) journalTail() string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "journalctl", "--no-pager", "-q", "-o", "cat", "-n", "15", "-u", s.unit).Output()
	if err != nil && !errors.Is(err, exec.ErrNotFound) && len(out) == 0 {
		return ""
	}
	if t := strings.TrimSpace(string(out)); t != "" {
		return "\n" + s.unit + " log:\n" + t
	}
	return ""
}
