package fsm

import "fmt"

// Witness is what this node last learned from the pair's witness, an etcd
// cluster both nodes reach (bootstrap/witness). The zero value is "no
// witness configured": every rule below then leaves the table as it is.
type Witness struct {
	On        bool   // a witness is configured
	Reachable bool   // its last answer came within the request timeout
	Term      uint64 // the term record: the newest term any node claimed there
	By        string // the node that claimed it
	AloneBy   string // the node that leads alone under a live lease ("" none)
	// Lease: this node holds a lease whose deadline, on its own monotonic
	// clock, is still ahead (the witness cannot have expired it yet).
	Lease bool
}

// The witness's rules are applied by Step to every row, rather than
// written into each: any row that leads this node into leader_alone (it
// will acknowledge writes its follower may lack) first claims that term at
// the witness (WitnessClaim, a compare-and-swap that also takes the lease),
// and does not fire when the witness forbids it; a row from leader_alone
// to leader (synchronous again) gives the lease back. The rows that act on
// the witness's word (a newer term claimed by the peer, a lease lost) are
// in the table.

// witnessUsed: a witness is configured and answered: its word binds.
func (t tick) witnessUsed() bool { return t.o.Witness.On && t.o.Witness.Reachable }

// leaseNeeded: leading alone needs the witness's lease, unless the witness
// cannot be reached and the policy is to go on without it.
func (t tick) leaseNeeded() bool {
	w := t.o.Witness
	return w.On && (w.Reachable || t.c.WitnessWait)
}

// peerClaimedNewer: the witness records a term newer than this node's,
// claimed by the other node: this node lost, whatever it sees of the peer.
func (t tick) peerClaimedNewer() bool {
	w := t.o.Witness
	return t.witnessUsed() && w.Term > t.o.Self.Term && w.By != t.o.Self.Name
}

// witnessRefusal says why the witness does not let this node lead alone
// in term `term` ("" when it does): nobody leads while another node holds
// the lease; a node that starts alone does not take over when the witness
// knows a newer term than its own; and a new pair forms alone only on a
// witness with no record (a record means a pair under this prefix exists,
// and a node that cannot see its peer cannot know it is not that pair's
// follower).
func (t tick) witnessRefusal(r Row, term uint64) string {
	w, s := t.o.Witness, t.o.Self
	switch {
	case !w.On:
		return ""
	case !w.Reachable && t.c.WitnessWait:
		return "the witness cannot be reached and the policy is to wait"
	case !w.Reachable:
		return "" // policy promote: as without a witness
	case w.AloneBy != "" && w.AloneBy != s.Name:
		return fmt.Sprintf("%s leads alone under the witness's lease", w.AloneBy)
	case r.From == Starting && w.Term > max(s.Term, s.DBTerm) && w.By != s.Name:
		// A running follower takes over once the leader's lease expired
		// (that leader stopped serving before it could); a node that
		// starts alone does not know whether its peer went on without it.
		return fmt.Sprintf("the witness records term %d (by %s), newer than this node's %d: waiting for the peer, which may have acknowledged writes this node lacks",
			w.Term, w.By, max(s.Term, s.DBTerm))
	case w.Term > term || (w.Term == term && w.By != s.Name):
		return fmt.Sprintf("the witness records term %d (by %s)", w.Term, w.By)
	case r.To == LeaderAlone && r.From == Starting && !s.Member && w.Term > 0 && !t.o.Peer.AgentUp:
		return fmt.Sprintf("forming a pair alone, but the witness records term %d (by %s) under this pair's prefix", w.Term, w.By)
	}
	return ""
}

// withWitness applies the witness's rules to a row that fired (see the
// comment above). It reports why the row must not fire, if so.
func (t tick) withWitness(r Row, acts []Action) ([]Action, string) {
	if !t.o.Witness.On {
		return acts, ""
	}
	if r.From == LeaderAlone && r.To == Leader && t.o.Witness.Lease {
		return append(acts, Action{Kind: WitnessRelease}), ""
	}
	term, begins := uint64(0), false
	for _, a := range acts {
		if a.Kind == NewTerm {
			term, begins = a.Term, true
		}
	}
	serves := r.To == LeaderAlone && servesAfter(acts, t.o.Self.KineServing)
	if !begins && !serves {
		return acts, ""
	}
	if !begins {
		term = t.o.Self.Term // leading alone on in this node's term
	}
	if why := t.witnessRefusal(r, term); why != "" {
		return nil, why
	}
	if !t.witnessUsed() || (!begins && t.o.Witness.Lease) {
		return acts, ""
	}
	return append([]Action{{Kind: WitnessClaim, Term: term}}, acts...), ""
}

// promotesByItself: the row promotes this node's standby without an
// operator's or the leader's word (failover: manual forbids it). A
// promotion cut short after pg_promote is finished: it is already done.
func promotesByItself(r Row, acts []Action) bool {
	if r.Consumes != CmdNone || r.From == Starting && r.Reason == promotionCutReason {
		return false
	}
	for _, a := range acts {
		if a.Kind == Promote {
			return true
		}
	}
	return false
}

// servesAfter: after acts, this node's Kine writes to its own database.
func servesAfter(acts []Action, now bool) bool {
	for _, a := range acts {
		switch a.Kind {
		case KineLocal:
			now = true
		case KineStop, KinePeer:
			now = false
		}
	}
	return now
}
