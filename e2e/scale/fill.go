package scale

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	cfg, err := pgx.ParseConfig("dbname=kine user=postgres sslmode=disable")
	if err != nil {
		return 0, 0, err
	}
	cfg.Host, cfg.Port = filepath.Join(c.Nodes[node].Dir, "run", "pg"), 5432
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("scale: connecting to %s's PostgreSQL: %w", node, err)
	}
	defer conn.Close(context.Background())
	for {
		if mb, rows, err = dataSize(ctx, conn); err != nil || mb >= float64(sizeMB) {
			return mb, rows, err
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

// kineCaughtUp writes a key through each node's Kine and waits until a
// watch on that Kine delivers it: Kine's poller reads every row the fill
// added (in id order) before it, so this is how long Kine took to read
// them.
func kineCaughtUp(ctx context.Context, c *cluster.Cluster, ts []harness.Target, key string) (time.Duration, error) {
	start := time.Now()
	for _, t := range ts {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		wch := t.Client.Watch(wctx, key)
		if _, err := t.Client.Put(wctx, key, t.Node); err != nil {
			cancel()
			return 0, fmt.Errorf("scale: a write through %s's Kine after the fill: %w; its log ends:\n%s", t.Node, err, kineLog(c, t.Node))
		}
		seen := false
		for resp := range wch {
			for _, ev := range resp.Events {
				seen = seen || string(ev.Kv.Value) == t.Node
			}
			if seen {
				break
			}
			if err := resp.Err(); err != nil {
				break
			}
		}
		cancel()
		if !seen {
			return 0, fmt.Errorf("scale: %s's Kine did not deliver the write after the fill (%v); its log ends:\n%s", t.Node, wctx.Err(), kineLog(c, t.Node))
		}
	}
	return time.Since(start), nil
}

// kineLog is the end of a node's Kine log, for an error.
func kineLog(c *cluster.Cluster, node string) string {
	b, _ := os.ReadFile(filepath.Join(c.Nodes[node].Dir, "run", "kine.log"))
	return string(b[max(0, len(b)-3000):])
}
