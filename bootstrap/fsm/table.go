package fsm

import "slices"

// Row is one transition: when the machine is in From and When holds, it
// moves to To, and the daemon runs Do in order. Rows are tried top to
// bottom within a state; the first that holds fires. A later witness
// (a third vote) and self-fencing add rows here and fields to Observation;
// the walker does not change.
type Row struct {
	From, To State
	Reason   string
	When     func(t tick) bool
	Do       func(t tick) []Action
	Consumes CommandKind // the command this row handles, if any
	// NewTerm: a row that stays in its state and begins a term (the
	// machine forgets that a follower streamed in the old one).
	NewTerm bool
	// FailedJoin: a row that ends a join which could not stream; the next
	// join copies the leader's data afresh (Machine.FailedJoins).
	FailedJoin bool
}

// promotion is the one sequence every take-over uses: promote, fence the
// revisions, begin the term, then serve. A promotion finished after a
// crash begins the term it recorded, not one more.
func promotion(kind TermKind) func(t tick) []Action {
	return func(t tick) []Action {
		// The term after the newest this node knows, from its state or
		// from its replicated data: a follower whose agent missed the
		// leader's last term (restarted, then cut off) would otherwise
		// begin a term the leader already had, and lose a split by its
		// number alone (found by the simulation).
		term := max(t.o.Self.Term, t.o.Self.DBTerm) + 1
		if in := t.o.Self.Intent; in != nil && in.Promotes && in.Term > 0 {
			term = in.Term // NewTerm is a no-op when it was saved already
		}
		if w := t.o.Witness; t.witnessUsed() && w.Term >= term {
			// A newer term claimed at the witness (this node's own claim
			// before a crash, or a leader's whose lease expired), which
			// also overrides a recorded attempt whose claim was refused
			// (found end to end: the retries asked for the refused term).
			term = w.Term + 1
			if w.By == t.o.Self.Name {
				term = w.Term
			}
		}
		return []Action{
			{Kind: KineStop, Kill: true},
			{Kind: Promote, LSN: t.o.Cmd.LSN},
			{Kind: Fence},
			{Kind: NewTerm, Term: term, Why: kind},
			{Kind: KineLocal},
			// After Kine: the old leader's slot is needed only when it
			// rejoins, not by the first write (the failover timeline).
			{Kind: EnsureSlot},
		}
	}
}

// fencePastPeer moves this leader's revisions past the split's loser's
// (Kine stopped meanwhile: a running Kine would fill the gap id by id), or
// only records that they are past already.
func fencePastPeer(t tick) []Action {
	f := Action{Kind: Fence, Rev: t.o.Peer.HighRev}
	if t.o.Self.KineRev > t.o.Peer.HighRev {
		return []Action{f}
	}
	return []Action{{Kind: KineStop}, f, {Kind: KineLocal}}
}

// rejoin is the loser's sequence: stop serving, keep the evidence, then
// copy. Its Kine starts only when it follows (see Joining), unless the
// new leader already holds everything this node served, past every
// revision it handed out:
//   - its Kine already writes to the peer's database (a hand-over cut
//     short after the peer took over): it stays there;
//   - it was a synchronous leader, and the peer leads a newer term: every
//     commit this node showed a client was on the follower before it was
//     shown (a commit waits for the standby's flush before it is visible;
//     one whose wait a client cancelled shows early, a handful at most,
//     which the archive keeps), and the follower's promotion fenced the
//     revisions a million past its own: this node's Kine writes to the
//     new leader at once, and a client resuming from an older revision is
//     told to relist.
//
// This node's API server then keeps a datastore while the node rewinds:
// measured, a deposed leader's API server was without one for 5 to 8 s,
// the controller manager it hosted went up to 9.9 s without renewing its
// lease (at 10 s it gives up, and k3s restarts).
func rejoin(t tick) []Action {
	acts := stopUnlessOnPeer(t)
	if s := t.o.Self; !s.KineOnPeer && s.TermRole == RoleLeader && !s.WasAsync && t.peerLeadsNewerTerm() {
		acts = []Action{{Kind: KinePeer}}
	}
	if t.o.Self.TermRole == RoleLeader {
		acts = append(acts, Action{Kind: Archive, Split: t.o.Peer.Term == t.o.Self.Term})
	}
	return append(acts,
		Action{Kind: Announce, Term: t.o.Peer.Term},
		Action{Kind: Rewind},
		Action{Kind: StartStandby},
		Action{Kind: AdoptTerm, Term: t.o.Peer.Term},
	)
}

// stopUnlessOnPeer stops this node's Kine before the node's data is
// replaced, unless it already writes to the peer's database: then it
// serves nothing of this node's, and its API server keeps a datastore.
func stopUnlessOnPeer(t tick) []Action {
	if t.o.Self.KineOnPeer {
		return nil
	}
	return []Action{{Kind: KineStop}}
}

// handOver is a leader's planned exit: the follower takes over, this node
// rewinds and follows it. Its Kine writes to the new leader's database as
// soon as that one leads: the follower replayed everything this node
// committed before it promoted, and its promotion fenced the revisions
// past everything this node handed out, so this node's API server (and
// its controllers' leases) keeps a datastore while the node rewinds, even
// when that takes a while (measured: a leader whose disk had filled could
// not rewind for 10 s, its API server had no datastore meanwhile, and its
// controller manager lost its lease, which restarts k3s).
var handOver = seq(KineStop, Handover, KinePeer, Rewind, StartStandby)

func seq(kinds ...ActionKind) func(t tick) []Action {
	return func(tick) []Action {
		acts := make([]Action, len(kinds))
		for i, k := range kinds {
			acts[i] = Action{Kind: k}
		}
		return acts
	}
}

const promotionCutReason = "a promotion was cut short after PostgreSQL was promoted: finishing it"

// Table is the whole decision core. `twonode fsm` prints it and the diagram
// in docs/ is generated from it.
var Table = slices.Concat([]Row{
	// --- starting: an agent that just started first reconciles what it
	// recorded (an interrupted transition) with what it finds.
	{From: Starting, To: LeaderAlone, Reason: promotionCutReason,
		When: func(t tick) bool { return t.promotionCut() },
		Do:   promotion(TermPromote)},
	{From: Starting, To: Joining, Reason: "this node conceded and was replacing its data when it stopped: rejoining again",
		When: func(t tick) bool {
			p := t.o.Peer
			return t.discarding() && t.o.Self.Member && p.AgentUp && p.Member && p.Primary
		},
		Do: rejoin},
	{From: Starting, To: Joining, Reason: "this node's copy of the peer finished before the agent stopped: following",
		When: func(t tick) bool {
			in, p := t.o.Self.Intent, t.o.Peer
			return in != nil && in.Discards && in.Copied && t.member() && p.AgentUp && p.Member && p.Primary
		},
		Do: func(t tick) []Action {
			return []Action{{Kind: Announce, Term: t.o.Peer.Term}, {Kind: StartStandby}, {Kind: AdoptTerm, Term: t.o.Peer.Term}, {Kind: ClearIntent}}
		}},
	{From: Starting, To: Starting, Reason: "an interrupted transition left nothing to finish: deciding afresh",
		When: func(t tick) bool {
			in := t.o.Self.Intent
			return in != nil && !in.Discards && !t.promotionCut() && !t.maybePromoted()
		},
		Do: seq(ClearIntent)},
	// --- then decides from what it finds. A restarted agent leaves a
	// serving Kine alone, except in a split: found by the simulation, an
	// agent that died in a split's first step restarted with its Kine
	// still serving, and neither node could decide (each waited for the
	// other to stop).
	// An agent that restarts while its Kine acknowledges writes alone
	// (asynchronously) holds no lease it knows the time of: it stops them
	// first, and serves again once it has claimed (found by the crash
	// test: killed before it could stop its Kine at its lease's end, its
	// Kine went on serving after the follower had taken over).
	{From: Starting, To: Starting, Reason: "restarted while serving alone without a lease from the witness: writes stop until it has one",
		When: func(t tick) bool {
			s := t.o.Self
			return t.leaseNeeded() && !t.o.Witness.Lease && s.KineServing && s.Primary && !s.SyncOn
		},
		Do: seq(KineStop)},
	// A leader's claim at the witness that was cut short before the term
	// was saved (found by the simulation: neither node would lead, each
	// waiting for the other's newer claim).
	{From: Starting, To: Starting, Reason: "this leader's claim at the witness is newer than its saved term (cut short): beginning that term",
		When: func(t tick) bool {
			s, w := t.o.Self, t.o.Witness
			return t.witnessUsed() && w.By == s.Name && w.Term > s.Term && t.member() && s.TermRole == RoleLeader &&
				!t.discarding() && (!s.PGUp || s.Primary)
		},
		Do: func(t tick) []Action {
			var acts []Action
			if !t.o.Self.PGUp {
				acts = append(acts, Action{Kind: StartPrimary})
			}
			return append(acts, Action{Kind: NewTerm, Term: t.o.Witness.Term, Why: TermAlone})
		}},
	{From: Starting, To: Starting, Reason: "both lead the same term (a split): writes stop until it is decided",
		When: func(t tick) bool { return t.sameTermLeaders() && t.o.Self.KineServing },
		Do:   seq(KineStop)},
	// A leader that was asynchronous when it stopped (powered off, say)
	// and finds its follower leading a newer term begins that term too,
	// before comparing, so that the two are compared by their last
	// writes, not by the number (found by the simulation: its writes after
	// the follower's copy were archived by the number).
	{From: Starting, To: Starting, Reason: "the peer leads a newer term begun while this node led asynchronously: beginning it too, to compare last writes",
		When: func(t tick) bool {
			s := t.o.Self
			return t.peerLeadsNewerTerm() && s.WasAsync && (!s.PGUp || s.Primary)
		},
		Do: func(t tick) []Action {
			acts := []Action{{Kind: KineStop}}
			if !t.o.Self.PGUp {
				acts = append(acts, Action{Kind: StartPrimary})
			}
			return append(acts, Action{Kind: NewTerm, Term: t.o.Peer.Term, Why: TermAlone})
		}},
	{From: Starting, To: Starting, Reason: "the peer leads this node's term and this node's last write is unknown: starting PostgreSQL, without serving, to compare",
		When: func(t tick) bool { return t.peerLeadsOurTermUnseen() },
		Do:   seq(StartPrimary)},
	{From: Starting, To: Leader, Reason: "agent restarted: primary running with its follower streaming",
		When: func(t tick) bool {
			s := t.o.Self
			return t.member() && s.TermRole == RoleLeader && s.PGUp && s.Primary && s.FollowerStreaming && !t.peerOutranks()
		},
		Do: seq(EnsureSlot, SyncOn, KineLocal)},
	{From: Starting, To: Follower, Reason: "agent restarted: standby streaming from the leader",
		When: func(t tick) bool {
			s := t.o.Self
			return t.member() && s.TermRole == RoleFollower && s.PGUp && !s.Primary && s.ReceiverStreaming
		},
		Do: seq(KinePeer)},
	{From: Starting, To: Joining, Reason: "never a member: joining the pair by base backup",
		When: func(t tick) bool { return !t.member() && t.o.Peer.AgentUp && t.o.Peer.Member && t.o.Peer.Primary },
		Do: func(t tick) []Action {
			return []Action{{Kind: KineStop}, {Kind: Announce, Term: t.o.Peer.Term}, {Kind: BaseBackup}, {Kind: StartStandby}, {Kind: KinePeer}}
		}},
	{From: Starting, To: LeaderAlone, Reason: "forming a new pair: this node leads first",
		When: func(t tick) bool {
			// A member without data (a copy cut short) never forms a new
			// pair over its peer.
			if t.member() || t.o.Self.Member || !t.o.Self.Preferred || t.discarding() {
				return false
			}
			return (t.o.Peer.AgentUp && !t.o.Peer.Member) || (t.graceOver() && !t.peerSeen())
		},
		Do: func(t tick) []Action {
			return []Action{{Kind: InitDB}, {Kind: StartPrimary}, {Kind: NewTerm, Term: t.o.Self.Term + 1, Why: TermForm},
				{Kind: EnsureSlot}, {Kind: KineLocal}}
		}},
	// A primary started again acknowledges writes asynchronously until its
	// follower catches up; sync-off records that (found by the simulation:
	// a write acknowledged here just before a power loss was archived by
	// the number when the follower had taken over meanwhile).
	{From: Starting, To: LeaderAlone, Reason: "this node has the newest state: leading",
		When: func(t tick) bool {
			return t.member() && t.o.Self.TermRole == RoleLeader && t.o.Peer.AgentUp && t.selfWins() &&
				!t.splitUnsettled() && !t.peerPromoting()
		},
		Do: seq(StartPrimary, SyncOff, EnsureSlot, KineLocal)},
	{From: Starting, To: LeaderAlone, Reason: "the peer lost or has no data: the follower takes over",
		When: func(t tick) bool {
			return t.member() && t.o.Self.TermRole != RoleLeader && t.o.Peer.AgentUp && t.selfWins() && !t.paused() &&
				!t.peerPromoting()
		},
		Do: promotion(TermPromote)},
	// A join that could not stream is not tried the same way again: the
	// leader may no longer keep the WAL this node needs (an outage longer
	// than its slot keeps WAL for). Found by make bench's scale run: such
	// a follower started its standby, never streamed, and went round
	// joining and starting at every join timeout for good.
	{From: Starting, To: Joining, Reason: copyAfresh,
		When: func(t tick) bool { return t.m.FailedJoins > 0 && t.peerLeadsThisNode() },
		Do: func(t tick) []Action {
			acts := rejoin(t)
			for i := range acts {
				if acts[i].Kind == Rewind {
					acts[i].Kind = BaseBackup
				}
			}
			return acts
		}},
	{From: Starting, To: Joining, Reason: "the peer has newer state: rejoining as its follower",
		When: func(t tick) bool { return t.peerLeadsThisNode() },
		Do: func(t tick) []Action {
			if t.o.Self.TermRole == RoleFollower && t.o.Peer.TermRole == RoleLeader && !t.maybePromoted() {
				// It followed this very leader: nothing diverged, stream
				// again. A Kine that still writes to that leader's database
				// stays (measured: a follower whose disk had filled stopped
				// it at every retry, and its API server was without a
				// datastore for 8 s, long enough to lose the controller
				// manager's lease).
				return append(stopUnlessOnPeer(t), Action{Kind: Announce, Term: t.o.Peer.Term}, Action{Kind: StartStandby},
					Action{Kind: KinePeer}, Action{Kind: AdoptTerm, Term: t.o.Peer.Term})
			}
			return rejoin(t)
		}},
	{From: Starting, To: Joining, Reason: "the leader's agent is down but its database answers: following",
		When: func(t tick) bool {
			return t.member() && t.o.Self.TermRole == RoleFollower && !t.o.Peer.AgentUp && t.o.Peer.PGUp && !t.maybePromoted()
		},
		Do: seq(StartStandby, KinePeer)},
	// A leader already alone when its agent restarted goes on in the same
	// term: a new one would outrank, by its number alone, a peer that
	// took writes meanwhile in the same split (found by the simulation).
	{From: Starting, To: LeaderAlone, Reason: "agent restarted: primary running alone (asynchronous) as before",
		When: func(t tick) bool {
			s := t.o.Self
			// WasAlone, not the server's setting: a primary started again
			// has synchronous replication off whatever the term was.
			return t.member() && s.TermRole == RoleLeader && s.PGUp && s.Primary && s.WasAlone && !t.o.Peer.Primary &&
				!t.discarding() && (t.o.Peer.AgentUp || !t.peerSeen())
		},
		Do: seq(SyncOff, EnsureSlot, KineLocal)},
	// A leader whose agent restarted after a follower streamed in its term,
	// before replication was synchronous again: its Kine may have gone on
	// acknowledging writes the follower lacks, and the follower may promote
	// into the next term. It begins that term too, as a leader losing its
	// follower does, so that a split is decided by the last write (found
	// by the simulation: it went on in the old term and the follower's
	// promotion outranked its writes by the number).
	{From: Starting, To: LeaderAlone, Reason: "agent restarted: primary running asynchronously after a follower streamed in its term: a new term",
		When: func(t tick) bool {
			s := t.o.Self
			return t.member() && s.TermRole == RoleLeader && s.PGUp && s.Primary && !s.WasAlone && !s.SyncOn &&
				!s.FollowerStreaming && !t.o.Peer.Primary && !t.discarding() && (t.o.Peer.AgentUp || !t.peerSeen())
		},
		Do: func(t tick) []Action {
			return []Action{{Kind: NewTerm, Term: t.o.Self.Term + 1, Why: TermAlone}, {Kind: SyncOff}, {Kind: EnsureSlot}, {Kind: KineLocal}}
		}},
	{From: Starting, To: LeaderAlone, Reason: "boot grace over and the follower unreachable: leading alone",
		When: func(t tick) bool {
			return t.member() && t.o.Self.TermRole == RoleLeader && t.graceOver() && !t.peerSeen() && !t.discarding()
		},
		// A leader that was alone already goes on in its term (found by the
		// simulation: rebooted during a split it began a new one, which
		// then outranked the other side by its number alone).
		Do: func(t tick) []Action {
			if s := t.o.Self; s.PGUp && !s.Primary {
				// Its data runs as the peer's standby (a hand-over or a
				// rejoin that finished its copy): a take-over, fenced.
				return promotion(TermPromote)(t)
			}
			if t.o.Self.WasAlone {
				return []Action{{Kind: StartPrimary}, {Kind: SyncOff}, {Kind: EnsureSlot}, {Kind: KineLocal}}
			}
			return []Action{{Kind: StartPrimary}, {Kind: NewTerm, Term: t.o.Self.Term + 1, Why: TermAlone},
				{Kind: SyncOff}, {Kind: EnsureSlot}, {Kind: KineLocal}}
		}},
	// An operator's promotion of a node that has just started (failover:
	// manual after a reboot, say): its standby is started first.
	{From: Starting, To: LeaderAlone, Reason: "operator promoted this node",
		Consumes: CmdPromote,
		When: func(t tick) bool {
			s, c := t.o.Self, t.o.Cmd.Kind
			return t.member() && s.TermRole == RoleFollower && !t.discarding() && (!s.PGUp || !s.Primary) &&
				(c == CmdForcePromote || c == CmdPromote && !t.o.Peer.PGUp && !t.o.Peer.Primary)
		},
		Do: func(t tick) []Action {
			if t.o.Self.PGUp {
				return promotion(TermPromote)(t)
			}
			return append([]Action{{Kind: StartStandby}}, promotion(TermPromote)(t)...)
		}},
	{From: Starting, To: LeaderAlone, Reason: "boot grace over and the leader unreachable: the follower takes over",
		When: func(t tick) bool {
			return t.member() && t.o.Self.TermRole == RoleFollower && t.graceOver() && !t.peerSeen() && !t.paused() &&
				!t.discarding()
		},
		Do: func(t tick) []Action { return append([]Action{{Kind: StartStandby}}, promotion(TermPromote)(t)...) }},

	// --- joining: the copy is done; wait until WAL streams.
	// A node whose clients saw revisions the leader lacks (a lost split)
	// waits until the leader has moved past them: its Kine would otherwise
	// show those clients revisions going backwards.
	{From: Joining, To: Follower, Reason: "streaming from the leader",
		When: func(t tick) bool {
			s := t.o.Self
			return s.PGUp && !s.Primary && s.ReceiverStreaming && t.fencedForMe()
		},
		Do: func(t tick) []Action {
			if t.o.Peer.AgentUp {
				return []Action{{Kind: KinePeer}, {Kind: AdoptTerm, Term: t.o.Peer.Term}}
			}
			return []Action{{Kind: KinePeer}}
		}},
	// Measured: a follower whose disk filled lost its standby while joining
	// and waited out the whole join timeout (2 min) before starting it again.
	{From: Joining, To: Starting, Reason: "local PostgreSQL is down",
		When: func(t tick) bool { return !t.o.Self.PGUp }},
	// Seconds instead of the join timeout when the leader says so: the
	// oldest WAL it keeps begins after where this standby must resume
	// (measured: a follower back from a long outage copied afresh 2 min 2 s
	// after its start, nearly all of it the join timeout).
	{From: Joining, To: Starting, Reason: "the leader no longer keeps the WAL this standby must resume from: starting over", FailedJoin: true,
		When: func(t tick) bool { return t.walGone() }},
	{From: Joining, To: Starting, Reason: joinTimedOut, FailedJoin: true,
		When: func(t tick) bool { return t.o.Now.Sub(t.m.Since) >= t.c.JoinTimeout }},

	// --- follower: probe the leader; take over only after the whole window.
	{From: Follower, To: LeaderAlone, Reason: "the leader handed over: taking over",
		Consumes: CmdHandover,
		When:     func(t tick) bool { return t.o.Cmd.Kind == CmdHandover },
		// The old leader rewinds onto this node's data, and with it this
		// term: it may promote into the next one if it is cut off before
		// it streams, so the term counts as followed from the start (found
		// by the simulation: a partition at the hand-over's instant, and
		// the old leader's take-over outranked this node's writes).
		Do: func(t tick) []Action {
			acts := promotion(TermSwitchover)(t)
			i := slices.IndexFunc(acts, func(a Action) bool { return a.Kind == NewTerm })
			return slices.Insert(acts, i+1, Action{Kind: Followed}) // before any write
		}},
	{From: Follower, To: LeaderAlone, Reason: "operator promoted this node",
		Consumes: CmdPromote,
		When: func(t tick) bool {
			return t.o.Cmd.Kind == CmdForcePromote || (t.o.Cmd.Kind == CmdPromote && !t.o.Peer.PGUp)
		},
		Do: promotion(TermPromote)},
	{From: Follower, To: LeaderAlone, Reason: "leader unreachable for the whole detection window: promoting",
		When: func(t tick) bool { return t.m.Fails >= t.promoteAfter() && !t.paused() },
		Do:   promotion(TermPromote)},
	// A standby that answers slowly (a starved machine) is not down: a
	// follower sent back to starting could promote while WAL still flows.
	{From: Follower, To: Starting, Reason: "local PostgreSQL is down",
		When: func(t tick) bool { return !t.o.Self.PGUp && !t.o.Self.PGSlow }},
	{From: Follower, To: Follower, Reason: "the leader began a new term: adopting it",
		When: func(t tick) bool {
			p := t.o.Peer
			return p.AgentUp && p.Primary && p.Term > t.o.Self.Term && p.State.IsLeader()
		},
		Do: func(t tick) []Action { return []Action{{Kind: AdoptTerm, Term: t.o.Peer.Term}} }},

	// --- leader: synchronous; degrade when the follower stops answering.
}, leaderRows(Leader), []Row{
	{From: Leader, To: Joining, Reason: "planned switchover: handing over to the follower",
		Consumes: CmdSwitchover,
		When:     func(t tick) bool { return t.o.Cmd.Kind == CmdSwitchover && t.o.Self.FollowerStreaming },
		Do:       handOver},
	// A full disk refuses every write, while the synchronous follower holds
	// the same data and has room: the same hand-over as a switchover.
	{From: Leader, To: Joining, Reason: "this node's disk is full and the follower's is not: handing over",
		When: func(t tick) bool {
			s, p := t.o.Self, t.o.Peer
			return s.DiskFull && s.FollowerStreaming && p.AgentUp && !p.DiskFull && !t.paused()
		},
		Do: handOver},
	// A disk that answers, slowly (an SD card, a failing drive): every
	// write waits for it, and past 10 s without one Kubernetes' controllers
	// lose their leases. A follower seen to flush fast since has every
	// acknowledged write: the same hand-over, nothing lost. The node that
	// handed over follows; it leads again only if the new leader fails, and
	// the new leader hands back only to a follower it sees flush fast,
	// which this one, while its disk is slow, does not. With both disks
	// slow nothing changes (the follower is not seen fast).
	{From: Leader, To: Joining, Reason: "this node's commits are slow and the follower flushes fast: handing over",
		When: func(t tick) bool {
			s, p := t.o.Self, t.o.Peer
			return s.CommitSlow && s.FollowerFast && !s.FollowerSlow && s.FollowerStreaming && p.AgentUp && !p.DiskFull && !t.paused()
		},
		Do: handOver},
	// Before the degrade row: a leader whose own database is down cannot
	// switch replication off (found by the simulation: a hand-over whose
	// follower died left the leader's PostgreSQL stopped, and sync-off
	// failed on it every tick, for ever).
	{From: Leader, To: Starting, Reason: "local PostgreSQL is down",
		When: func(t tick) bool { return !t.o.Self.PGUp }},
	// A follower whose disk is slow holds every synchronous commit: it is
	// left behind as a follower that is down would be (the same new term,
	// the witness's word first); it catches up asynchronously. With both
	// disks slow nothing changes: neither side would do better.
	{From: Leader, To: LeaderAlone, Reason: "the follower's flushes are slow and this node's commits are not: replication now asynchronous",
		When: func(t tick) bool { return t.o.Self.FollowerSlow && !t.o.Self.CommitSlow },
		Do: func(t tick) []Action {
			return []Action{{Kind: NewTerm, Term: t.o.Self.Term + 1, Why: TermAlone}, {Kind: SyncOff}}
		}},
	{From: Leader, To: LeaderAlone, Reason: "follower unhealthy for the whole detection window: replication now asynchronous",
		When: func(t tick) bool { return t.m.Fails >= t.c.FailureThreshold },
		// The term first: no write is acknowledged asynchronously outside
		// a term that says so (found by the simulation: killed between the
		// two, the leader acknowledged writes in its old term, and a
		// follower that promoted later outranked them by term).
		Do: func(t tick) []Action {
			return []Action{{Kind: NewTerm, Term: t.o.Self.Term + 1, Why: TermAlone}, {Kind: SyncOff}}
		}},

	// --- leader alone: asynchronous until the follower has caught up.
}, leaderRows(LeaderAlone), []Row{
	// Its lease not renewed in time (the witness slow or cut off), a
	// leader alone stops serving before the witness can expire it: the
	// follower may take over from then on. It serves again once it holds
	// a lease (the resume row above claims one).
	{From: LeaderAlone, To: LeaderAlone, Reason: "leading alone without the witness's lease: writes stop before it could expire",
		When: func(t tick) bool { return t.leaseNeeded() && !t.o.Witness.Lease && t.o.Self.KineServing },
		Do:   seq(KineStop)},
	// A follower that came back and was lost again before it caught up:
	// the same new term a synchronous leader begins when it degrades, so
	// that a follower that promoted meanwhile (one more than the term it
	// followed) meets this node in the same term, a split decided by the
	// last write, not by the number (found by the simulation: this
	// leader's writes during the partition were archived by term alone).
	//
	// That a follower streamed is also recorded (durably): a leader whose
	// agent restarted before replication was synchronous again forgot it,
	// went on alone in the old term, and the follower's promotion
	// outranked its writes by the number (found by the simulation, seed
	// 837 of 10,000).
	{From: LeaderAlone, To: LeaderAlone, Reason: "a follower streams in this term, or knows it: recorded, so that losing it again begins a new term",
		When: func(t tick) bool { return t.o.Self.WasAlone && (t.o.Self.FollowerStreaming || t.peerKnowsOurTerm()) },
		Do:   seq(Followed)},
	{From: LeaderAlone, To: LeaderAlone, Reason: "the follower that came back is gone again for the whole detection window, and is not rejoining: a new term",
		NewTerm: true,
		When: func(t tick) bool {
			// Its PostgreSQL down, it goes back to starting first (found by
			// the simulation: the term could not be recorded, for ever).
			//
			// A peer that answers and says it is rejoining (it conceded and
			// is copying this node's data) cannot promote before it follows
			// again: it does not stream while it rewinds, but it is not
			// gone. A new term then only disturbs the rejoin it is in the
			// middle of (measured: after a switchover, and after a split
			// the loser lost, a second term began 1.3 s into the rewind,
			// and the control plane lost its leases twice).
			rejoining := t.o.Peer.AgentUp && t.o.Peer.Rejoining
			return (t.m.Followed || !t.o.Self.WasAlone) && t.m.Fails >= t.c.FailureThreshold && t.o.Self.PGUp && !rejoining
		},
		Do: func(t tick) []Action {
			return []Action{{Kind: NewTerm, Term: t.o.Self.Term + 1, Why: TermAlone}}
		}},
	{From: LeaderAlone, To: Leader, Reason: "follower caught up: replication synchronous again",
		When: func(t tick) bool { return t.m.OKs >= t.c.RecoverThreshold && !t.o.Self.FollowerSlow },
		Do:   seq(SyncOn)},
	{From: LeaderAlone, To: Starting, Reason: "local PostgreSQL is down",
		When: func(t tick) bool { return !t.o.Self.PGUp }},
})

// leaderRows come first in both leader states, synchronous or not: a
// split (two leaders of one term) stops writes, is decided once both have
// stopped, and the winner resumes; a winner that the loser's revisions
// outran moves past them.
func leaderRows(s State) []Row {
	rows := []Row{
		// First: the peer waits for this answer before it copies the data.
		{From: s, To: s, Reason: "the peer is about to follow this term: recorded, so that losing it begins a new term",
			Consumes: CmdFollow,
			When: func(t tick) bool {
				return t.o.Cmd.Kind == CmdFollow && t.o.Cmd.Term == t.o.Self.Term && t.o.Self.TermRole == RoleLeader
			},
			Do: seq(Followed)},
		{From: s, To: s, Reason: "both lead the same term (a split): writes stop until it is decided",
			When: func(t tick) bool { return t.sameTermLeaders() && t.o.Self.KineServing },
			Do:   seq(KineStop)},
		{From: s, To: Joining, Reason: "the peer has newer state: archiving and rejoining",
			When: func(t tick) bool { return t.peerOutranks() },
			Do:   rejoin},
		// The peer won the witness's swap while this node cannot see it:
		// it may already serve, so this node stops at once (self-fencing)
		// and rejoins once it sees the peer again.
		{From: s, To: Starting, Reason: "the witness records a newer term claimed by the peer: stopping writes and PostgreSQL, to rejoin",
			When: func(t tick) bool { return t.peerClaimedNewer() && t.o.Self.Primary },
			Do:   seq(KineStop, StopPostgres)},
		{From: s, To: s, Reason: "leading without serving and no split pending: writes resume",
			When: func(t tick) bool {
				return t.o.Self.Primary && !t.o.Self.KineServing && !t.sameTermLeaders() && !t.peerOutranks() && !t.discarding()
			},
			Do: seq(KineLocal)},
		{From: s, To: s, Reason: "the split's loser served revisions past ours: moving past them",
			When: func(t tick) bool { return t.peerRevsAhead() },
			Do:   fencePastPeer},
	}
	if s != LeaderAlone {
		return rows // a synchronous leader's writes are all on its follower
	}
	// Before the peer outranks this node (see peerLeadsNewerTerm; found by
	// the simulation: a link up for one tick, and this leader's writes
	// were archived by the number).
	return slices.Insert(rows, 2, Row{From: s, To: s,
		Reason: "the peer leads a newer term begun while this node led asynchronously: beginning it too, to compare last writes",
		// Its PostgreSQL down, it goes back to starting first (found by
		// the simulation: the new term could not be recorded, for ever).
		When: func(t tick) bool { return t.peerLeadsNewerTerm() && t.o.Self.PGUp && t.o.Self.Primary },
		Do: func(t tick) []Action {
			return []Action{{Kind: KineStop}, {Kind: NewTerm, Term: t.o.Peer.Term, Why: TermAlone}}
		}})
}
