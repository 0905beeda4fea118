package postgres

import (
	"context"
	"fmt"
)

// RevisionFence makes Kine revisions jump past anything an old leader may
// have handed out (run after a promotion, Kine stopped). In one
// transaction: lock kine; f = max(max(id), the sequence) + margin; move the
// sequence to f; insert ONE deleted filler row at f (without it Kine's
// poller would fill the hole id by id); set compact_rev_key's
// prev_revision to f, so that a client resuming from an older revision is
// told "compacted" and relists instead of waiting for revisions that never
// come. Returns f; 0 when Kine has not created its table yet (it will
// start fresh). margin <= 0 means the contract's default, 1,000,000.
//
// floor > 0 fences past revisions handed out elsewhere: a split's loser
// served clients revisions up to floor, which the winner must pass before
// those clients read from it. Then f = max(max(id), the sequence, floor) +
// margin, and when this database is already past floor nothing changes
// (returns 0).
func (m *Manager) RevisionFence(ctx context.Context, margin, floor int64) (int64, error) {
	if margin <= 0 {
		margin = defaultMargin
	}
	c, err := m.local(ctx, kineDB)
	if err != nil {
		return 0, fmt.Errorf("postgres: revision fence: %w", err)
	}
	defer m.release(c)
	tx, err := c.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: revision fence: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	ok, err := kineTableExists(ctx, tx)
	if err != nil || !ok {
		return 0, err
	}
	step := func(what, sql string, args ...any) error {
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("postgres: revision fence: %s: %w", what, err)
		}
		return nil
	}
	if err := step("lock", "LOCK TABLE kine IN EXCLUSIVE MODE"); err != nil {
		return 0, err
	}
	var seq string
	var maxID, last int64
	err = tx.QueryRow(ctx, "SELECT pg_get_serial_sequence('kine', 'id')").Scan(&seq)
	if err == nil {
		err = tx.QueryRow(ctx, "SELECT COALESCE(max(id), 0) FROM kine").Scan(&maxID)
	}
	if err == nil {
		err = tx.QueryRow(ctx, "SELECT last_value FROM "+seq).Scan(&last)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: revision fence: read revisions: %w", err)
	}
	if floor > 0 && max(maxID, last) > floor {
		return 0, nil // already past: no restart, no relist for anyone
	}
	f := max(maxID, last, floor) + margin
	if err := step("setval", "SELECT setval($1::regclass, $2)", seq, f); err != nil {
		return 0, err
	}
	// Shaped like Kine's own gap filler: deleted, no values.
	// prev_revision chains to the previous fence row, as Kine chains the
	// rows of one key: its unique index on (name, prev_revision) forbids two
	// fences with the same one.
	if err := step("filler row", `INSERT INTO kine(id, name, created, deleted, create_revision, prev_revision, lease, value, old_value)
		VALUES ($1, $2, 0, 1, 0, COALESCE((SELECT max(id) FROM kine WHERE name = $2), 0), 0, NULL, NULL)`, f, fenceName); err != nil {
		return 0, err
	}
	tag, err := tx.Exec(ctx, "UPDATE kine SET prev_revision = $1 WHERE name = $2", f, compactRevKey)
	if err != nil {
		return 0, fmt.Errorf("postgres: revision fence: compact revision: %w", err)
	}
	if tag.RowsAffected() == 0 {
		// Kine creates this row at its first start; create it as Kine would
		// (it takes the next id, f+1).
		if err := step("compact revision row", `INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value)
			VALUES ($1, 1, 0, 0, $2, 0, '', '')`, compactRevKey, f); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres: revision fence: commit: %w", err)
	}
	m.log.Info("kine revisions fenced", "from", max(maxID, last), "floor", floor, "fence", f)
	return f, nil
}
