package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/pki"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// observe gathers one tick's facts. The three probes run concurrently, each
// bounded by the probe timeout, so a hung peer costs one timeout, not three.
func (a *Agent) observe(ctx context.Context, cmd fsm.Command) observed {
	timeout := a.cfg.Timers.ProbeTimeout
	var (
		wg               sync.WaitGroup
		pg               postgres.Status
		pgErr            error
		ps               peer.Status
		sent, recv       time.Time
		peerErr, pingErr error
	)
	wg.Add(4)
	go func() {
		defer wg.Done()
		// Bounded by the witness's own request timeout, and alongside the
		// probes: a slow witness must not stretch the tick that has to
		// stop this node's writes before its lease runs out.
		now := a.d.Now()
		a.renewWitness(ctx, now)
		a.readWitness(ctx, now)
		a.prepareLease(ctx, now)
	}()
	go func() {
		defer wg.Done()
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		pg, pgErr = a.d.DB.Status(c)
	}()
	go func() {
		defer wg.Done()
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		ps, sent, recv, peerErr = a.d.Peer.Status(c)
	}()
	go func() {
		defer wg.Done()
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		pingErr = a.d.PingPeer(c)
	}()
	disk := a.diskFull()
	wg.Wait()
	now, probed := a.d.Now(), time.Now()

	problem := peerProblem(peerErr)
	if problem != "" && peerErr.Error() != a.lastPeerErr {
		a.log.Warn("the peer's answer is not believed: it counts as no answer", "err", peerErr)
	}
	if peerErr != nil {
		a.lastPeerErr = peerErr.Error()
	} else {
		a.lastPeerErr = ""
	}
	a.mu.Lock()
	a.peerProblem = problem
	a.mu.Unlock()
	self, p := a.facts(pg, pgErr, ps, peerErr, pingErr, sent, recv, disk, now)

	// The rare reads below do I/O: outside the lock, so that status
	// answers never wait for them.
	if splitPending(self, p) && !self.KineServing {
		self.LastCommit = a.lastWrite(ctx, timeout, a.pgSnapshot())
		if !p.KineServing { // only then does the peer report its last write
			p.LastCommit = a.checkPeerLastWrite(ctx, timeout, ps, p.LastCommit)
		}
	}
	if self.PGUp && !self.Primary {
		// A standby's replicated term history: the term a promotion begins.
		c, cancel := context.WithTimeout(ctx, timeout)
		t, err := a.d.DB.MaxTerm(c)
		cancel()
		if err != nil {
			a.log.Debug("reading the replicated terms", "err", err)
		}
		self.DBTerm = t
	}
	if p.HighRev > self.FencedPast && self.Primary {
		// Rare (after a lost split): is this node already past the peer's?
		c, cancel := context.WithTimeout(ctx, timeout)
		rev, err := a.d.DB.MaxRevision(c)
		cancel()
		if err != nil {
			a.log.Warn("reading this node's revision", "err", err)
			rev = 0 // then fence: a fence that was not needed costs one relist
		}
		self.KineRev = rev
	}
	a.mu.Lock()
	wf := a.witnessFacts(now)
	a.mu.Unlock()
	return observed{o: fsm.Observation{Now: now, Self: self, Peer: p, Cmd: cmd, Witness: wf}, pg: a.pgSnapshot(), peer: ps, at: probed}
}

// peerProblem is, for status, why an answer from the peer's address was
// not believed: a certificate TLS refused, a wrong signature, impossible
// values. A timeout or a refused connection is not a problem of that
// kind: the peer is just not there.
func peerProblem(err error) string {
	if err != nil && (errors.Is(err, peer.ErrImplausible) || errors.Is(err, peer.ErrForged) || pki.Refused(err)) {
		return err.Error()
	}
	return ""
}

// facts turns one tick's measurements into the core's Self and Peer.
func (a *Agent) facts(pg postgres.Status, pgErr error, ps peer.Status, peerErr, pingErr error,
	sent, recv time.Time, disk bool, now time.Time) (fsm.Self, fsm.Peer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	pg = a.localPG(pg, pgErr)
	a.pgNow = pg
	if peerErr == nil && (a.m.State == fsm.Leader || a.m.State == fsm.Follower) {
		a.measureOffset(ps, sent, recv)
	}
	self := fsm.Self{
		Name:              a.cfg.Node.Name,
		Preferred:         a.preferred(),
		Member:            a.st.Member,
		HasData:           a.d.DB.HasData(),
		Term:              a.st.Term,
		TermRole:          a.st.TermRole,
		ForkRev:           a.st.ForkRev,
		HighRev:           a.st.HighRev,
		FencedPast:        a.st.FencedPast,
		PGUp:              pg.Up,
		PGSlow:            !pg.Up && errors.Is(pgErr, context.DeadlineExceeded),
		Primary:           pg.Up && !pg.InRecovery,
		FollowerStreaming: pg.Up && !pg.InRecovery && pg.Streaming,
		SyncOn:            pg.Up && !pg.InRecovery && pg.SyncStandbyNames != "",
		ReceiverStreaming: pg.Up && pg.InRecovery && pg.ReceiverStreaming,
		PeerHeard:         a.peerHeard(pg, now),
		ReplayLSN:         pg.ReplayLSN,
		LastCommit:        pg.LastCommit,
		PausedUntil:       a.st.PausedUntil,
		RecentSplits:      a.st.recentSplits(now),
		DiskFull:          disk,
		KineServing:       a.kineServing(),
		KineOnPeer:        a.d.Kine.Target() == a.cfg.Peer.Address,
		Intent:            a.st.Intent,
		WasAlone:          a.st.Alone,
		WasAsync:          a.st.Async,
	}
	v := a.slow.judge(time.Now(), a.commitLatency(pg), pg, a.cfg.Timers.SlowCommit, a.cfg.Timers.SlowFor)
	self.CommitSlow, self.FollowerSlow, self.FollowerFast = v.commitSlow, v.followerSlow, v.followerFast
	p := fsm.Peer{Name: a.cfg.Peer.Name, PGUp: pingErr == nil}
	// A peer agent that has not observed anything yet answers, but says
	// nothing of its data: it counts as not heard from for this tick.
	if peerErr == nil && !ps.Unobserved {
		p.AgentUp = true
		p.State = fsm.State(ps.State)
		p.Member = ps.Member
		p.Term = ps.Term
		p.TermRole = fsm.Role(ps.TermRole)
		p.Primary = ps.PGUp && ps.Primary
		p.ForkRev = ps.ForkRev
		p.HighRev, p.FencedPast = ps.HighRev, ps.FencedPast
		p.OldestWAL = ps.OldestWAL
		p.DiskFull, p.KineServing, p.Rejoining = ps.DiskFull, ps.KineServing, ps.Rejoining
		if ps.LastCommit != 0 {
			p.LastCommit = time.Unix(0, ps.LastCommit).Add(-a.splitOffset(ps))
		}
		if ps.PausedFor > 0 {
			if until := now.Add(time.Duration(ps.PausedFor)); until.After(self.PausedUntil) {
				self.PausedUntil = until // a pause on either node pauses both
			}
		}
	}
	return self, p
}

// pgSnapshot is this tick's view of the local PostgreSQL (localPG's).
func (a *Agent) pgSnapshot() postgres.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pgNow
}

// checkPeerLastWrite: before this node gives way in a split on the
// peer's claim of its last write, it reads the same fact from the peer's
// database, as it reads its own. A claim the database contradicts is
// replaced by the database's value (and logged); a database that does
// not answer (its port blocked) leaves the claim, bounded already.
// claimed is the peer's claim on this node's clock.
func (a *Agent) checkPeerLastWrite(ctx context.Context, timeout time.Duration, ps peer.Status, claimed time.Time) time.Time {
	if a.d.PeerLastWrite == nil {
		return claimed
	}
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t, key, err := a.d.PeerLastWrite(c)
	if err != nil {
		a.log.Debug("the peer's last write could not be read from its database: using its word", "err", err)
		return claimed
	}
	var claim int64 = ps.LastCommit
	if t.IsZero() && claim == 0 || !t.IsZero() && absDur(time.Duration(t.UnixNano()-claim)) < time.Millisecond {
		return claimed
	}
	a.log.Warn("the peer's claimed last write differs from its database: believing the database",
		"claimed", time.Unix(0, claim).UTC().Format(time.RFC3339Nano), "database", t.UTC().Format(time.RFC3339Nano), "key", key)
	if t.IsZero() {
		return time.Time{}
	}
	return t.Add(-a.splitOffset(ps))
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// preferred: this node leads when a new pair forms (configured, else the
// first name in order), so formation needs no human and no coin toss.
func (a *Agent) preferred() bool {
	if a.cfg.PreferredLeader != "" {
		return a.cfg.PreferredLeader == a.cfg.Node.Name
	}
	return a.cfg.Node.Name < a.cfg.Peer.Name
}

// measureOffset records the peer's clock minus ours while paired (the
// midpoint of the call estimates when the peer read its clock). Written to
// disk only when it moved, so the state file is not rewritten every tick.
func (a *Agent) measureOffset(ps peer.Status, sent, recv time.Time) {
	mid := sent.Add(recv.Sub(sent) / 2)
	off := time.Unix(0, ps.Now).Sub(mid)
	if d := off - a.st.PairOffset; d > 50*time.Millisecond || d < -50*time.Millisecond {
		a.st.PairOffset = off
		if err := saveState(a.cfg.DataDir, a.st); err != nil {
			a.log.Warn("saving clock offset", "err", err)
		}
	}
}

// splitPending: both nodes say they lead the same term, the one case in
// which fsm.Wins compares last commits.
func splitPending(s fsm.Self, p fsm.Peer) bool {
	return s.PGUp && s.TermRole == fsm.RoleLeader && p.AgentUp && p.TermRole == fsm.RoleLeader && p.Term == s.Term
}

// lastWrite is what a split compares: the newest write that was not a
// timer's (postgres.LastWrite), asked only once this node's Kine has
// stopped, so it no longer moves. Without it the side whose API server
// happened to renew a lease last won, not the side that wrote last.
// Both nodes compare the value each one reports, so a failed query falls
// back to the last commit of any kind rather than to nothing.
func (a *Agent) lastWrite(ctx context.Context, timeout time.Duration, pg postgres.Status) time.Time {
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t, key, err := a.d.DB.LastWrite(c)
	if err != nil {
		a.log.Warn("reading this node's last write: comparing the last commit instead", "err", err)
		return pg.LastCommit
	}
	if !t.Equal(a.loggedWrite) {
		// Says why a split went the way it did (once per value).
		a.loggedWrite = t
		a.log.Info("split pending: this node's last write", "key", key, "at", t.UTC().Format(time.RFC3339Nano))
	}
	return t
}

// splitOffset is the offset used to compare commit times across nodes. Both
// nodes must use the same measurement or they could both think they won:
// they use the one of the node first in name order.
// The peer's measurement is used only while it agrees with this node's
// own within a second: a peer that reports a wild offset cannot move the
// comparison of a split it is party to.
func (a *Agent) splitOffset(ps peer.Status) time.Duration {
	theirs := -time.Duration(ps.PairOffset)
	if a.cfg.Node.Name < a.cfg.Peer.Name || absDur(theirs-a.st.PairOffset) > time.Second {
		return a.st.PairOffset
	}
	return theirs
}

// localPG decides what this tick knows of the local PostgreSQL. A status
// that timed out is a busy server, not a dead one (a refused connection
// is): the last answer stands for up to failure_threshold-1 ticks, the
// patience the agent has with its peer too. Without it one slow answer on
// a loaded machine sent a leader back to "starting" (measured: a leader
// under two API servers' load flapped every few seconds). Caller holds a.mu.
func (a *Agent) localPG(pg postgres.Status, err error) postgres.Status {
	if err == nil {
		a.pgSlow = 0
		return pg
	}
	if errors.Is(err, context.DeadlineExceeded) && a.last.pg.Up && a.pgSlow < a.cfg.Timers.FailureThreshold-1 {
		a.pgSlow++
		a.log.Debug("local PostgreSQL answered too slowly: keeping the last observation", "ticks", a.pgSlow, "err", err)
		return a.last.pg
	}
	if a.last.pg.Up && !errors.Is(err, context.DeadlineExceeded) {
		a.log.Warn("local PostgreSQL counted down", "err", err)
	}
	a.pgSlow = 0
	return postgres.Status{}
}

// kineServing: this node's Kine writes to this node's own database.
func (a *Agent) kineServing() bool { return a.d.Kine.Target() == a.cfg.Node.Address }

// peerHeard: replication brought a message from the peer's PostgreSQL
// recently, judged on this agent's own clock: the server's mark of the
// last message (which carries the peer's clock on a primary) is only
// compared with itself, and the time it changed is read here. The
// standby reports every second (wal_receiver_status_interval), so a
// change is seen within a second and a tick. The first mark after the
// agent starts is no news.
//
// On a primary a reply counts only if the standby has flushed everything
// or more than at the last reply: a standby that cannot receive (the link
// down one way, from the leader) still sends replies, stuck at the same
// position, while this node's commits wait for it, already visible to its
// own readers (measured: the leader counted its follower healthy until the
// follower promoted, and its readers saw commits the pair then archived).
// Caller holds a.mu.
func (a *Agent) peerHeard(pg postgres.Status, now time.Time) bool {
	if !pg.Up || pg.PeerMark == "" {
		return false
	}
	if pg.PeerMark != a.peerMark {
		flushed := int64(pg.CurrentLSN) - pg.PeerFlushLagBytes
		progress := pg.InRecovery || pg.PeerFlushLagBytes <= 0 || flushed > a.peerFlushed
		if (a.peerMark != "" || a.markSeen) && progress {
			a.heardAt = now
		}
		a.peerMark, a.markSeen, a.peerFlushed = pg.PeerMark, true, flushed
	}
	return !a.heardAt.IsZero() && now.Sub(a.heardAt) < heardFor(a.cfg)
}

// heardFor is how long a sign of life from replication counts: the
// standby reports every second, seen within a tick.
func heardFor(cfg *config.Config) time.Duration {
	return 2*cfg.Timers.ProbeInterval + time.Second
}

// ticks is how many probe intervals of tick cover d: the core counts in
// ticks, the configuration in durations.
func ticks(d, tick time.Duration) int { return int((d + tick - 1) / tick) }
