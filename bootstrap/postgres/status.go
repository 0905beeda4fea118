package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Status is what the agent observes of its PostgreSQL each tick.
type Status struct {
	Up, InRecovery bool
	// LastCommit is the newest commit this server knows (written or
	// replayed; track_commit_timestamp=on); zero if none is known.
	LastCommit                        time.Time
	CurrentLSN, ReceiveLSN, ReplayLSN uint64 // whichever apply to the role
	// FlushLSN (primary) is how far this server's WAL is on its disk, and
	// PeerFlushLSN how far the follower reported it is on its own (0: no
	// follower). A walsender sends only WAL flushed here, so the age of the
	// oldest WAL between the two measures the follower's side alone, even
	// while this disk is slow (the agent's flushTrail).
	FlushLSN, PeerFlushLSN uint64
	Timeline               int
	SyncStandbyNames       string
	Streaming              bool  // (primary) the peer's walsender is streaming
	PeerFlushLagBytes      int64 // (primary) current - the peer's flush LSN; -1 if no row
	// PeerFlushLag (primary) is pg_stat_replication.flush_lag: from this
	// server's flush of recent WAL to the standby's report that it flushed
	// it too, both read on this server's clock. It includes the link; zero
	// when unknown or idle (PostgreSQL clears it once the standby caught
	// up and nothing new was written).
	PeerFlushLag      time.Duration
	ReceiverStreaming bool // (standby) the walreceiver is streaming
	// OldestWAL (a primary whose peer does not stream) is where the oldest
	// WAL segment in pg_wal begins: a standby that must resume before it
	// can never stream from here. 0 when streaming or unknown.
	OldestWAL uint64
	// PeerMark changes whenever replication brings a message from the
	// peer's PostgreSQL (primary: the standby's reply time and flush
	// position; standby: the receipt time of the last WAL or keepalive and
	// the received position); empty if none. It is compared only with
	// itself from one tick to the next, on the agent's monotonic clock:
	// pg_stat_replication.reply_time is the standby's clock, so measuring
	// its age on the primary's clock was always "too old" once the clocks
	// were more than a second apart (the leader then never heard its
	// follower through replication).
	PeerMark string
}

// errLate is a status that ran out of time: a busy server, not a dead one.
var errLate = fmt.Errorf("postgres: status: no answer in time: %w", context.DeadlineExceeded)

// late: ctx's deadline has passed. Its Err can still be nil then (its
// timer has not fired: a starved process wakes past it), and what failed
// is a dial or read cut by the same deadline.
func late(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(dl)
}

// Status reports the local server. A server that does not accept
// connections is Up=false with a nil error: down is a state, not a fault.
// One that did not answer before ctx's deadline, whatever failed, is
// errLate.
func (m *Manager) Status(ctx context.Context) (Status, error) {
	st := Status{PeerFlushLagBytes: -1}
	c, err := m.local(ctx, "postgres")
	if err != nil {
		if late(ctx) {
			// No answer in time is not "down": a busy server is slow.
			return st, errLate
		}
		return st, nil
	}
	defer m.release(c)
	err = c.QueryRow(ctx, `SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names')`).
		Scan(&st.InRecovery, &st.SyncStandbyNames)
	if err != nil {
		if late(ctx) {
			return st, errLate
		}
		return st, fmt.Errorf("postgres: status: %w", err)
	}
	st.Up = true
	st.LastCommit = m.lastCommit(ctx, c)
	// The role can change between the queries (a promotion): the details
	// are then missing for one tick, which must not read as "down".
	if st.InRecovery {
		err = m.standbyStatus(ctx, c, &st)
	} else {
		err = m.primaryStatus(ctx, c, &st)
	}
	switch {
	case late(ctx):
		// Out of time part way: a query cut by the deadline closes the
		// connection, and the next one fails with "conn closed", which
		// says nothing of the server (measured: a follower starved of CPU
		// read that as "down", went back to starting and took over from a
		// healthy leader). The answer is "slow", whatever the error.
		return st, errLate
	case err != nil:
		m.log.Warn("status: replication details unavailable", "err", err)
	}
	return st, nil
}

// lastCommit is the newest commit time known here, zero if none. Not
// knowing it is no reason to report the server down, so errors only log.
func (m *Manager) lastCommit(ctx context.Context, c querier) time.Time {
	var t *time.Time
	err := c.QueryRow(ctx, `SELECT COALESCE((pg_last_committed_xact()).timestamp, pg_last_xact_replay_timestamp())`).Scan(&t)
	if err == nil && t == nil {
		// After a restart the server forgets its last commit until the next
		// one: look it up among the most recent transaction ids.
		err = c.QueryRow(ctx, `SELECT max(pg_xact_commit_timestamp(((x % 4294967296)::text)::xid))
			FROM generate_series(greatest(txid_snapshot_xmax(txid_current_snapshot()) - 1000, 3),
				txid_snapshot_xmax(txid_current_snapshot()) - 1) AS x
			WHERE x % 4294967296 >= 3`).Scan(&t)
	}
	if err != nil {
		m.log.Debug("status: last commit time unknown", "err", err)
		return time.Time{}
	}
	if t == nil {
		return time.Time{}
	}
	return *t
}

func (m *Manager) primaryStatus(ctx context.Context, c querier, st *Status) error {
	var cur, flushed, tli string
	if err := c.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, pg_current_wal_flush_lsn()::text, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)`).
		Scan(&cur, &flushed, &tli); err != nil {
		return fmt.Errorf("postgres: status: wal position: %w", err)
	}
	st.CurrentLSN, _ = parseLSN(cur)
	st.FlushLSN, _ = parseLSN(flushed)
	t, _ := strconv.ParseInt(tli, 16, 64)
	st.Timeline = int(t)
	// Several rows may carry the peer's name (a base backup's stream does
	// not: it names itself): prefer the one that streams.
	var state, mark, peerFlushed *string
	var lag *int64
	var flushLag *float64
	err := c.QueryRow(ctx, `SELECT state, (pg_current_wal_lsn() - flush_lsn)::bigint,
		reply_time::text || ' ' || COALESCE(flush_lsn::text, ''), EXTRACT(epoch FROM flush_lag)::float8, flush_lsn::text FROM pg_stat_replication
		WHERE application_name = $1 ORDER BY state = 'streaming' DESC, flush_lsn DESC NULLS LAST LIMIT 1`, m.s.PeerName).
		Scan(&state, &lag, &mark, &flushLag, &peerFlushed)
	if err != nil && !isNoRows(err) {
		return fmt.Errorf("postgres: status: pg_stat_replication: %w", err)
	}
	st.Streaming = err == nil && state != nil && *state == "streaming"
	if !st.Streaming {
		st.OldestWAL = oldestWAL(ctx, c)
	}
	if err != nil {
		return nil // no row: the peer is not connected
	}
	if mark != nil {
		st.PeerMark = *mark
	}
	if lag != nil {
		st.PeerFlushLagBytes = *lag
	}
	if flushLag != nil {
		st.PeerFlushLag = time.Duration(*flushLag * float64(time.Second))
	}
	if peerFlushed != nil {
		st.PeerFlushLSN, _ = parseLSN(*peerFlushed)
	}
	return nil
}

func (m *Manager) standbyStatus(ctx context.Context, c querier, st *Status) error {
	var recv, replay, status, mark *string
	var ckptTLI int
	var recvTLI *int
	err := c.QueryRow(ctx, `SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
		(SELECT timeline_id FROM pg_control_checkpoint()),
		(SELECT status FROM pg_stat_wal_receiver), (SELECT received_tli FROM pg_stat_wal_receiver),
		(SELECT last_msg_receipt_time::text || ' ' || COALESCE(latest_end_lsn::text, '') FROM pg_stat_wal_receiver)`).
		Scan(&recv, &replay, &ckptTLI, &status, &recvTLI, &mark)
	if err != nil {
		return fmt.Errorf("postgres: status: standby positions: %w", err)
	}
	if recv != nil {
		st.ReceiveLSN, _ = parseLSN(*recv)
	}
	if replay != nil {
		st.ReplayLSN, _ = parseLSN(*replay)
	}
	st.Timeline = ckptTLI
	if recvTLI != nil && *recvTLI > st.Timeline {
		st.Timeline = *recvTLI
	}
	st.ReceiverStreaming = status != nil && *status == "streaming"
	if st.ReceiverStreaming && mark != nil {
		st.PeerMark = *mark
	}
	return nil
}

// parseLSN reads PostgreSQL's "X/Y" notation.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	return h<<32 | l, nil
}

// oldestWAL is where the oldest WAL segment in pg_wal begins (segment
// names are timeline, then the LSN's high 32 bits, then the segment
// number within them), or 0 when it cannot be read: it is asked only
// while the follower does not stream, and an unknown answer decides
// nothing.
func oldestWAL(ctx context.Context, c querier) uint64 {
	var lsn *int64
	err := c.QueryRow(ctx, `SELECT ('x' || substr(name, 9, 8))::bit(32)::bigint * 4294967296
		+ ('x' || substr(name, 17, 8))::bit(32)::bigint * (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')
		FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$' ORDER BY substr(name, 9) LIMIT 1`).Scan(&lsn)
	if err != nil || lsn == nil || *lsn < 0 {
		return 0
	}
	return uint64(*lsn)
}
