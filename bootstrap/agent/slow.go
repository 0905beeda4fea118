package agent

import (
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

// slowDamping is how long a follower's flushes must be seen fast again
// before a leader that left it behind for being slow takes it back
// synchronously: a disk that is slow now and then would otherwise make
// the pair switch at every fast moment (flap damping, as for splits).
const slowDamping = 30 * time.Second

// slowness turns latencies measured on the monotonic clock into the
// core's verdicts CommitSlow and FollowerSlow (issue 16): slower than
// timers.slow_commit for timers.slow_for. It decides nothing itself.
type slowness struct {
	commitSince time.Time // this node's commits have been slow since; zero: fast
	flushSince  time.Time // the follower's flushes have been slow since; zero: fast
	flushSlow   bool      // the verdict on the follower, damped
	fastSince   time.Time // the follower's flushes have been fast since (while flushSlow)
}

// commit judges this node's commit latency (0: not a primary, nothing
// measured).
func (s *slowness) commit(now time.Time, latency, bound, window time.Duration) bool {
	if bound <= 0 || latency <= bound {
		s.commitSince = time.Time{}
		return false
	}
	if s.commitSince.IsZero() {
		s.commitSince = now
	}
	return now.Sub(s.commitSince) >= window
}

// flush judges the follower's flush lag (0: unknown or idle, which is no
// evidence either way: the verdict stands). streaming is false when no
// follower streams: a follower that is gone is not slow, and one that
// comes back is judged afresh.
func (s *slowness) flush(now time.Time, lag time.Duration, streaming bool, bound, window time.Duration) bool {
	switch {
	case bound <= 0 || !streaming:
		*s = slowness{commitSince: s.commitSince}
	case lag > bound:
		if s.flushSince.IsZero() {
			s.flushSince = now
		}
		s.fastSince = time.Time{}
		if now.Sub(s.flushSince) >= window {
			s.flushSlow = true
		}
	case lag > 0:
		s.flushSince = time.Time{}
		if s.flushSlow && s.fastSince.IsZero() {
			s.fastSince = now
		}
		if s.flushSlow && now.Sub(s.fastSince) >= slowDamping {
			s.flushSlow, s.fastSince = false, time.Time{}
		}
	}
	return s.flushSlow
}

// slowText is the status line for the verdicts, "" when neither disk is
// slow.
func slowText(s fsm.Self, peer string) string {
	switch {
	case s.CommitSlow && s.FollowerSlow:
		return "commits here and flushes on " + peer + " are both slow: nothing changes (neither side would do better)"
	case s.CommitSlow:
		return "commits here are slow: every write waits for this disk (the pair does not hand over for it yet: issue 16)"
	case s.FollowerSlow:
		return "flushes on " + peer + " are slow: replication asynchronous until they have been fast for " + slowDamping.String()
	}
	return ""
}
