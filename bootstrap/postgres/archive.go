package postgres

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twonode-edge/twonode/bootstrap/archive"
)

// ArchiveHeader is the first line of a split-brain archive (the format
// is package archive's, which reads it). Archive sets Kind, ForkRev and
// Count; Created defaults to now.
type ArchiveHeader = archive.Header

// archiveLookback reaches below the fork revision: ids are handed out
// before commit, so rows may commit out of id order around the fork.
const archiveLookback = 10000

// winnerConnectTimeout bounds the connection to the winner's database: a
// blocked port drops packets, and TCP would retry for minutes.
const winnerConnectTimeout = 5 * time.Second

// rowPrint identifies a row's content without shipping its value: the
// contract's (id, name, create_revision, prev_revision, deleted, md5(value)),
// hashed in its composite text form (NULLs stay distinct from empty).
const rowPrint = `md5(ROW(id, name, create_revision, prev_revision, deleted, md5(value))::text)`

// Archive writes, to w, the Kine rows this node (the loser of a split
// brain, running as a primary) has and the winner (PeerAddress, as kine)
// does not have identically: local rows with id > forkRev-10000 whose
// print is absent on the winner, without the fence, compact and gap rows.
// Header first (with the count), then one row per line, by id. Returns the
// count.
func (m *Manager) Archive(ctx context.Context, forkRev int64, w io.Writer, header ArchiveHeader) (int, error) {
	lc, err := m.local(ctx, kineDB)
	if err != nil {
		return 0, fmt.Errorf("postgres: archive: %w", err)
	}
	defer closeQuietly(lc)
	// One snapshot for both passes over the local rows.
	tx, err := lc.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, fmt.Errorf("postgres: archive: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var ids []int64
	ok, err := kineTableExists(ctx, tx)
	if err != nil {
		return 0, err
	}
	if ok {
		if ids, err = m.divergentIDs(ctx, tx, max(forkRev-archiveLookback, 0)); err != nil {
			return 0, err
		}
	}
	header.Kind, header.ForkRev, header.Count = archive.HeaderKind, forkRev, len(ids)
	if header.Created.IsZero() {
		header.Created = time.Now().UTC()
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(header); err != nil {
		return 0, fmt.Errorf("postgres: archive: write header: %w", err)
	}
	n := 0
	if len(ids) > 0 {
		rows, err := tx.Query(ctx, `SELECT id, name, created, deleted, create_revision, prev_revision, lease, value, old_value
			FROM kine WHERE id = ANY($1) ORDER BY id`, ids)
		if err != nil {
			return 0, fmt.Errorf("postgres: archive: read rows: %w", err)
		}
		var r archive.Row
		_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Name, &r.Created, &r.Deleted, &r.CreateRevision, &r.PrevRevision,
			&r.Lease, &r.Value, &r.OldValue}, func() error {
			n++
			return enc.Encode(r)
		})
		if err != nil {
			return n, fmt.Errorf("postgres: archive: write rows: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("postgres: archive: %w", err)
	}
	if n != len(ids) {
		return n, fmt.Errorf("postgres: archive: wrote %d rows, the header says %d", n, len(ids))
	}
	m.log.Info("split-brain archive written", "rows", n, "fork_revision", forkRev)
	return n, nil
}

// divergentIDs lists the local candidates whose print the winner lacks.
func (m *Manager) divergentIDs(ctx context.Context, tx pgx.Tx, lower int64) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT id, `+rowPrint+` FROM kine WHERE id > $1
		AND COALESCE(name, '') NOT IN ($2, $3) AND left(COALESCE(name, ''), 4) <> 'gap-' ORDER BY id`,
		lower, fenceName, compactRevKey)
	if err != nil {
		return nil, fmt.Errorf("postgres: archive: local rows: %w", err)
	}
	local := map[int64]string{}
	var ids []int64
	var id int64
	var print string
	if _, err := pgx.ForEachRow(rows, []any{&id, &print}, func() error {
		local[id] = print
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("postgres: archive: local rows: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// The winner only narrows the archive down. When its database cannot
	// be reached (its port blocked, while the agents still talk), every
	// candidate is kept: a loser that waited for the winner's database
	// before it stopped being a primary stopped writes on both nodes.
	cctx, cancel := context.WithTimeout(ctx, winnerConnectTimeout)
	rc, err := remote(cctx, m.s.PeerAddress, m.s.Port, m.s.KinePassword, m.s.ListenAddress, m.s.TLS.CAFile())
	cancel()
	if err != nil {
		m.log.Warn("archive: the winner's database is unreachable: keeping every row since the fork, not only those it lacks",
			"rows", len(ids), "err", err)
		return ids, nil
	}
	defer closeQuietly(rc)
	same := map[int64]bool{}
	if ok, err := kineTableExists(ctx, rc); err != nil {
		return nil, err
	} else if ok {
		rows, err := rc.Query(ctx, `SELECT id, `+rowPrint+` FROM kine WHERE id = ANY($1)`, ids)
		if err != nil {
			return nil, fmt.Errorf("postgres: archive: the winner's rows: %w", err)
		}
		if _, err := pgx.ForEachRow(rows, []any{&id, &print}, func() error {
			same[id] = local[id] == print
			return nil
		}); err != nil {
			return nil, fmt.Errorf("postgres: archive: the winner's rows: %w", err)
		}
	}
	out := ids[:0]
	for _, id := range ids {
		if !same[id] {
			out = append(out, id)
		}
	}
	return out, nil
}
