package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Rows written on a timer rather than by anybody's decision: coordination
// leases (kubelet heartbeats, leader elections, the API server's identity
// lease, renewed every 2-10 s), the API servers' master and peer-server
// leases (measured: a flapping-link split compared a peer-server lease
// renewal against the other side's last create) and what the
// endpoint reconciler derives from them (the endpoints of the "kubernetes"
// service, rewritten when a master lease expires: in a split, 5-25 s after
// the link broke, on both sides), events, and the rows Kine and the fence
// write for their own bookkeeping.
// A split is decided by the later last write (fsm.Wins), and in a split
// both API servers renew their leases on their own side: counted, the
// renewal decided the split whenever it fell after the last real write
// (measured: the clock-skew scenario chose the side that wrote first about
// one run in ten, its API server's identity lease renewed 0.3 s after the
// other side's last create).
var (
	timerKeyPrefixes = []string{"/registry/leases/%", "/registry/masterleases/%", "/registry/peerserverleases/%",
		"/registry/events/%", "gap-%"}
	bookkeepingKeys = []string{compactRevKey, fenceName,
		"/registry/services/endpoints/default/kubernetes", "/registry/endpointslices/default/kubernetes"}
)

// LastWrite is the commit time and key of the newest Kine row that is not
// written on a timer (see timerKeyPrefixes): what a split-brain decision
// compares. Zero if there is none or its commit time is no longer known (a
// frozen transaction id). It reads the primary key backwards, so it costs the
// timer rows written since the last real write; the agent asks only while
// a split is being decided.
func (m *Manager) LastWrite(ctx context.Context) (time.Time, string, error) {
	c, err := m.local(ctx, kineDB)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("postgres: last write: %w", err)
	}
	defer m.release(c)
	return lastWrite(ctx, c)
}

// PeerLastWrite is LastWrite read from the peer's database, as Kine reads
// it: the evidence a node checks the peer's own claim against before it
// gives way in a split (the times are the peer's clock).
func (m *Manager) PeerLastWrite(ctx context.Context) (time.Time, string, error) {
	c, err := remote(ctx, m.s.PeerAddress, m.s.Port, m.s.KinePassword, m.s.ListenAddress, m.s.TLS.CAFile())
	if err != nil {
		return time.Time{}, "", fmt.Errorf("postgres: the peer's last write: %w", err)
	}
	defer closeQuietly(c)
	return lastWrite(ctx, c)
}

func lastWrite(ctx context.Context, c *pgx.Conn) (time.Time, string, error) {
	ok, err := kineTableExists(ctx, c)
	if err != nil || !ok {
		return time.Time{}, "", err
	}
	var t *time.Time
	var key string
	err = c.QueryRow(ctx, `SELECT pg_xact_commit_timestamp(xmin), name FROM kine
		WHERE name <> ALL($1) AND NOT name LIKE ANY($2) ORDER BY id DESC LIMIT 1`,
		bookkeepingKeys, timerKeyPrefixes).Scan(&t, &key)
	if err != nil && !isNoRows(err) {
		return time.Time{}, "", fmt.Errorf("postgres: last write: %w", err)
	}
	if t == nil {
		return time.Time{}, key, nil
	}
	return *t, key, nil
}
