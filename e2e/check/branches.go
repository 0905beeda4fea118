package check

import (
	"time"

	"github.com/twonode-edge/twonode/e2e/workload"
)

// Branch is the losing side of one split brain, or a deposed leader's
// last answers: the node, and the stretch in which answers from its
// database came from a history the pair later set aside.
type Branch struct {
	Node     string
	From, To time.Time
}

// DBOf says where a node's Kine wrote at a time (Samples.DBOf); nil: each
// node's Kine to its own database.
type DBOf func(node string, t time.Time) string

// In reports whether op was answered from the branch node's database
// within the branch: through that node's API server, or through the other
// node's while its Kine wrote there (a follower's Kine writes to the
// leader's database; measured: in a flapping link the follower's API
// server acknowledged an update that the leader, alone by then, committed
// and later archived).
func (b Branch) In(op workload.Op, dbOf DBOf) bool {
	if op.Return.Before(b.From) || op.Return.After(b.To) {
		return false
	}
	n := NodeOf(op.Endpoint)
	return n == b.Node || dbOf != nil && (dbOf(n, op.Call) == b.Node || dbOf(n, op.Return) == b.Node)
}

// NodeOf is the node of a workload endpoint: the matrix's workload has
// node a's API server as endpoint 0 and node b's as endpoint 1.
func NodeOf(endpoint int) string { return []string{"a", "b"}[endpoint] }

// BranchLead is how long before the pair was seen to break a loser may
// already have answered from its own branch: a PostgreSQL primary shows a
// commit that waits for its synchronous standby to other sessions, and
// the agents need the detection window (3 × 500 ms) to see a fault.
const BranchLead = 3 * time.Second

// ArchiveFile is one split-brain archive a node wrote: its node and its
// modification time (the kernel's, right under clock skew too).
type ArchiveFile struct {
	Node    string    `json:"node"`
	Written time.Time `json:"written"`
}

// Branches are the branches the archives end, one per file: from
// BranchLead before the pair last broke up ahead of the file's writing to
// the loser's first following after it.
func Branches(files []ArchiveFile, ss Samples) []Branch {
	var out []Branch
	for _, f := range files {
		out = append(out, Branch{Node: f.Node, From: ss.BrokeBefore(f.Written).Add(-BranchLead), To: ss.Rejoined(f.Node, f.Written)})
	}
	return out
}

// Deposed is the branch of the node that led before the fault when the
// other one leads at the end: from BranchLead before the fault to its
// first following after it. A leader cut off (frozen, say) and replaced
// answers from its own, discarded history until its agent sees the new
// term: measured, a frozen leader resumed and answered a read and a
// refused precondition from before its freeze for about half a second.
// It archives nothing because it committed nothing (its commits wait for
// the synchronous standby that left). Self-fencing with a lease would
// close that window (later).
func Deposed(fault time.Time, ss Samples) (Branch, bool) {
	before, after := ss.LeaderAt(fault), ss.Leader()
	if before == "" || after == "" || before == after {
		return Branch{}, false
	}
	return Branch{Node: before, From: fault.Add(-BranchLead), To: ss.Rejoined(before, fault)}, true
}

// WithoutBranches sets aside the losers' branches: every archived write
// (values are unique per write, so the archive names the write whichever
// API server took it; a deletion, by the revision it removed and only
// when answered from the loser's database within its branch), every
// operation that saw one (a read of its value, an update or delete
// conditioned on its resourceVersion), and the reads and refusals
// answered from a loser's database within its branch (made on a history
// the pair discarded; the frozen-leader scenario saw a precondition
// refused on a commit later archived). A write a loser acknowledged that
// is not archived was replicated before the split and stays.
func WithoutBranches(ops []workload.Op, archive workload.Archive, branches []Branch, dbOf DBOf) []workload.Op {
	inBranch := func(op workload.Op) bool {
		for _, b := range branches {
			if b.In(op, dbOf) {
				return true
			}
		}
		return false
	}
	// A value names one write; a deletion names the revision it removed,
	// which both sides of a split may have deleted on their own (measured:
	// the winner's delete of revision 250 was taken for the loser's), so a
	// deletion counts as archived only if the loser's database answered it.
	archived := func(op workload.Op) bool {
		return op.MayHaveHappened() && archive.Has(op) && (op.Kind != workload.KindDelete || inBranch(op))
	}
	values := map[string]bool{}
	rvs := map[string]bool{}
	for _, op := range ops {
		if archived(op) {
			if op.Value != "" { // a deletion has none: no read that found nothing saw it
				values[op.Value] = true
			}
			if op.OutRV != "" {
				rvs[op.OutRV] = true
			}
		}
	}
	var kept []workload.Op
	for _, op := range ops {
		switch {
		case archived(op):
		case !op.MayHaveHappened() && inBranch(op):
		case op.Kind == workload.KindGet && values[op.OutValue]:
		case op.IfRV != "" && rvs[op.IfRV]:
		default:
			kept = append(kept, op)
		}
	}
	return kept
}

// Losers are the nodes whose datastore since a split was thrown away, and
// with it their components' renewals: each node that wrote an archive,
// and, after a stretch in which both led alone, the one that does not
// lead at the end (a split's loser with nothing to archive is one too:
// measured, the one-way loser's controller manager went 17.9 s unrenewed).
func Losers(files []ArchiveFile, ss Samples) map[string]bool {
	losers := map[string]bool{}
	for _, f := range files {
		losers[f.Node] = true
	}
	if ss.DualLeader() > 0 { // a split, decided for the leader at the end
		switch ss.Leader() {
		case "a":
			losers["b"] = true
		case "b":
			losers["a"] = true
		}
	}
	return losers
}
