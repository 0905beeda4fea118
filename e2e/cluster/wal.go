package cluster

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/jackc/pgx/v5"
)

// Superuser connects to node's PostgreSQL as its superuser over the unix
// socket (pg_hba: trust).
func (c *Cluster) Superuser(ctx context.Context, node, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("user=postgres sslmode=disable dbname=" + db)
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port = filepath.Join(c.Nodes[node].Dir, "run", "pg"), 5432
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to %s's PostgreSQL: %w", node, err)
	}
	return conn, nil
}

// DropSlotWAL makes the leader leave its slots' WAL behind: one small write
// and a switch to a new segment at a time (16 MB of WAL each, little
// data) until every slot's restart point is past max_slot_wal_keep_size,
// then a checkpoint, which invalidates the slots and removes the segments.
// It returns the slots' wal_status afterwards.
func (c *Cluster) DropSlotWAL(ctx context.Context, leader string) (string, error) {
	conn, err := c.Superuser(ctx, leader, "postgres")
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS e2e_wal(x int)"); err != nil {
		return "", err
	}
	behind := `SELECT COALESCE(min(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)), 0) >
		pg_size_bytes(current_setting('max_slot_wal_keep_size')) + 64 * 1024 * 1024
		FROM pg_replication_slots WHERE restart_lsn IS NOT NULL`
	for i := 0; ; i++ {
		var past bool
		if err := conn.QueryRow(ctx, behind).Scan(&past); err != nil {
			return "", err
		}
		if past {
			break
		}
		if i > 200 { // 3.2 GB of WAL: the slot should have been passed long ago
			return "", fmt.Errorf("cluster: the slot on %s is not past max_slot_wal_keep_size after %d segments", leader, i)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO e2e_wal VALUES (1)"); err != nil {
			return "", err
		}
		if _, err := conn.Exec(ctx, "SELECT pg_switch_wal()"); err != nil {
			return "", err
		}
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return "", err
	}
	var status string
	err = conn.QueryRow(ctx, "SELECT COALESCE(string_agg(slot_name || ' ' || COALESCE(wal_status, 'null'), ', '), 'no slot') FROM pg_replication_slots").Scan(&status)
	return status, err
}
