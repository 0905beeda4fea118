package plugin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/localapi"
)

// AgentAPI is what the upgrade helpers need of the local agent (a
// *localapi.Client).
type AgentAPI interface {
	Status(ctx context.Context) (localapi.StatusReport, error)
	Pause(ctx context.Context, d time.Duration) (string, error)
	Resume(ctx context.Context) (string, error)
	Switchover(ctx context.Context) (string, error)
}

// Upgrade brackets a Kairos upgrade of this node with a pause of the pair.
//
// Kairos runs before-upgrade from the old image on the running system:
// Begin first hands over to the follower if this node leads (the planned
// switchover, which loses nothing), so that writes pause for about a
// second instead of for a reboot; then it pauses promotion on both nodes
// (so the peer does not take over while this node reboots) and records the pause and the image version in
// Marker, on the persistent partition. Kairos also runs after-upgrade from
// the OLD image's files, which know nothing of the new one, so the resume
// waits for the first boot of the new image: Finish, started from a boot
// stage, waits until this node is back in the pair and ends the pause,
// unless a newer one was taken meanwhile (the other node's upgrade, or an
// operator's): then the pause is left to whoever took it.
type Upgrade struct {
	API    AgentAPI
	Marker string
	// Version returns the running image's version.
	Version func() string
	Now     func() time.Time
	// PauseFor is the length of the upgrade's pause: this node's
	// pause_expiry (the local API refuses a pause of 0, it has no
	// "default" value). Zero means the agent's default pause_expiry.
	PauseFor time.Duration
	// Wait bounds how long Finish waits for the pair; Poll is the time
	// between two looks; Healthy is how many looks in a row must find the
	// pair formed (the pause a returning node learns from its peer arrives
	// with the first exchanges).
	Wait    time.Duration
	Poll    time.Duration
	Healthy int
	// HandOverWait bounds the wait for this node to follow after it
	// handed over (zero: two minutes).
	HandOverWait time.Duration
	Say          func(problem bool, text string)
}

// NewUpgrade returns the helpers for this machine.
func NewUpgrade(say func(problem bool, text string)) *Upgrade {
	return &Upgrade{
		API:      localapi.NewClient(AgentSocket),
		Marker:   UpgradeMarker,
		Version:  func() string { return ImageVersion("/etc/kairos-release", "/etc/os-release") },
		Now:      time.Now,
		Wait:     30 * time.Minute,
		Poll:     5 * time.Second,
		Healthy:  3,
		Say:      say,
		PauseFor: configuredPause(ConfigFile),
	}
}

// configuredPause is the pause_expiry of the agent's configuration at path,
// or the agent's default when it cannot be read (Begin then says nothing
// about it: a missing configuration means no agent runs, and Begin finds
// that out through the local API).
func configuredPause(path string) time.Duration {
	if c, err := config.Load(path); err == nil && c.Timers.PauseExpiry > 0 {
		return c.Timers.PauseExpiry
	}
	return config.Default().Timers.PauseExpiry
}

// marker is what Begin leaves for Finish.
type marker struct {
	FromVersion string    `json:"from_version"`
	PausedUntil time.Time `json:"paused_until,omitzero"` // the pause this upgrade took
	Started     time.Time `json:"started"`
}

// Begin pauses the pair for this node's upgrade. With no agent running
// (twonode not configured, or stopped) there is nothing to pause.
func (u *Upgrade) Begin(ctx context.Context) error {
	st, err := u.API.Status(ctx)
	if errors.Is(err, localapi.ErrNotRunning) {
		u.Say(false, "the twonode agent is not running on this node: nothing to pause for the upgrade")
		return nil
	}
	if err != nil {
		return fmt.Errorf("the agent's status before the upgrade: %w", err)
	}
	if !paired(st) {
		u.Say(true, fmt.Sprintf("warning: this node is %s and its peer %s: while this node reboots for the upgrade the pair may have no datastore", st.State, reach(st)))
	}
	if st.State == "leader" && paired(st) {
		u.handOver(ctx)
	}
	d := u.PauseFor
	if d <= 0 {
		d = config.Default().Timers.PauseExpiry
	}
	msg, err := u.API.Pause(ctx, d)
	if err != nil && !errors.Is(err, localapi.ErrPartial) {
		// Paused here only (the peer is down) is enough: a peer that
		// returns sees this node's pause.
		return fmt.Errorf("pausing the pair for the upgrade: %w", err)
	}
	u.Say(false, msg)
	m := marker{FromVersion: u.Version(), Started: u.Now().UTC()}
	if st, err := u.API.Status(ctx); err == nil {
		m.PausedUntil = st.PausedUntil
	} else {
		u.Say(true, fmt.Sprintf("the pause's end is unknown (%v): the first boot after the upgrade ends whatever pause it finds", err))
	}
	b, _ := json.MarshalIndent(m, "", "  ") // plain fields: cannot fail
	if err := writeFile(u.Marker, append(b, '\n')); err != nil {
		return fmt.Errorf("recording the upgrade in %s (the pause ends at its expiry or with `twonode resume`): %w", u.Marker, err)
	}
	u.Say(false, fmt.Sprintf("upgrading from %s: the first boot after the upgrade ends the pause once this node is back in the pair (%s)", m.FromVersion, u.Marker))
	return nil
}

// handOver makes the follower the leader before this node reboots, and
// waits (up to HandOverWait) until this node follows it. A hand-over that
// is refused or does not finish is no reason not to upgrade: the pause
// still keeps the peer from taking over, and writes stop while this node
// reboots, as without it.
func (u *Upgrade) handOver(ctx context.Context) {
	msg, err := u.API.Switchover(ctx)
	if err != nil {
		u.Say(true, fmt.Sprintf("warning: this node leads and could not hand over before the upgrade (%v): writes stop while it reboots", err))
		return
	}
	u.Say(false, msg)
	wait := u.HandOverWait
	if wait <= 0 {
		wait = defaultHandOverWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		st, err := u.API.Status(ctx)
		if err == nil && st.State == "follower" {
			u.Say(false, "this node follows the new leader: upgrading")
			return
		}
		select {
		case <-ctx.Done():
			u.Say(true, fmt.Sprintf("warning: this node handed over but does not follow the new leader after %s (it is %s): upgrading all the same", fmtDuration(wait), st.State))
			return
		case <-time.After(u.Poll):
		}
	}
}

// defaultHandOverWait bounds the wait for this node to follow after a
// hand-over: a rewind and a restart of PostgreSQL, seconds on a small disk.
const defaultHandOverWait = 2 * time.Minute

// Finish ends the pause an upgrade of this node took, once the node is
// back in the pair. The marker is removed in every case but a failure to
// read it: the next boot must not act on an old upgrade.
func (u *Upgrade) Finish(ctx context.Context) error {
	b, err := os.ReadFile(u.Marker)
	if errors.Is(err, os.ErrNotExist) {
		u.Say(false, "no upgrade to finish")
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", u.Marker, err)
	}
	defer func() {
		if err := os.Remove(u.Marker); err != nil && !errors.Is(err, os.ErrNotExist) {
			u.Say(true, fmt.Sprintf("could not remove %s: %v", u.Marker, err))
		}
	}()
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s is not an upgrade record (%v): the pause ends at its expiry or with `twonode resume`", u.Marker, err)
	}
	if v := u.Version(); v != m.FromVersion {
		u.Say(false, fmt.Sprintf("upgraded from %s to %s", m.FromVersion, v))
	} else {
		u.Say(true, fmt.Sprintf("the image is still %s: the upgrade did not complete or was rolled back; ending its pause all the same", v))
	}

	st, err := u.waitPaired(ctx)
	if err != nil {
		return err
	}
	switch {
	case !st.Paused:
		u.Say(false, "the pause has ended already (expired, or resumed by hand)")
		return nil
	case !m.PausedUntil.IsZero() && !samePause(st.PausedUntil, m.PausedUntil):
		u.Say(false, fmt.Sprintf("a newer pause (until %s) was taken after this upgrade's (until %s): left to whoever took it",
			st.PausedUntil.UTC().Format(time.RFC3339), m.PausedUntil.UTC().Format(time.RFC3339)))
		return nil
	}
	msg, err := u.API.Resume(ctx)
	if err != nil && !errors.Is(err, localapi.ErrPartial) { // the message says what is left to do
		return fmt.Errorf("ending the upgrade's pause (it ends at its expiry, or with `twonode resume`): %w", err)
	}
	u.Say(false, msg)
	return nil
}

// pauseSlack is how far the end of the pause an agent reports may be from
// the one recorded before the upgrade and still be that same pause. The
// agents do not share an instant: each node computes its own end (now +
// the pause's length), and a node learns the peer's as now + the time the
// peer says is left, so a returning node reports an end a few milliseconds
// (the latency of a request) off the one recorded before its reboot. A
// newer pause (the other node's upgrade, an operator's) is taken after
// this node came back, minutes later, or with another length.
const pauseSlack = time.Minute

// samePause tells whether two ends of a pause are the same pause.
func samePause(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -pauseSlack && d < pauseSlack
}

// waitPaired polls the agent until the pair is formed u.Healthy times in a
// row, or u.Wait has passed.
func (u *Upgrade) waitPaired(ctx context.Context) (localapi.StatusReport, error) {
	ctx, cancel := context.WithTimeout(ctx, u.Wait)
	defer cancel()
	t := time.NewTicker(u.Poll)
	defer t.Stop()
	var last localapi.StatusReport
	var lastErr error
	for run := 0; ; {
		st, err := u.API.Status(ctx)
		switch {
		case err == nil && paired(st):
			if run++; run >= u.Healthy {
				return st, nil
			}
		case err == nil:
			run, last, lastErr = 0, st, nil
		default:
			run, lastErr = 0, err
		}
		select {
		case <-ctx.Done():
			why := fmt.Sprintf("this node is %s and its peer %s", last.State, reach(last))
			if lastErr != nil {
				why = lastErr.Error()
			}
			return st, fmt.Errorf("the pair did not form again within %s after the upgrade (%s): the pause stays until its expiry, or `twonode resume`", fmtDuration(u.Wait), why)
		case <-t.C:
		}
	}
}

// paired reports whether this node is in the formed pair: leading with its
// follower caught up, or following, with the peer answering.
func paired(st localapi.StatusReport) bool {
	return st.PeerReachable && (st.State == "leader" || st.State == "follower")
}

func reach(st localapi.StatusReport) string {
	if st.PeerReachable {
		return "answers"
	}
	return "does not answer"
}

// ImageVersion reads the image's version from the first of files (os-release
// format) that names one: KAIROS_IMAGE_LABEL, else KAIROS_VERSION, else
// VERSION_ID; "unknown" when none does.
func ImageVersion(files ...string) string {
	for _, f := range files {
		vals := map[string]string{}
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			if ok {
				vals[k] = strings.Trim(v, `"'`)
			}
		}
		fh.Close()
		for _, k := range []string{"KAIROS_IMAGE_LABEL", "KAIROS_VERSION", "VERSION_ID"} {
			if v := vals[k]; v != "" {
				return v
			}
		}
	}
	return "unknown"
}
