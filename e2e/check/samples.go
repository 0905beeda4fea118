package check

import (
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

// Sample is one reading of both agents' status, as the fault matrix's
// monitor takes it every 100 ms over their local API sockets. A state ""
// is a node whose agent did not answer (powered off, frozen, restarting).
type Sample struct {
	At time.Time `json:"at"`
	A  string    `json:"a"` // node a's fsm state
	B  string    `json:"b"`
	// ADB, BDB: the node whose database the node's Kine writes to ("" if
	// unknown or stopped).
	ADB string `json:"a_db,omitempty"`
	BDB string `json:"b_db,omitempty"`
	// AVIP, BVIP: the pair's address was on the node's interface at either
	// of two reads from its kernel, one just before and one just after the
	// node's status. AVIPHeld, BVIPHeld: at both.
	AVIP     bool `json:"a_vip,omitempty"`
	BVIP     bool `json:"b_vip,omitempty"`
	AVIPHeld bool `json:"a_vip_held,omitempty"`
	BVIPHeld bool `json:"b_vip_held,omitempty"`
}

// State is node's state in s.
func (s Sample) State(node string) string {
	if node == "a" {
		return s.A
	}
	return s.B
}

// DB is the node whose database node's Kine wrote to in s.
func (s Sample) DB(node string) string {
	if node == "a" {
		return s.ADB
	}
	return s.BDB
}

// Healthy: one synchronous leader and one follower. The agent enters
// "leader" only with synchronous replication on and the follower caught
// up, so this is "HA restored".
func (s Sample) Healthy() bool {
	l, f := string(fsm.Leader), string(fsm.Follower)
	return (s.A == l && s.B == f) || (s.A == f && s.B == l)
}

// Dual: both nodes accept writes on their own database. A "leader"
// commits only with its synchronous standby, which cannot then lead too;
// so only a pair of leader_alone nodes writes on both sides, and only
// while both Kines serve (two leaders of one term stop theirs while the
// split is decided). An agent that does not answer counts as not
// accepting, which is exact for a powered-off or frozen node (its
// PostgreSQL is gone or stopped with it).
func (s Sample) Dual() bool {
	alone := string(fsm.LeaderAlone)
	return s.A == alone && s.B == alone && s.ADB == "a" && s.BDB == "b"
}

// leader is the leader of a healthy sample.
func (s Sample) leader() string {
	if s.A == string(fsm.Leader) {
		return "a"
	}
	return "b"
}

// Samples are a run's samples in the order taken.
type Samples []Sample

// DBOf is the node whose database node's Kine wrote to at t, by the last
// sample at or before t ("" if none is known).
func (ss Samples) DBOf(node string, t time.Time) string {
	for i := len(ss) - 1; i >= 0; i-- {
		if !ss[i].At.After(t) {
			return ss[i].DB(node)
		}
	}
	return ""
}

// DualLeader is the total time both nodes accepted writes.
func (ss Samples) DualLeader() time.Duration {
	var d time.Duration
	for i := 0; i+1 < len(ss); i++ {
		if ss[i].Dual() {
			d += ss[i+1].At.Sub(ss[i].At)
		}
	}
	return d
}

// Leader is the leader of the last healthy sample ("" if none).
func (ss Samples) Leader() string {
	return ss.LeaderAt(time.Time{})
}

// LeaderAt is the leader of the last healthy sample at or before t ("" if
// none); a zero t: of the last healthy sample.
func (ss Samples) LeaderAt(t time.Time) string {
	for i := len(ss) - 1; i >= 0; i-- {
		if (t.IsZero() || !ss[i].At.After(t)) && ss[i].Healthy() {
			return ss[i].leader()
		}
	}
	return ""
}

// Rejoined is when node was first seen following again after from (the
// last sample's time if never). A node that followed at from must leave
// that state first.
func (ss Samples) Rejoined(node string, from time.Time) time.Time {
	left := false
	for _, s := range ss {
		if !s.At.After(from) {
			continue
		}
		if s.State(node) != string(fsm.Follower) {
			left = true
		} else if left {
			return s.At
		}
	}
	if len(ss) == 0 {
		return from
	}
	return ss[len(ss)-1].At
}

// BrokeBefore is when the pair last stopped being healthy at or before t:
// the first sample after the last healthy one (the first sample if the
// pair was never healthy before t).
func (ss Samples) BrokeBefore(t time.Time) time.Time {
	if len(ss) == 0 {
		return t
	}
	broke := ss[0].At
	for i := 0; i+1 < len(ss) && !ss[i].At.After(t); i++ {
		if ss[i].Healthy() {
			broke = ss[i+1].At
		}
	}
	return broke
}

// Changes keeps the first sample of each run of equal readings and the
// last sample: what a recording needs, since every question above is
// answered by the last sample at or before a time, or by the first of a
// run (the matrix samples every 100 ms; a run of minutes changes a few
// dozen times).
func (ss Samples) Changes() Samples {
	var out Samples
	for i, s := range ss {
		same := func(o Sample) bool { o.At = s.At; return o == s }
		if i == 0 || i == len(ss)-1 || !same(ss[i-1]) {
			out = append(out, s)
		}
	}
	return out
}

// States are states as the agents' status reports them (strings), for
// e2e/cluster's waits.
func States(states ...fsm.State) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

// Is reports whether node's state in s is one of states.
func (s Sample) Is(node string, states ...fsm.State) bool {
	for _, st := range states {
		if s.State(node) == string(st) {
			return true
		}
	}
	return false
}
