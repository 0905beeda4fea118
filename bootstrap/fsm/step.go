package fsm

import (
	"fmt"
	"time"
)

// tick bundles one call's inputs for the rows' guards.
type tick struct {
	m Machine
	o Observation
	c Config
}

func (t tick) member() bool { return t.o.Self.Member && t.o.Self.HasData }

func (t tick) paused() bool { return t.o.Now.Before(t.o.Self.PausedUntil) }

func (t tick) graceOver() bool {
	return t.o.Now.Sub(t.m.Born) >= t.c.BootGrace && t.m.Fails >= t.c.FailureThreshold
}

// peerSeen: the peer answered in some way this tick, replication included.
func (t tick) peerSeen() bool { return t.o.Peer.AgentUp || t.o.Peer.PGUp || t.o.Self.PeerHeard }

// selfWins: this node has the better claim. A node that has conceded
// (its intent discards its data) never wins: its data is half replaced.
func (t tick) selfWins() bool {
	switch {
	case t.discarding():
		return false
	case t.witnessUsed() && t.o.Witness.Term > max(t.o.Self.Term, t.o.Peer.Term):
		// A claim at the witness newer than either node's term: its
		// claimer took the term (its promotion may have been cut short
		// before it saved it); the other cannot know it did not serve.
		return t.o.Witness.By == t.o.Self.Name
	case t.o.Peer.AgentUp && t.o.Peer.Rejoining:
		// The peer conceded: it gave up its claim, whatever its numbers
		// (found by the simulation: a winner that rebooted before its
		// conceded peer had rejoined compared zero last writes with it,
		// lost on the name, and neither node ever led again).
		return true
	}
	w, _ := Wins(t.o.Self, t.o.Peer)
	return w
}

// discarding: an interrupted transition of this node's was replacing its
// data (or it lost a split): that data must never serve as it is.
func (t tick) discarding() bool {
	in := t.o.Self.Intent
	return in != nil && in.Discards && !in.Copied
}

// promotionCut: PostgreSQL runs as a primary while this node's stored role
// is follower (or it recorded a promotion that did not finish): the agent
// died after pg_promote and before the term was saved. Starting it as a
// standby is refused by PostgreSQL, so it finishes the promotion.
func (t tick) promotionCut() bool {
	s := t.o.Self
	in := s.Intent != nil && s.Intent.Promotes
	return t.member() && s.PGUp && s.Primary && (s.TermRole == RoleFollower || in) && !t.discarding()
}

// maybePromoted: a promotion was recorded and did not finish, and
// PostgreSQL is down, so whether pg_promote ran is unknown: the data may
// have left the leader's timeline. It is kept (not forgotten) until the
// node either takes over or rejoins by rewinding (found by the
// simulation: a node powered off after pg_promote restarted as the old
// leader's standby without a rewind, never streamed, and after the join
// timeout took over with its stale data).
func (t tick) maybePromoted() bool {
	s := t.o.Self
	return s.Intent != nil && s.Intent.Promotes && !s.PGUp
}

// peerPromoting: the peer's PostgreSQL is a primary while the peer's
// stored role is follower: its promotion was cut short and it is about to
// finish it (promotionCut, on the peer). This node waits rather than take
// writes that the peer's new term would make it discard.
func (t tick) peerPromoting() bool {
	p := t.o.Peer
	return p.AgentUp && p.Primary && p.TermRole == RoleFollower
}

// peerKnowsOurTerm: the peer, not a primary, follows this node's term (it
// adopted it with a copy of this node's data): it may promote into the
// next one when cut off, even if it never streamed. The role matters: a
// peer that began a term of the same number on its own is not following
// it (found by the simulation, a one-way partition).
func (t tick) peerKnowsOurTerm() bool {
	p := t.o.Peer
	return p.AgentUp && p.Member && !p.Primary && p.TermRole == RoleFollower && p.Term == t.o.Self.Term
}

// splitUnsettled: both lead one term and one of them still serves: its last
// write still moves, so the comparison waits (see peerOutranks).
func (t tick) splitUnsettled() bool {
	return t.sameTermLeaders() && (t.o.Self.KineServing || t.o.Peer.KineServing)
}

// peerLeadsOurTermUnseen: the peer leads this node's term while this
// node's PostgreSQL is down, so this node's last write is unknown: a
// rebooted leader that wrote last must not lose on a default of zero.
func (t tick) peerLeadsOurTermUnseen() bool {
	s, p := t.o.Self, t.o.Peer
	return t.member() && !s.PGUp && s.TermRole == RoleLeader && p.AgentUp && p.Member && p.Primary &&
		p.TermRole == RoleLeader && p.Term == s.Term && !t.discarding()
}

// peerLeadsNewerTerm: this node led, and the peer leads a newer term.
// A node that led asynchronously (leading alone, or stopped while it did)
// may have acknowledged writes its peer lacks. A leader that loses its
// follower begins the next term, the one the follower's promotion begins,
// so that the two meet in one term and the last write decides. But the two
// may not agree on which term the follower last followed (a link up for an
// instant: the follower streamed the leader's newest term record, the
// leader never saw it stream); the follower's term is then one higher and
// would outrank this node's writes by the number alone. Such a leader
// begins the peer's term too: the writes on both sides are a split either
// way, decided by the last write.
func (t tick) peerLeadsNewerTerm() bool {
	s, p := t.o.Self, t.o.Peer
	return t.member() && s.TermRole == RoleLeader && !t.discarding() &&
		p.AgentUp && p.Member && p.Primary && p.TermRole == RoleLeader && !p.Rejoining && p.Term > s.Term
}

// peerOutranks: the peer is a serving primary with a better claim: this
// node must stop writing and follow it. Between two leaders of one term
// (a split) the claim is the later last write, which moves while either
// side takes writes: each node saw its own fresh commit as the later one
// against the peer's half a tick old, and neither gave way for as long as
// clients wrote to both (measured: 3 minutes, a one-way partition). So
// that comparison waits until both have stopped their Kine.
//
// A node that has conceded goes on rejoining whatever the peer does: the
// winner resumed its writes on that concession, so the split stays
// "unsettled" from here (found by the split whose loser's disk was full:
// its archive failed once, and it then waited for ever for the winner to
// stop serving).
func (t tick) peerOutranks() bool {
	p := t.o.Peer
	switch {
	case !p.AgentUp || !p.Member || !p.Primary || p.Rejoining:
		return false
	case t.discarding():
		return true
	case t.splitUnsettled():
		return false
	}
	return !t.selfWins()
}

// sameTermLeaders: both nodes lead the same term on their own primaries:
// a split brain, not yet decided. A peer that has conceded (Rejoining)
// no longer counts: the winner resumes while the loser archives and
// rewinds, however long that takes (its database port may be blocked).
func (t tick) sameTermLeaders() bool {
	s, p := t.o.Self, t.o.Peer
	return p.AgentUp && p.Member && p.Primary && p.TermRole == RoleLeader && !p.Rejoining &&
		s.Primary && s.TermRole == RoleLeader && p.Term == s.Term
}

// maxDamping caps flap damping: at most 2^3 = 8 times the detection window.
const maxDamping = 3

// promoteAfter is how many failed probes a follower waits before taking
// over: the detection window, doubled for each split this node lost in the
// last hour. A link that flaps (measured: down and up every 0.5-3 s) split
// the pair again at every outage longer than the window; the loser, which
// follows afterwards, now needs a longer outage to promote again, while a
// leader that really died is still replaced, later. With a witness that
// answers, the leader is given WitnessDefer more probes to claim first.
func (t tick) promoteAfter() int {
	n := t.c.FailureThreshold << min(t.o.Self.RecentSplits, maxDamping)
	if t.witnessUsed() {
		n += t.c.WitnessDefer
	}
	return n
}

// peerRevsAhead: the peer lost a split whose clients saw revisions this
// node has not yet moved past (Self.KineRev is then read).
func (t tick) peerRevsAhead() bool {
	p := t.o.Peer
	return p.AgentUp && p.HighRev > t.o.Self.FencedPast && t.o.Self.Primary
}

// fencedForMe: the peer's revisions are past everything this node's
// clients saw before its data was discarded, so its Kine may write there.
func (t tick) fencedForMe() bool { return t.o.Peer.FencedPast >= t.o.Self.HighRev }

// healthy says whether the peer looked well this tick, as the current state
// understands "well": a follower needs its leader's database; a leader
// needs its follower's WAL stream and some sign of the follower's host.
// Replication traffic heard from the peer counts as a sign of life: a
// starved machine (measured: a kube-apiserver starting on 2 cores) can
// time out three probes in a row while WAL still flows both ways, and a
// false failover there is a split brain.
func (t tick) healthy() bool {
	s, p := t.o.Self, t.o.Peer
	switch t.m.State {
	case Follower:
		// A follower that cannot read its own database in time is starved
		// itself: its probes of the leader timing out say nothing of the
		// leader (measured before: a follower held to 2 ms of CPU a second took
		// over from a healthy leader while WAL still flowed). It judges the
		// leader again once its own reads answer; pg_promote would have to
		// wait for them anyway.
		return p.PGUp || s.PeerHeard || s.PGSlow
	case Leader, LeaderAlone:
		return s.FollowerStreaming && (p.AgentUp || p.PGUp || s.PeerHeard)
	default:
		return t.peerSeen()
	}
}

// Wins decides which of two nodes has the better claim to lead, and why.
// Both nodes evaluate it on the same facts and reach opposite answers: the
// term first (a node that missed a term has lost), then the role in the
// term, then, between two leaders of one term (a split), the later last
// write (a commit not made on a timer), then the fixed name order.
func Wins(s Self, p Peer) (bool, string) {
	sm, pm := s.Member && s.HasData, p.Member
	switch {
	case sm && !pm:
		return true, "the peer was never a member"
	case !sm && pm:
		return false, "this node was never a member"
	case s.Term != p.Term:
		return s.Term > p.Term, fmt.Sprintf("term %d against the peer's %d", s.Term, p.Term)
	case s.TermRole != p.TermRole:
		return s.TermRole == RoleLeader, fmt.Sprintf("term %d: the leader of the term wins", s.Term)
	case s.TermRole == RoleLeader && !s.LastCommit.Equal(p.LastCommit):
		return s.LastCommit.After(p.LastCommit), fmt.Sprintf("both led term %d: the later last write wins (%s here, %s there)",
			s.Term, s.LastCommit.UTC().Format(time.RFC3339Nano), p.LastCommit.UTC().Format(time.RFC3339Nano))
	default:
		return s.Name < p.Name, "tie: the node first in name order wins"
	}
}

// joinTimedOut is the reason of the row that ends a join that did not
// stream; copyAfresh the reason of the next join (Machine.FailedJoins).
const (
	joinTimedOut = "not streaming within the join timeout: starting over"
	copyAfresh   = "the last join could not stream: copying the leader's data afresh"
)

// walGone: this standby is not streaming and the peer, its leader, no
// longer keeps the WAL it must resume from (the oldest segment the peer
// has begins after the last record replayed here). What the peer says
// only makes this node copy its data again, which loses nothing.
func (t tick) walGone() bool {
	s, p := t.o.Self, t.o.Peer
	return s.PGUp && !s.Primary && !s.ReceiverStreaming && s.ReplayLSN > 0 &&
		p.AgentUp && p.Primary && p.OldestWAL > s.ReplayLSN
}

// peerLeadsThisNode: the peer leads, holds newer state than this node, no
// split is pending and it is not taking a copy itself: this node joins it.
func (t tick) peerLeadsThisNode() bool {
	return t.member() && t.o.Peer.AgentUp && t.o.Peer.Member && t.o.Peer.Primary && !t.selfWins() &&
		!t.splitUnsettled() && !t.o.Peer.Rejoining
}

// Step is the decision core: it updates the probe counters, walks the rows
// of the current state and returns the first that holds. The caller runs
// the decision's actions and, only if all succeeded, keeps the returned
// machine; otherwise it keeps the old one and the row fires again later.
func Step(m Machine, o Observation, c Config) (Machine, Decision) {
	t := tick{m: m, o: o, c: c}
	if t.healthy() {
		m.OKs, m.Fails = m.OKs+1, 0
	} else {
		m.OKs, m.Fails = 0, m.Fails+1
	}
	if m.State == LeaderAlone && o.Self.FollowerStreaming {
		m.Followed = true
	}
	t.m = m
	d := Decision{From: m.State, To: m.State, Hold: m}
	for _, r := range Table {
		if r.From != m.State || !r.When(t) {
			continue
		}
		var acts []Action
		if r.Do != nil {
			acts = r.Do(t)
		}
		acts, why := t.withWitness(r, acts)
		waitsFor := WaitWitness
		if why == "" && t.c.Manual && promotesByItself(r, acts) {
			why, waitsFor = "failover is manual: awaiting an operator's `twonode promote`", WaitOperator
		}
		if why != "" {
			if d.Waiting == "" {
				d.Waiting, d.WaitsFor = r.Reason+": not now: "+why, waitsFor
			}
			continue
		}
		d.To, d.Reason, d.Changed, d.Actions = r.To, r.Reason, true, acts
		d.Consumed = r.Consumes != CmdNone && o.Cmd.Kind != CmdNone
		d.Detail = detail(t, r)
		if r.To != m.State {
			next := Machine{State: r.To, Since: o.Now, Born: m.Born}
			if r.To == Starting || r.To == Joining {
				next.FailedJoins = m.FailedJoins
			}
			if r.FailedJoin {
				next.FailedJoins++
			}
			m = next
		} else if r.NewTerm {
			m.Followed = false // a term of its own, without a follower yet
		}
		return m, d
	}
	return m, d
}

// detail gives the facts behind a row, for the log line.
func detail(t tick, r Row) string {
	switch {
	case r.To == Joining && t.o.Peer.AgentUp && t.o.Self.Member:
		_, why := Wins(t.o.Self, t.o.Peer)
		return why
	case r.From == Follower && r.To == LeaderAlone || r.From == Leader && r.To == LeaderAlone:
		return fmt.Sprintf("%d consecutive failed probes", t.m.Fails)
	}
	return ""
}

// HoldsAddress says whether a leader whose Kine serves its own database
// keeps the pair's address now. A leader alone does: it takes writes. A
// synchronous leader does while its follower is healthy, and gives it up
// once the follower has looked unhealthy for all but the last probe of the
// detection window: it commits nothing until it goes on alone (which takes
// the address back), and the follower, which may have lost it the same
// way, may be about to take over, whose address clients must then find on
// that node alone. So the address is on both nodes only while both lead
// alone (a split without a witness), never while one of them waits for a
// follower that has left.
//
// parked: the address was set aside at an earlier tick, or a stalled tick
// (the node frozen) renewed nothing. Taking it back then needs more than
// one good probe, because what a probe shows can be older than what the
// peer already decided: a follower reports its old state until the
// actions of a takeover have run (measured: 0.7 s), and replication's
// last sign of life counts for 2 s (HeardFor). A synchronous leader takes
// it back once the follower has looked healthy for a whole detection
// window and its agent says, this tick, that it follows this term; or,
// its agent out of reach (a link down one way), once the follower has
// looked healthy for longer than replication's sign of life counts, so
// that fresh replies kept it so. Measured before: on a flapping link the
// leader took it back on one probe answered by a follower already
// promoting, and held it beside the new leader's for 3 s. A leader alone
// takes it back unless the peer's agent says it leads.
func (m Machine) HoldsAddress(c Config, o Observation, parked bool) bool {
	p := o.Peer
	switch m.State {
	case LeaderAlone:
		peerLeads := p.AgentUp && (p.State.IsLeader() || p.Term > o.Self.Term)
		return !parked || !peerLeads
	case Leader:
		if m.Fails >= max(1, c.FailureThreshold-1) {
			return false
		}
		if !parked {
			return true
		}
		if p.AgentUp {
			return m.OKs >= c.FailureThreshold && p.State == Follower && p.Term == o.Self.Term
		}
		return m.OKs > max(c.FailureThreshold, c.HeardFor+1)
	}
	return false
}
