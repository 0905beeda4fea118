package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// BaseBackup replaces the local data with a copy of the peer's, taken
// through this node's slot there (the leader creates it with EnsureSlot),
// and prepares it as a standby without starting it.
//
// The copy goes to a sibling directory first: the old data stays in place
// until the copy is complete, so a failed or interrupted copy leaves the
// node as it was; the old data is deleted after the swap.
func (m *Manager) BaseBackup(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkName("node name", m.s.NodeName); err != nil {
		return err
	}
	if err := m.stop(ctx, true); err != nil { // its data is being replaced
		return err
	}
	newDir, oldDir := m.s.DataDir+".new", m.s.DataDir+".old"
	if err := os.RemoveAll(newDir); err != nil {
		return fmt.Errorf("postgres: base backup: remove an earlier attempt: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(m.s.DataDir), 0o755); err != nil {
		return fmt.Errorf("postgres: base backup: %w", err)
	}
	if err := m.ensureDir(newDir); err != nil {
		return err
	}
	if err := m.writePassfile(); err != nil {
		return err
	}
	start := time.Now()
	// Its own application_name: the backup's WAL stream must never be taken
	// for the synchronous standby.
	src := m.toolConninfo("twonode_basebackup", "")
	out, err := m.run(ctx, []string{"PGPASSFILE=" + m.passfile()}, "pg_basebackup",
		"-D", newDir, "-d", src, "-X", "stream", "-S", slotName(m.s.NodeName), "-c", "fast", "-w", "--no-sync")
	if err != nil {
		os.RemoveAll(newDir)
		return peerToolErr("pg_basebackup from "+m.s.PeerAddress, err, out)
	}
	syncStart := time.Now()
	if err := syncData(newDir); err != nil { // before the copy takes the old data's place
		os.RemoveAll(newDir)
		return err
	}
	synced := time.Since(syncStart)
	took := time.Since(start)
	if err := os.RemoveAll(oldDir); err != nil {
		return fmt.Errorf("postgres: base backup: %w", err)
	}
	if err := os.Rename(m.s.DataDir, oldDir); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("postgres: base backup: move the old data aside: %w", err)
	}
	if err := os.Rename(newDir, m.s.DataDir); err != nil {
		return fmt.Errorf("postgres: base backup: move the copy into place: %w", err)
	}
	syncDir(filepath.Dir(m.s.DataDir))
	if err := m.prepareStandby(true, false); err != nil {
		return err
	}
	if err := os.RemoveAll(oldDir); err != nil {
		return fmt.Errorf("postgres: base backup: delete the old data: %w", err)
	}
	m.log.Info("base backup done", "from", m.s.PeerAddress, "took", took.Round(time.Millisecond), "synced", synced.Round(time.Millisecond))
	return nil
}

// Rewind makes the local data a standby of the peer with pg_rewind, which
// copies only what changed since the two diverged. When it ran and failed
// the caller falls back to BaseBackup; when it could not connect to the
// peer at all (ErrNoPeerConnection) a base backup could not either, and the
// caller tries again later.
//
// pg_rewind needs a cleanly stopped target. A crashed one first finishes
// recovery isolated (no TCP listener) in the role it had: a standby as a
// standby, because a standby opened as a primary would write a checkpoint
// on the peer's timeline, and pg_rewind would see no divergence at all.
func (m *Manager) Rewind(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkName("node name", m.s.NodeName); err != nil {
		return err
	}
	if !m.HasData() {
		return fmt.Errorf("postgres: rewind: no cluster in %s", m.s.DataDir)
	}
	if err := m.stop(ctx, false); err != nil {
		return err
	}
	state, err := m.clusterState(ctx)
	if err != nil {
		return err
	}
	if !cleanlyStopped(state) {
		standby := m.exists("standby.signal")
		m.log.Warn("rewind: last shutdown was not clean: finishing recovery isolated first", "state", state, "standby", standby)
		if err := m.startIsolated(ctx, standby); err != nil {
			return fmt.Errorf("postgres: rewind: recovery before rewinding: %w", err)
		}
		if err := m.stop(ctx, false); err != nil {
			return err
		}
		if state, err = m.clusterState(ctx); err != nil {
			return err
		}
		if !cleanlyStopped(state) {
			return fmt.Errorf("postgres: rewind: still %q after recovery", state)
		}
	}
	if err := m.writePassfile(); err != nil {
		return err
	}
	if err := m.checkpointPeer(ctx); errors.Is(err, ErrNoPeerConnection) {
		// pg_rewind would most likely not connect either, and if it did
		// it could read the peer's old timeline and answer "no rewind
		// required" for data that diverged (CI: the standby then never
		// streamed, for the 2 minutes of the join timeout).
		return fmt.Errorf("postgres: rewind: the peer's checkpoint first: %w", err)
	} else if err != nil {
		m.log.Warn("rewind: could not make the peer checkpoint first; pg_rewind may see its old timeline", "err", err)
	}
	start := time.Now()
	out, err := m.run(ctx, []string{"PGPASSFILE=" + m.passfile()}, "pg_rewind",
		"--target-pgdata="+m.s.DataDir, "--source-server="+m.toolConninfo("twonode_rewind", "postgres"), "--no-sync", "--progress")
	if err != nil {
		return peerToolErr("pg_rewind from "+m.s.PeerAddress, err, out)
	}
	took, syncStart := time.Since(start), time.Now()
	if err := syncData(m.s.DataDir); err != nil { // before the standby starts on it
		return err
	}
	m.log.Info("rewind done", "from", m.s.PeerAddress, "took", took.Round(time.Millisecond),
		"synced", time.Since(syncStart).Round(time.Millisecond), "copied", copiedLine(out), "result", lastLine(out))
	// pg_rewind copied the peer's configuration files: ours again.
	return m.prepareStandby(true, false)
}

// copiedLine is what pg_rewind --progress says it had to copy ("need to
// copy 293 MB (total source directory size is 1552 MB)"): on PostgreSQL 15
// every file of the source's pg_wal is in it, so it says how much of a
// rewind was WAL (docs/results.md).
func copiedLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(l, "need to copy "); ok {
			return rest
		}
	}
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// checkpointPeer makes the peer write a checkpoint. pg_rewind takes the
// source's timeline from its control file, and a server promoted moments
// ago still has its old timeline there until its end-of-recovery
// checkpoint completes (seconds on a busy machine): pg_rewind then reports
// "no rewind required" for data that diverged, and the standby never
// streams ("new timeline forked off ... before current recovery point").
func (m *Manager) checkpointPeer(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(m.toolConninfo("twonode_rewind", "postgres"))
	if err != nil {
		return err
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoPeerConnection, err)
	}
	defer closeQuietly(c)
	start := time.Now()
	if _, err := c.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	m.log.Info("rewind: the peer checkpointed", "took", time.Since(start).Round(time.Millisecond))
	return nil
}
