package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// execAll runs statements one by one (ALTER SYSTEM refuses a transaction
// block, which a multi-statement string would be).
func execAll(ctx context.Context, c *pgx.Conn, step string, stmts ...string) error {
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			return fmt.Errorf("postgres: %s: %w", step, err)
		}
	}
	return nil
}

// Promote turns the local standby into a primary and clears what it
// inherited from the old leader; it returns how long pg_promote took. A
// server that is already a primary only gets the clearing.
func (m *Manager) Promote(ctx context.Context) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.promote(ctx)
}

func (m *Manager) promote(ctx context.Context) (time.Duration, error) {
	c, err := m.local(ctx, "postgres")
	if err != nil {
		return 0, fmt.Errorf("postgres: promote: %w", err)
	}
	defer m.release(c)
	var inRec, conninfo, syncNames bool
	err = c.QueryRow(ctx, `SELECT pg_is_in_recovery(), current_setting('primary_conninfo') <> '',
		current_setting('synchronous_standby_names') <> ''`).Scan(&inRec, &conninfo, &syncNames)
	if err != nil {
		return 0, fmt.Errorf("postgres: promote: pg_is_in_recovery: %w", err)
	}
	// Cleared before pg_promote, while still a standby (which ignores them):
	// the new primary must not wait, even for a moment, for a synchronous
	// standby that is gone; and a walreceiver retrying a dead leader can
	// delay the promotion by up to wal_retrieve_retry_interval (measured:
	// pg_promote ~1.1 s after a leader crash, ~0.1-0.2 s without it).
	// Only what is set: each ALTER SYSTEM rewrites and syncs
	// postgresql.auto.conf, ~8 ms each here on the take-over's path
	// (the failover timeline). primary_slot_name is left: nothing reads it
	// without primary_conninfo, and the next start rewrites it (prepare*).
	var clear []string
	if syncNames {
		clear = append(clear, "ALTER SYSTEM SET synchronous_standby_names = ''")
	}
	if conninfo {
		clear = append(clear, "ALTER SYSTEM RESET primary_conninfo")
	}
	if len(clear) > 0 {
		clear = append(clear, "SELECT pg_reload_conf()")
	}
	if err := execAll(ctx, c, "promote: clear inherited replication settings", clear...); err != nil {
		return 0, err
	}
	if !inRec {
		return 0, nil
	}
	start := time.Now()
	err = promoteAndWait(ctx, c)
	took := time.Since(start)
	if err != nil {
		m.restoreStreaming(c)
		return took, fmt.Errorf("postgres: promote: pg_promote: %w", err)
	}
	m.log.Info("postgresql promoted", "pg_promote", took.Round(time.Millisecond))
	return took, nil
}

// promotePoll is how often promoteAndWait asks whether recovery ended.
// pg_promote(true) asks every 100 ms (PostgreSQL 15's WAITS_PER_SECOND):
// the promotion itself takes a few milliseconds, so that wait was most of
// pg_promote's 0.1 s in every take-over (the failover timeline).
const promotePoll = 5 * time.Millisecond

// promoteAndWait asks for the promotion without PostgreSQL's own wait and
// polls until the server is out of recovery, which is what pg_promote's
// wait checks too (RecoveryInProgress), at 5 ms instead of 100 ms.
func promoteAndWait(ctx context.Context, c *pgx.Conn) error {
	var ok bool
	if err := c.QueryRow(ctx, "SELECT pg_promote(false)").Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return errors.New("the promotion could not be signalled")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var inRec bool
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRec); err != nil {
			return err
		}
		if !inRec {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("not promoted within 60 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(promotePoll):
		}
	}
}

// restoreStreaming puts the standby's connection back after a failed
// promotion, so that it does not sit unconnected (Start on a running
// standby is a no-op).
func (m *Manager) restoreStreaming(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var inRec bool
	if c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRec) != nil || !inRec {
		return
	}
	err := execAll(ctx, c, "promote: restore streaming",
		"ALTER SYSTEM SET primary_conninfo = "+sqlLiteral(m.replConninfo(m.s.NodeName, "")),
		"ALTER SYSTEM SET primary_slot_name = "+sqlLiteral(slotName(m.s.NodeName)), "SELECT pg_reload_conf()")
	if err != nil {
		m.log.Warn("could not restore streaming after a failed promotion", "err", err)
	}
}

// SetSync switches synchronous replication to the peer on or off and
// returns once this session sees the new value. Turning it off releases
// commits that wait for the standby (the reload wakes them; tested).
func (m *Manager) SetSync(ctx context.Context, on bool) error {
	val := ""
	if on {
		if err := checkName("peer name", m.s.PeerName); err != nil {
			return err
		}
		val = fmt.Sprintf(`FIRST 1 ("%s")`, m.s.PeerName)
	}
	c, err := m.local(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("postgres: set sync: %w", err)
	}
	defer m.release(c)
	if err := execAll(ctx, c, "set sync",
		"ALTER SYSTEM SET synchronous_standby_names = "+sqlLiteral(val), "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		var cur string
		if err := c.QueryRow(ctx, "SELECT current_setting('synchronous_standby_names')").Scan(&cur); err != nil {
			return fmt.Errorf("postgres: set sync: read back: %w", err)
		}
		if cur == val {
			m.log.Info("synchronous replication", "on", on, "synchronous_standby_names", val)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres: set sync: still %q after reload", cur)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: set sync: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// EnsureSlot creates the physical slot name on this primary unless it
// exists. A slot invalidated by max_slot_wal_keep_size (wal_status lost) is
// useless for streaming and for a new base backup: it is recreated.
func (m *Manager) EnsureSlot(ctx context.Context, name string) error {
	if !slotRE.MatchString(name) {
		return fmt.Errorf("postgres: ensure slot: invalid slot name %q", name)
	}
	c, err := m.local(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("postgres: ensure slot: %w", err)
	}
	defer m.release(c)
	var status *string
	var active bool
	err = c.QueryRow(ctx, "SELECT wal_status, active FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&status, &active)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("postgres: ensure slot %s: %w", name, err)
	case status != nil && *status == "lost" && !active:
		m.log.Warn("replication slot lost its WAL: recreating it", "slot", name)
		if _, err := c.Exec(ctx, "SELECT pg_drop_replication_slot($1)", name); err != nil {
			return fmt.Errorf("postgres: ensure slot %s: drop: %w", name, err)
		}
	default:
		return nil
	}
	// immediately_reserve: WAL is kept from now on, not from first use.
	_, err = c.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true)", name)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42710" { // duplicate_object: created meanwhile
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: ensure slot %s: create: %w", name, err)
	}
	m.log.Info("replication slot created", "slot", name)
	return nil
}

const termsDDL = `CREATE TABLE IF NOT EXISTS twonode_terms(term bigint PRIMARY KEY, node text, kind text, fork_rev bigint, at timestamptz DEFAULT now())`

// RecordTerm records a term in the database (it replicates: history for
// operators); a term already recorded is left as it is.
func (m *Manager) RecordTerm(ctx context.Context, term uint64, kind, node string, forkRev int64) error {
	if term > math.MaxInt64 {
		return fmt.Errorf("postgres: record term: term %d out of range", term)
	}
	c, err := m.local(ctx, kineDB)
	if err != nil {
		return fmt.Errorf("postgres: record term: %w", err)
	}
	defer m.release(c)
	tx, err := c.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: record term: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Committed locally, without waiting for a standby: a leader begins
	// its "alone" term before it switches synchronous replication off (so
	// that no write is acknowledged asynchronously in the old term), and
	// its follower is gone then: a synchronous commit would wait for ever.
	if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit TO local`); err != nil {
		return fmt.Errorf("postgres: record term: %w", err)
	}
	if _, err := tx.Exec(ctx, termsDDL); err != nil {
		return fmt.Errorf("postgres: record term: create table: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO twonode_terms(term, node, kind, fork_rev) VALUES ($1, $2, $3, $4) ON CONFLICT (term) DO NOTHING`,
		int64(term), node, kind, forkRev)
	if err != nil {
		return fmt.Errorf("postgres: record term %d: %w", term, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: record term %d: %w", term, err)
	}
	return nil
}

// MaxTerm is the newest term recorded in this database (on a standby,
// replicated from the leader): 0 before any was recorded. A follower whose
// agent missed the leader's last term (restarted, then cut off) still has
// it in its data, and its promotion begins the term after that one.
func (m *Manager) MaxTerm(ctx context.Context) (uint64, error) {
	c, err := m.local(ctx, kineDB)
	if err != nil {
		return 0, fmt.Errorf("postgres: max term: %w", err)
	}
	defer m.release(c)
	// The table exists only once a term was recorded.
	var exists bool
	if err := c.QueryRow(ctx, `SELECT to_regclass('twonode_terms') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var t *int64
	if err := c.QueryRow(ctx, `SELECT max(term) FROM twonode_terms`).Scan(&t); err != nil {
		return 0, fmt.Errorf("postgres: max term: %w", err)
	}
	if t == nil || *t < 0 {
		return 0, nil
	}
	return uint64(*t), nil
}

// MaxRevision is Kine's current revision, max(kine.id); 0 before Kine has
// created its table. It works on a standby too.
func (m *Manager) MaxRevision(ctx context.Context) (int64, error) {
	c, err := m.local(ctx, kineDB)
	if err != nil {
		return 0, fmt.Errorf("postgres: max revision: %w", err)
	}
	defer m.release(c)
	ok, err := kineTableExists(ctx, c)
	if err != nil || !ok {
		return 0, err
	}
	var rev int64
	if err := c.QueryRow(ctx, "SELECT COALESCE(max(id), 0) FROM kine").Scan(&rev); err != nil {
		return 0, fmt.Errorf("postgres: max revision: %w", err)
	}
	return rev, nil
}

// Reload makes a running server read its configuration files again, its
// TLS certificate and key among them (after a renewal); a no-op when the
// server is not running, which reads them when it starts.
func (m *Manager) Reload(ctx context.Context) error {
	if !m.Running(ctx) {
		return nil
	}
	c, err := m.local(ctx, "postgres")
	if err != nil {
		return err
	}
	defer m.release(c)
	return execAll(ctx, c, "reload", "SELECT pg_reload_conf()")
}
