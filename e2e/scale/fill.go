package scale

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// fillBatch is the most rows a statement inserts: about 16 MB of values,
// one commit (and one wait for the synchronous standby) each.
const fillBatch = 20_000

// batchFor is how many rows take the table from mb to sizeMB, at the
// bytes a row takes so far (rows of them), within 1,000 and fillBatch.
func batchFor(mb float64, rows int64, sizeMB int) int64 {
	perRow := 1300.0 // value, tuple header, six indexes: about this, before any is measured
	if rows >= 1000 {
		perRow = mb * (1 << 20) / float64(rows)
	}
	n := int64((float64(sizeMB) - mb) * (1 << 20) / perRow)
	return min(max(n, 1000), fillBatch)
}

// filler inserts Kine-shaped rows on the leader's PostgreSQL, as its
// superuser over the unix socket (pg_hba: trust), and keeps count of the
// names it used so that every fill adds new keys.
type filler struct {
	next int64 // the next name's number
}

// dataSize is the kine table's size (heap, indexes, TOAST) and its rows.
func dataSize(ctx context.Context, c *pgx.Conn) (mb float64, rows int64, err error) {
	var bytes int64
	err = c.QueryRow(ctx, "SELECT pg_total_relation_size('kine'), (SELECT count(*) FROM kine)").Scan(&bytes, &rows)
	return float64(bytes) / (1 << 20), rows, err
}

// to fills the datastore on node until the kine table holds at least
// sizeMB, and returns its size and rows then.
func (f *filler) to(ctx context.Context, c *cluster.Cluster, node string, sizeMB int) (mb float64, rows int64, err error) {
	conn, err := c.Superuser(ctx, node, "kine")
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(context.Background())
	for {
		if mb, rows, err = dataSize(ctx, conn); err != nil {
			return 0, 0, err
		}
		if mb >= float64(sizeMB) {
			return mb, rows, settle(ctx, c, conn, node)
		}
		n := batchFor(mb, rows, sizeMB)
		// A create as Kine writes one: created=1, create_revision NULL
		// and prev_revision 0, no lease.
		// The value varies by row (md5 of its number, repeated).
		_, err := conn.Exec(ctx, `INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value)
			SELECT '/registry/scale/' || lpad(g::text, 10, '0'), 1, 0, NULL, 0, 0, convert_to(repeat(md5(g::text), 24), 'UTF8'), NULL
			FROM generate_series($1::bigint, $2::bigint) g`, f.next, f.next+n-1)
		if err != nil {
			return 0, 0, fmt.Errorf("scale: filling %s's datastore: %w", node, err)
		}
		f.next += n
	}
}

// settle makes a datastore filled in seconds look like one grown over
// hours: vacuumed (the first reads of fresh rows set hint bits, which with
// wal_log_hints write a full page image each: measured, 600 MB of WAL on a
// leader just promoted over 1 GB of fresh rows), and checkpointed on both
// nodes (the follower's restartpoint included). Without it, a crash right
// after a gigabyte of fill fell off the rewind path twice: (1) the crashed
// leader's archive step starts it as a primary, whose checkpoints keep
// only wal_keep_size (256 MB) of the WAL pg_rewind reads back to the last
// checkpoint before the divergence ("could not find previous WAL record";
// the agent fell back to a base backup: 22.6 s to a synchronous pair, 16.5
// s of it the archive step, against 4.2 s for a base backup alone); (2)
// the new leader's slot, created at its promotion, reserves WAL from its
// last restartpoint, over a gigabyte back: its first checkpoint
// invalidated it and dropped the WAL the rewound node needed, which then
// never streamed ("requested WAL segment ... has already been removed")
// while the agent's start of it as a standby waited.
func settle(ctx context.Context, c *cluster.Cluster, leader *pgx.Conn, node string) error {
	if _, err := leader.Exec(ctx, "VACUUM (ANALYZE) kine"); err != nil {
		return fmt.Errorf("scale: vacuum after the fill: %w", err)
	}
	if _, err := leader.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("scale: checkpoint after the fill: %w", err)
	}
	var lsn string
	if err := leader.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return err
	}
	f, err := c.Superuser(ctx, harness.Peer(node), "postgres")
	if err != nil {
		return err
	}
	defer f.Close(context.Background())
	for deadline := time.Now().Add(time.Minute); ; {
		var replayed bool
		if err := f.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&replayed); err != nil {
			return err
		}
		if replayed {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("scale: the follower did not replay the checkpoint at %s within a minute", lsn)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := f.Exec(ctx, "CHECKPOINT"); err != nil { // a restartpoint on a standby
		return fmt.Errorf("scale: the follower's restartpoint: %w", err)
	}
	return nil
}

// restartKines kills each node's Kine and waits for its agent to start it
// again (kine.Process.Ensure) and for a write through it to come back by
// watch. Kine's poller reads every row past its position as a new event,
// and its poll query reads all of them for each batch of 500: a fill of
// rows it did not write costs it time quadratic in their number (measured:
// 18 s for 78,000 rows; a gigabyte would take half an hour). Restarted, it
// polls from the current revision, as a Kine does whose rows came over time.
func restartKines(ctx context.Context, c *cluster.Cluster, ts []harness.Target, key string) (time.Duration, error) {
	start := time.Now()
	for _, t := range ts {
		pidfile := filepath.Join(c.Nodes[t.Node].Dir, "run", "kine.pid")
		old, err := readPid(pidfile)
		if err != nil {
			return 0, err
		}
		// SIGKILL: a Kine told to stop (SIGTERM) while its poller still
		// read the fill went on logging "database is closed" for two
		// minutes without exiting.
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			return 0, fmt.Errorf("scale: stopping %s's Kine (pid %d): %w", t.Node, old, err)
		}
		if err := servesAgain(ctx, t, pidfile, old, key); err != nil {
			return 0, fmt.Errorf("%w; its log ends:\n%s", err, kineLog(c, t.Node))
		}
	}
	return time.Since(start), nil
}

func readPid(pidfile string) (int, error) {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, fmt.Errorf("scale: Kine's pid: %w", err)
	}
	var pid int
	var target string
	if _, err := fmt.Sscan(string(b), &pid, &target); err != nil {
		return 0, fmt.Errorf("scale: Kine's pid file %s: %q: %w", pidfile, b, err)
	}
	return pid, nil
}

// servesAgain waits (up to 2 minutes) until a Kine other than old serves
// the node: a write through it is delivered by a watch opened before it.
func servesAgain(ctx context.Context, t harness.Target, pidfile string, old int, key string) error {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		if pid, err := readPid(pidfile); err == nil && pid != old {
			if err := writeAndWatch(wctx, t, key); err == nil {
				return nil
			}
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("scale: %s's Kine did not serve again after a restart: %w", t.Node, wctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func writeAndWatch(ctx context.Context, t harness.Target, key string) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	wch := t.Client.Watch(wctx, key)
	if _, err := t.Client.Put(wctx, key, t.Node); err != nil {
		return err
	}
	for resp := range wch {
		for _, ev := range resp.Events {
			if string(ev.Kv.Value) == t.Node {
				return nil
			}
		}
		if err := resp.Err(); err != nil {
			return err
		}
	}
	return wctx.Err()
}

// kineLog is the end of a node's Kine log, for an error.
func kineLog(c *cluster.Cluster, node string) string {
	b, _ := os.ReadFile(filepath.Join(c.Nodes[node].Dir, "run", "kine.log"))
	return string(b[max(0, len(b)-3000):])
}
