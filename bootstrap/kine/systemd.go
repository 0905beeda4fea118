package kine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Systemd supervises Kine as a systemd unit (the appliance): the agent
// writes the unit's EnvironmentFile and restarts it; systemd restarts Kine
// if it dies, and stopping the agent leaves it serving.
type Systemd struct {
	s    Settings
	unit string
	log  *slog.Logger

	mu     sync.Mutex
	target string
}

// NewSystemd adopts the target recorded in the environment file.
func NewSystemd(s Settings, unit string, log *slog.Logger) *Systemd {
	d := &Systemd{s: s, unit: unit, log: log}
	if b, err := os.ReadFile(d.envfile()); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if t, ok := strings.CutPrefix(l, "# target="); ok && d.active() {
				d.target = t
			}
		}
	}
	return d
}

func (d *Systemd) envfile() string { return filepath.Join(d.s.RunDir, "kine.env") }

func (d *Systemd) active() bool {
	return exec.Command("systemctl", "is-active", "--quiet", d.unit).Run() == nil
}

func (d *Systemd) systemctl(ctx context.Context, verb string, flags ...string) error {
	args := append(append([]string{verb}, flags...), d.unit)
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kine: systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Point implements Runner.
func (d *Systemd) Point(ctx context.Context, host string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.target == host && d.active() {
		return nil
	}
	if err := d.s.writeFiles(); err != nil {
		return err
	}
	body := "# written by the twonode agent\n# target=" + host + "\n" + strings.Join(d.s.env(host), "\n") + "\n"
	if err := os.WriteFile(d.envfile()+".tmp", []byte(body), 0o600); err != nil {
		return fmt.Errorf("kine: env file: %w", err)
	}
	if err := os.Rename(d.envfile()+".tmp", d.envfile()); err != nil {
		return fmt.Errorf("kine: env file: %w", err)
	}
	if err := d.systemctl(ctx, "restart"); err != nil {
		return err
	}
	d.target = host
	d.log.Info("kine restarted by systemd", "unit", d.unit, "target", host)
	return waitServing(ctx, d.s.Listen, 5*time.Second)
}

// Stop implements Runner.
func (d *Systemd) Stop(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.target = ""
	return d.systemctl(ctx, "stop")
}

// Kill implements Runner: SIGKILL to the unit's processes, and no stop, so
// the unit waits to restart (RestartSec) and systemd keeps Kine's listening
// socket for the Point that follows (the unit's FileDescriptorStoreMax).
// The environment file goes first: should the restart come before that
// Point, its condition (ConditionPathExists) keeps Kine down rather than
// pointed at the old leader again, and the stop it then amounts to
// closes the port. If the kill fails, the unit is stopped.
func (d *Systemd) Kill(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.target = ""
	if err := os.Remove(d.envfile()); err != nil && !os.IsNotExist(err) {
		d.log.Warn("removing kine's environment file failed: stopping it", "err", err)
		return d.systemctl(ctx, "stop")
	}
	if err := d.systemctl(ctx, "kill", "--signal=SIGKILL"); err != nil {
		d.log.Warn("killing kine failed: stopping it", "err", err)
		return d.systemctl(ctx, "stop")
	}
	return nil
}

// Ensure implements Runner: systemd restarts Kine itself (Restart=always).
func (d *Systemd) Ensure(context.Context) error { return nil }

// Target implements Runner.
func (d *Systemd) Target() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.target
}
