package postgres

import (
	"context"
	"fmt"
	"time"
)

// ProbeCommit commits one tiny transaction on the local primary and
// returns how long the commit took: what a client's write feels from this
// node's disk (issue 16: a disk that still answers, slowly).
//
// The transaction writes one WAL record, a transactional logical-decoding
// message (nothing decodes it), so its commit must wait for the flush: a
// transaction that only took an id writes no WAL before its commit and
// commits without waiting (measured: 17 ms while every fsync took 3 s);
// synchronous_commit = local keeps the standby out of the figure (the
// follower's side is pg_stat_replication's flush_lag, Status.PeerFlushLag).
// It touches no table, so it adds nothing for Kine, the fence or the
// archive to read; it does move pg_last_committed_xact, which a split
// compares only when the last Kine write cannot be read (and then every
// lease renewal moves it too). The connection is made before the clock
// starts (a slow connect is not a slow disk) and kept for the next probe
// (a probe every 500 ms was a new server process every 500 ms); one that
// failed is dropped, and the next probe connects afresh.
func (m *Manager) ProbeCommit(ctx context.Context) (time.Duration, error) {
	m.probeMu.Lock()
	defer m.probeMu.Unlock()
	if m.probeConn == nil || m.probeConn.IsClosed() {
		c, err := m.dial(ctx, "postgres")
		if err != nil {
			return 0, err
		}
		m.probeConn = c
	}
	// One round trip (a multi-statement simple query): the figure is the
	// server's, not the client's scheduling between statements.
	start := time.Now()
	_, err := m.probeConn.Exec(ctx, `BEGIN; SET LOCAL synchronous_commit = local;
		SELECT pg_logical_emit_message(true, 'twonode', 'commit probe'); COMMIT`)
	took := time.Since(start)
	if err != nil {
		closeQuietly(m.probeConn)
		m.probeConn = nil
		return took, fmt.Errorf("postgres: commit probe: %w", err)
	}
	return took, nil
}
