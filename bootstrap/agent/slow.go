package agent

import (
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// slowDamping is how long a follower's flushes must be seen fast again
// before a leader that left it behind for being slow takes it back
// synchronously: a disk that is slow now and then would otherwise make
// the pair switch at every fast moment (flap damping, as for splits).
const slowDamping = 30 * time.Second

// slowness turns latencies measured on the monotonic clock into the
// core's verdicts CommitSlow, FollowerSlow and FollowerFast (issue 16).
// It decides nothing itself.
type slowness struct {
	commit   commitJudge
	follower followerJudge
	evidence fastFollower
}

// slowVerdicts are the three facts for fsm.Self.
type slowVerdicts struct{ commitSlow, followerSlow, followerFast bool }

// judge takes one tick's figures: this node's commit latency (0: not a
// primary) and its PostgreSQL's status.
func (s *slowness) judge(now time.Time, commit time.Duration, pg postgres.Status, bound, window time.Duration) slowVerdicts {
	primary := pg.Up && !pg.InRecovery
	streaming := primary && pg.Streaming
	v := slowVerdicts{
		commitSlow:   s.commit.judge(now, commit, bound, window),
		followerSlow: s.follower.judge(now, pg.PeerFlushLag, streaming, bound, window),
	}
	v.followerFast = s.evidence.judge(now, commit, pg.FlushLSN, pg.PeerFlushLSN, pg.PeerFlushLag, streaming, bound, window)
	return v
}

// commitJudge: this node's commits slower than the bound for the window.
type commitJudge struct {
	since time.Time // slow since; zero: fast
}

func (c *commitJudge) judge(now time.Time, latency, bound, window time.Duration) bool {
	if bound <= 0 || latency <= bound {
		c.since = time.Time{}
		return false
	}
	if c.since.IsZero() {
		c.since = now
	}
	return now.Sub(c.since) >= window
}

// followerJudge: the follower's flush lag (PostgreSQL's flush_lag) slower
// than the bound for the window, damped.
type followerJudge struct {
	since     time.Time // slow since; zero: fast
	slow      bool      // the verdict, damped
	fastSince time.Time // fast since (while slow)
}

// judge: lag 0 is unknown or idle, which is no evidence either way (the
// verdict stands). streaming is false when no follower streams: a
// follower that is gone is not slow, and one that comes back is judged
// afresh.
func (f *followerJudge) judge(now time.Time, lag time.Duration, streaming bool, bound, window time.Duration) bool {
	switch {
	case bound <= 0 || !streaming:
		*f = followerJudge{}
	case lag > bound:
		if f.since.IsZero() {
			f.since = now
		}
		f.fastSince = time.Time{}
		if now.Sub(f.since) >= window {
			f.slow = true
		}
	case lag > 0:
		f.since = time.Time{}
		if f.slow && f.fastSince.IsZero() {
			f.fastSince = now
		}
		if f.slow && now.Sub(f.fastSince) >= slowDamping {
			f.slow, f.fastSince = false, time.Time{}
		}
	}
	return f.slow
}

// fastFollower is the evidence a leader whose commits are slow needs
// before it hands over: since its commits turned slow, the follower has
// flushed WAL written after that, and it has not been seen more than half
// the bound behind for slowDamping, by PostgreSQL's flush_lag or by the
// agent's own trail. Each measure alone failed in the fault matrix:
// flush_lag keeps its last figure while no reply comes, and is cleared
// whenever the follower catches up, so with both disks slow it still
// showed the fast figure from before the fault; the trail sees positions
// once a tick, so a follower at 1.5 s a flush read as 1 s behind, the
// bound, not past it; and an episode that ended at the first commit that
// happened to be quick (one that joined a flush in progress) began again
// with a clean slate. So: half the bound, a memory of slowDamping, and an
// episode that ends only once commits have been fast for the window.
// A disk that stalls completely flushes nothing new: no evidence, no
// hand-over (the leader keeps its role; writes wait for its disk).
type fastFollower struct {
	trail      flushTrail
	lastBehind time.Time // the follower was last seen more than bound/2 behind
	episode    bool      // this node's commits are slow (lastSlow within the window)
	lastSlow   time.Time // the last tick a commit was slower than the bound
	from       uint64    // this node's flush position when the episode began
}

func (e *fastFollower) judge(now time.Time, commit time.Duration, local, peer uint64, pgLag time.Duration, streaming bool, bound, window time.Duration) bool {
	if !streaming || bound <= 0 {
		*e = fastFollower{}
		return false
	}
	if lag := e.trail.behind(now, local, peer); lag > bound/2 || pgLag > bound/2 {
		e.lastBehind = now
	}
	if commit > bound {
		if !e.episode {
			e.episode, e.from = true, local
		}
		e.lastSlow = now
	} else if e.episode && now.Sub(e.lastSlow) >= window {
		e.episode = false
	}
	recent := !e.lastBehind.IsZero() && now.Sub(e.lastBehind) < slowDamping
	return e.episode && peer > e.from && !recent
}

// flushTrail times the follower's flushes on this node's clock: it notes
// when this server's flushed WAL was first seen at each position, so the
// age of the oldest WAL flushed here and not yet on the follower is how
// far behind the follower is, growing while it is stuck. A walsender sends
// only WAL flushed here, so this node's own slow disk does not count
// against the follower. Positions are seen once a tick: the figure is
// within a probe interval of the truth.
type flushTrail struct{ marks []flushMark }

type flushMark struct {
	at  time.Time
	lsn uint64
}

// maxMarks bounds the trail of a follower stuck for hours: the oldest
// mark, which makes the figure, is always kept.
const maxMarks = 1024

// behind records this tick's positions and returns the follower's lag, 0
// when it has everything flushed here.
func (f *flushTrail) behind(now time.Time, local, peer uint64) time.Duration {
	if n := len(f.marks); local > 0 && (n == 0 || local > f.marks[n-1].lsn) {
		if n == maxMarks {
			f.marks = append(f.marks[:1], f.marks[2:]...)
		}
		f.marks = append(f.marks, flushMark{now, local})
	}
	i := 0
	for i < len(f.marks) && f.marks[i].lsn <= peer {
		i++
	}
	f.marks = append(f.marks[:0], f.marks[i:]...)
	if len(f.marks) == 0 {
		return 0
	}
	return now.Sub(f.marks[0].at)
}

// slowText is the status line for the verdicts, "" when neither disk is
// slow. judgedSlow: the peer, leading, judges this node's flushes slow.
func slowText(s fsm.Self, judgedSlow bool, peer string) string {
	switch {
	case judgedSlow:
		return "flushes here are slow, as " + peer + " measures them (" + peer + "'s status says what the pair does about it)"
	case s.CommitSlow && s.FollowerSlow:
		return "commits here and flushes on " + peer + " are both slow: nothing changes (neither side would do better)"
	case s.CommitSlow && s.FollowerFast:
		return "commits here are slow and " + peer + " flushes fast: handing over to it"
	case s.CommitSlow:
		return "commits here are slow: every write waits for this disk; " + peer + " takes over once it is seen to flush fast (it is not: " + peer + " may be slow too, or not streaming)"
	case s.FollowerSlow:
		return "flushes on " + peer + " are slow: replication asynchronous until they have been fast for " + slowDamping.String()
	}
	return ""
}
