package fsm

// ActionKind names one step the daemon performs for a transition. Every
// action is idempotent, so a transition whose actions failed half-way is
// simply decided and run again on a later tick.
type ActionKind string

const (
	// InitDB creates a fresh cluster. The executor refuses when data exists:
	// a restart never runs initdb over existing data.
	InitDB ActionKind = "initdb"
	// StartPrimary starts PostgreSQL as a primary (clearing replication and
	// synchronous settings a clone inherited). No-op when already so.
	StartPrimary ActionKind = "start-primary"
	// StartStandby starts PostgreSQL as a standby of the peer.
	StartStandby ActionKind = "start-standby"
	// BaseBackup replaces the local data with a copy of the peer's.
	BaseBackup ActionKind = "base-backup"
	// Archive saves, before anything is discarded, the Kine rows this node
	// has and the peer does not: the losing side of a split brain.
	Archive ActionKind = "archive"
	// Rewind makes this node's data a standby of the peer: pg_rewind, and a
	// base backup when rewinding is impossible.
	Rewind ActionKind = "rewind"
	// Promote turns the local standby into a primary (pg_promote) and clears
	// the replication and synchronous settings inherited from the old leader.
	Promote ActionKind = "promote"
	// Fence makes Kine revisions jump past anything the old leader may have
	// handed out, so that no client ever sees a revision go backwards; with
	// Rev, past a split's loser's revisions up to Rev (and records it).
	Fence ActionKind = "revision-fence"
	// SyncOn / SyncOff switch synchronous replication to the peer.
	SyncOn  ActionKind = "sync-on"
	SyncOff ActionKind = "sync-off"
	// EnsureSlot creates the peer's replication slot on this primary.
	EnsureSlot ActionKind = "ensure-slot"
	// KineLocal / KinePeer point this node's Kine at this node's or the
	// peer's PostgreSQL; KineStop stops it (no writes through this node).
	KineLocal ActionKind = "kine-local"
	KinePeer  ActionKind = "kine-peer"
	KineStop  ActionKind = "kine-stop"
	// NewTerm begins term Term (of kind Kind) with this node writing, and
	// persists it locally and in the database.
	NewTerm ActionKind = "new-term"
	// AdoptTerm records the peer's term, with this node as follower.
	AdoptTerm ActionKind = "adopt-term"
	// Handover, on the leader: stop writes cleanly, hand the last WAL to the
	// follower and ask it to take over.
	Handover ActionKind = "handover"
	// StopPostgres stops the local PostgreSQL cleanly.
	StopPostgres ActionKind = "stop-postgres"
	// ClearIntent forgets an interrupted transition that left nothing to
	// finish (see Intent).
	ClearIntent ActionKind = "clear-intent"
	// Followed records that a follower streams in this leader's term: the
	// follower may promote into the next term, so a restart, or the
	// follower's loss, begins it here too (see Self.WasAlone).
	Followed ActionKind = "followed"
	// Announce, on a node about to copy the leader's data or adopt its
	// term Term, asks the leader to record first that it is followed in
	// it (Followed, there): the leader then knows that this node may
	// promote into the next term, whatever happens to the link next.
	Announce ActionKind = "announce-follow"
	// WitnessClaim records at the witness, by compare-and-swap from what
	// this node last read, that it leads term Term alone, and takes the
	// lease it must hold while it does (see Witness). Lost to the other
	// node, it fails, and the row with it.
	WitnessClaim ActionKind = "witness-claim"
	// WitnessRelease gives the lease back: replication is synchronous
	// again, the follower has every acknowledged write.
	WitnessRelease ActionKind = "witness-release"
)

// Action is one step with its parameters.
type Action struct {
	Kind ActionKind
	Term uint64   // NewTerm, AdoptTerm: the term to reach (max with the current one)
	Why  TermKind // NewTerm
	LSN  uint64   // Promote after a handover: replay at least this far first
	Rev  int64    // Fence: pass the peer's revisions up to Rev
	// Split (Archive): this node lost a split brain (two leaders of one
	// term), which damps its next promotion; otherwise it is an old leader
	// that was merely away, whose rows in flight are kept all the same.
	Split bool
	// Kill (KineStop): at once, without the grace a stop gives requests in
	// flight. A promotion's Kine points at a leader that is gone or going:
	// nothing it carries can be answered any more, and the grace was 0.3 s
	// of every take-over (measured by the failover timeline).
	Kill bool
}

// WaitKind is what a row that may not fire now waits for.
type WaitKind string

const (
	WaitWitness  WaitKind = "witness"  // the witness forbids it (a lease, a newer claim, unreachable)
	WaitOperator WaitKind = "operator" // failover: manual
)

// Decision is what Step decided for one tick.
type Decision struct {
	From, To State
	Reason   string // the row's reason: the log line and the diagram label
	Detail   string // facts of this tick that explain the row (never secrets)
	Actions  []Action
	Changed  bool // a row fired (a transition, possibly to the same state)
	// Waiting: the first row whose guard held but which the witness did
	// not let fire, and why (for status; "" when none).
	Waiting  string
	WaitsFor WaitKind // whom Waiting waits for ("" when nothing waits)
	Consumed bool     // the tick's command was handled by the row
	// Hold is the machine to keep when an action fails: the old state with
	// this tick's probe counters, so the row is decided again next tick.
	Hold Machine
}

// Intent is what the agent records before running the decision's actions:
// nil for a decision that changes neither this node's data nor its role
// (those are simply decided again after a crash). A loser of a split
// (Archive) concedes from the start; a hand-over or a copy discards only
// from its Rewind or BaseBackup on, which the agent marks when it gets
// there (see DiscardsData).
func (d Decision) Intent() *Intent {
	in := Intent{From: d.From, To: d.To, Reason: d.Reason}
	record := false
	for _, a := range d.Actions {
		switch a.Kind {
		case Promote:
			in.Promotes, record = true, true
		case Archive:
			in.Discards, record = true, true
		case Rewind, BaseBackup, Handover:
			record = true
		case NewTerm:
			in.Term = a.Term
		}
	}
	if !record {
		return nil
	}
	return &in
}

// DiscardsData: the action replaces this node's data with the peer's.
func (k ActionKind) DiscardsData() bool { return k == Rewind || k == BaseBackup }
