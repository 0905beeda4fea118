// Package fsm is twonode's decision core: a pure function from
// (machine, observation, now) to (machine, decision). It does no I/O,
// starts no goroutines and never reads the wall clock: the daemon gathers
// observations, calls Step, runs the decided actions in order, and feeds
// their results back as the next observation.
//
// States are guarantees ("this node is a primary with a synchronous
// follower"); actions belong to transitions. Every transition is one row of
// the table in table.go, with the reason that becomes its log line and its
// label in the generated diagram.
package fsm

import "time"

// State is what a node guarantees while it is in it.
type State string

const (
	// Starting: nothing decided yet. PostgreSQL and Kine are left as found
	// (an agent restart must not disturb a running datastore).
	Starting State = "starting"
	// Joining: this node lost (or never was a member) and is copying from
	// the peer: archive what only it has, rewind or base backup, then stream.
	Joining State = "joining"
	// Follower: a standby streaming from the peer; Kine writes to the peer.
	Follower State = "follower"
	// Leader: the primary, with the follower caught up and replication
	// synchronous: an acknowledged write is on both disks.
	Leader State = "leader"
	// LeaderAlone: the primary without a healthy follower; replication is
	// asynchronous so that writes do not hang.
	LeaderAlone State = "leader_alone"
)

// States lists every state, in the order the diagram shows them.
var States = []State{Starting, Joining, Follower, Leader, LeaderAlone}

// IsLeader reports whether the state serves writes from this node's database.
func (s State) IsLeader() bool { return s == Leader || s == LeaderAlone }

// Role is what a node was in a term: the one writing, or the one following.
type Role string

const (
	RoleNone     Role = ""
	RoleLeader   Role = "leader"
	RoleFollower Role = "follower"
)

// TermKind says why a term began. Every change of who is writing starts a
// new term, so a node that missed a term has lost by definition.
type TermKind string

const (
	TermForm       TermKind = "form"       // the first leader of a new pair
	TermPromote    TermKind = "promote"    // the follower took over from a leader it could not reach
	TermAlone      TermKind = "alone"      // the leader went on without its follower
	TermSwitchover TermKind = "switchover" // a planned hand-over that lost nothing
)

// Self is what the daemon observed of this node.
type Self struct {
	Name      string
	Preferred bool // this node leads when a new pair forms
	Member    bool // has been part of the pair (persisted state says so)
	HasData   bool // a PostgreSQL data directory exists
	Term      uint64
	TermRole  Role
	ForkRev   int64 // Kine revision when the current term began (for the split-brain archive)
	// HighRev is the highest Kine revision this node's data held before a
	// lost split discarded it (clients of that branch saw revisions up to
	// it); FencedPast is the highest such revision of the peer's that this
	// node's revisions have been moved past. Both persisted.
	HighRev, FencedPast int64
	// DBTerm is the newest term recorded in this node's database
	// (twonode_terms; on a standby, replicated from the leader), read while
	// it is a standby: a promotion begins the term after the newest of
	// Term and DBTerm.
	DBTerm uint64
	// KineRev is max(kine.id) here, read only when the peer reports a
	// HighRev this node has not fenced past yet (0 otherwise).
	KineRev int64

	PGUp bool
	// PGSlow: the local PostgreSQL's status did not answer in time, beyond
	// the patience the agent has with it: busy or hung, not known down.
	PGSlow            bool
	Primary           bool // PostgreSQL is running and not in recovery
	FollowerStreaming bool // primary: the peer's walsender has caught up and streams
	// SyncOn: (primary) replication is synchronous: no write is
	// acknowledged before the follower has it.
	SyncOn            bool
	ReceiverStreaming bool // standby: the WAL receiver streams from the peer
	// PeerHeard: replication brought a message from the peer's PostgreSQL
	// within the last two probe intervals (a WAL record, a keepalive or a
	// standby reply): proof that the peer lives even when the agents'
	// probes time out on a starved machine.
	PeerHeard bool
	ReplayLSN uint64
	// LastCommit is the newest commit; while a split is decided, the newest
	// write not made on a timer (the agent's lastWrite).
	LastCommit time.Time

	PausedUntil time.Time // the effective pause (this node's or the peer's, the later)
	// RecentSplits is how many splits this node lost in the last hour
	// (persisted): each doubles its patience before promoting (flap damping).
	RecentSplits int
	// DiskFull: the data filesystem has too little space left for writes.
	DiskFull bool
	// CommitSlow: (primary) this node's own commits have taken longer than
	// timers.slow_commit for timers.slow_for: its disk answers, slowly.
	CommitSlow bool
	// FollowerSlow: (primary) the follower's flushes took longer than
	// timers.slow_commit for timers.slow_for, and have not been fast for a
	// while since (damped: a follower that is slow now and then is left
	// asynchronous rather than taken back at every fast moment).
	FollowerSlow bool
	// FollowerFast: (primary, while its commits are slow) since they
	// turned slow, the follower flushed WAL written after that, and it
	// has not been seen more than half of timers.slow_commit behind for a
	// while: evidence, not the absence of it, that it would do better.
	FollowerFast bool
	// KineServing: this node's Kine runs against this node's database
	// (clients write here).
	KineServing bool
	// KineOnPeer: this node's Kine runs against the peer's database (as a
	// follower's does): nothing of this node's own data is served.
	KineOnPeer bool
	// Intent is a transition that began and did not finish (persisted
	// before its first action, cleared after its last): the agent died
	// half-way. Nil when none.
	Intent *Intent
	// WasAlone: this node's current term is one of leading alone, and no
	// follower has streamed in it since (persisted): a follower cannot
	// have promoted past it, so a restart goes on in the same term.
	WasAlone bool
	// WasAsync: this node's replication was asynchronous when it last
	// changed it (persisted): it acknowledged writes its follower may lack.
	WasAsync bool
}

// Intent is what the agent records, durably, before the first action of a
// transition that changes this node's data or role, and clears when the
// last action succeeded. An agent that finds one on start died half-way:
// the Starting rows finish the transition (when its irreversible step,
// read from PostgreSQL's real role, was reached) or forget it.
type Intent struct {
	From   State  `json:"from"`
	To     State  `json:"to"`
	Reason string `json:"reason"`
	// Term is the term the transition begins (NewTerm), 0 if none.
	Term uint64 `json:"term,omitempty"`
	// Promotes: it promotes this node's PostgreSQL.
	Promotes bool `json:"promotes,omitempty"`
	// Discards: it archives, rewinds or replaces this node's data (a lost
	// split, a hand-over, a new member's copy). From the moment it is
	// recorded this node has conceded: its data never serves again as it
	// is, only as a copy of the peer's.
	Discards bool `json:"discards,omitempty"`
	// Copied: the rewind or base backup finished (the agent records it
	// after the action succeeded): the data is a whole copy of the peer's
	// again, a standby like any other, and the node is no longer bound to
	// wait for that peer.
	Copied bool `json:"copied,omitempty"`
}

// Peer is what the daemon observed of the other node in this tick.
type Peer struct {
	Name     string
	AgentUp  bool // the peer's agent answered an authenticated status call
	PGUp     bool // the peer's PostgreSQL answered a SQL ping from here
	State    State
	Member   bool
	Term     uint64
	TermRole Role
	Primary  bool
	// LastCommit is the peer's most recent commit, already converted to this
	// node's clock with the offset both agents measured while paired.
	LastCommit time.Time
	ForkRev    int64
	// HighRev and FencedPast: the peer's own (see Self).
	HighRev, FencedPast int64
	// OldestWAL: (a primary whose follower does not stream) where the
	// oldest WAL segment it still keeps begins; 0 when not reported.
	OldestWAL   uint64
	DiskFull    bool // the peer's data filesystem is full
	KineServing bool // the peer's Kine writes to the peer's own database
	// Rejoining: the peer has conceded (its Intent discards its data) and
	// its Kine is stopped: it will not serve again before it follows.
	Rejoining bool
}

// CommandKind is an operator's or the peer's request, handled by a row.
type CommandKind string

const (
	CmdNone         CommandKind = ""
	CmdPromote      CommandKind = "promote"       // operator: the leader is gone, take over
	CmdForcePromote CommandKind = "force-promote" // operator: take over even though the leader answers
	CmdSwitchover   CommandKind = "switchover"    // operator, on the leader: hand over, losing nothing
	CmdHandover     CommandKind = "handover"      // the peer (leader) asks this follower to take over
	CmdFollow       CommandKind = "follow"        // the peer is about to adopt this leader's term (Command.Term)
)

// Command is at most one request per tick.
type Command struct {
	Kind CommandKind
	LSN  uint64 // handover: promote only after replaying this far
	Term uint64 // follow: the term the peer adopts
}

// Observation is everything Step may look at.
type Observation struct {
	Now     time.Time
	Self    Self
	Peer    Peer
	Cmd     Command
	Witness Witness
}

// Config holds the core's tunables; the daemon fills it from its config.
type Config struct {
	FailureThreshold int // consecutive failed probes before acting
	RecoverThreshold int // consecutive good probes before trusting the follower again
	// HeardFor: how many ticks a sign of life from replication keeps
	// counting (Self.PeerHeard), rounded up. A run of good probes longer
	// than that holds evidence gathered after the run began.
	HeardFor    int
	BootGrace   time.Duration // how long a starting member waits for its peer
	JoinTimeout time.Duration // how long Joining waits for streaming before starting over
	// WitnessWait: with a witness configured that cannot be reached, no
	// node begins a term or leads alone (policy wait); otherwise the pair
	// decides as without a witness (policy promote).
	WitnessWait bool
	// WitnessDefer: with a witness that answers, a follower waits this
	// many more failed probes before it takes over, so that a leader
	// that still reaches the witness claims first and goes on alone (it
	// holds every write, and its clients may already have read commits
	// still waiting for the follower; measured end to end: the follower
	// won the race and those reads saw writes the pair then archived).
	WitnessDefer int
	// Manual: no promotion without an operator's command (failover:
	// manual); a hand-over, and finishing a promotion cut short, still run.
	Manual bool
}

// Machine is the core's memory between ticks. The daemon persists only
// what must survive a restart (term, role, pause) elsewhere; counters start
// from zero after a restart on purpose: a restarted agent re-observes.
type Machine struct {
	State State
	Since time.Time // when State was entered
	Fails int       // consecutive ticks the peer looked unhealthy
	OKs   int       // consecutive ticks the peer looked healthy
	Born  time.Time // when the agent started (boot grace counts from here)
	// Followed: (leader alone) a follower streamed since this node's
	// current term began; losing it again begins a new term, as a
	// synchronous leader's degrade does.
	Followed bool
	// FailedJoins counts the joins since this node last followed that
	// could not stream (a row with FailedJoin ended them; kept through
	// starting and joining only): the next join copies the leader's data
	// afresh.
	FailedJoins int
}

// New returns the machine of a freshly started agent.
func New(now time.Time) Machine {
	return Machine{State: Starting, Since: now, Born: now}
}
