package postgres

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
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
	defer m.release(lc)
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

// archiveBatch is how many local rows divergentIDs compares at a time.
const archiveBatch = 2000

// candidates are local rows that may be archived: Kine's rows without the
// fence, compact and gap bookkeeping, id > $1 and id < $2, newest first.
const candidates = `SELECT id, ` + rowPrint + ` FROM kine WHERE id > $1 AND id < $2
	AND COALESCE(name, '') NOT IN ($3, $4) AND left(COALESCE(name, ''), 4) <> 'gap-' ORDER BY id DESC`

// divergentIDs lists the local rows (id > lower) whose print the winner
// lacks, oldest first. It compares from the newest row down (divergentWalk),
// so that a crashed leader with a gigabyte written in its term reads the
// few thousand rows that can differ, not the whole term.
func (m *Manager) divergentIDs(ctx context.Context, tx pgx.Tx, lower int64) ([]int64, error) {
	local := func(below int64, n int) ([]printed, error) {
		rows, err := tx.Query(ctx, candidates+` LIMIT `+strconv.Itoa(n), lower, below, fenceName, compactRevKey)
		if err != nil {
			return nil, fmt.Errorf("postgres: archive: local rows: %w", err)
		}
		var out []printed
		var r printed
		if _, err := pgx.ForEachRow(rows, []any{&r.id, &r.print}, func() error {
			out = append(out, r)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("postgres: archive: local rows: %w", err)
		}
		return out, nil
	}
	// The winner only narrows the archive down. When its database cannot
	// be reached (its port blocked, while the agents still talk), every
	// candidate is kept: a loser that waited for the winner's database
	// before it stopped being a primary stopped writes on both nodes.
	cctx, cancel := context.WithTimeout(ctx, winnerConnectTimeout)
	rc, err := remote(cctx, m.s.PeerAddress, m.s.Port, m.s.KinePassword, m.s.ListenAddress, m.s.TLS.CAFile())
	cancel()
	if err != nil {
		ids, lerr := divergentWalk(local, nil)
		m.log.Warn("archive: the winner's database is unreachable: keeping every row since the fork, not only those it lacks",
			"rows", len(ids), "err", err)
		return ids, lerr
	}
	defer closeQuietly(rc)
	ok, err := kineTableExists(ctx, rc)
	if err != nil {
		return nil, err
	}
	if !ok {
		return divergentWalk(local, nil) // the winner has no row at all
	}
	winner := func(ids []int64) (map[int64]string, error) {
		rows, err := rc.Query(ctx, `SELECT id, `+rowPrint+` FROM kine WHERE id = ANY($1)`, ids)
		if err != nil {
			return nil, fmt.Errorf("postgres: archive: the winner's rows: %w", err)
		}
		got := map[int64]string{}
		var r printed
		if _, err := pgx.ForEachRow(rows, []any{&r.id, &r.print}, func() error {
			got[r.id] = r.print
			return nil
		}); err != nil {
			return nil, fmt.Errorf("postgres: archive: the winner's rows: %w", err)
		}
		return got, nil
	}
	return divergentWalk(local, winner)
}

// printed is a row's id and its print (rowPrint).
type printed struct {
	id    int64
	print string
}

// divergentWalk asks local for rows below an id, newest first, a batch at
// a time, and keeps those the winner lacks (a nil winner lacks every row);
// it returns their ids oldest first.
//
// It stops archiveLookback ids below the newest row the winner has
// identically. That row committed before the winner's promotion; a row
// the winner lacks committed after it. Ids are handed out before commit,
// so a row lacking on the winner lies below a common one only if it was
// in flight while the other was handed out and committed, and never by
// archiveLookback or more (the margin the fork revision's search has
// always had). Below that, every row is common: there is nothing to read.
func divergentWalk(local func(below int64, n int) ([]printed, error), winner func([]int64) (map[int64]string, error)) ([]int64, error) {
	var out []int64
	below, stop := int64(math.MaxInt64), int64(math.MinInt64)
	for below > stop {
		batch, err := local(below, archiveBatch)
		if err != nil || len(batch) == 0 {
			return sortedIDs(out), err
		}
		ids := make([]int64, len(batch))
		for i, r := range batch {
			ids[i] = r.id
		}
		var has map[int64]string
		if winner != nil {
			if has, err = winner(ids); err != nil {
				return nil, err
			}
		}
		for _, r := range batch {
			if p, ok := has[r.id]; ok && p == r.print {
				stop = max(stop, r.id-archiveLookback)
			} else if r.id > stop {
				out = append(out, r.id)
			}
		}
		below = batch[len(batch)-1].id
	}
	return sortedIDs(out), nil
}

func sortedIDs(ids []int64) []int64 {
	slices.Sort(ids)
	return ids
}
