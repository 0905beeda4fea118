package fsm

import "fmt"

// Refusal is the answer to an operator's or the peer's command that no
// row of the node's state handles: the decision not to act, with its
// reason, is part of the table too (`twonode fsm` prints both). A refusal
// marked NoChange says the command's effect already holds: the caller
// answers success, having changed nothing.
type Refusal struct {
	State    State
	Cmd      CommandKind
	Why      string
	NoChange bool
}

// Refusals lists, per state and command, why the command changes nothing.
var Refusals = []Refusal{
	{Follower, CmdPromote, "the leader's database still answers; if you are sure it is down, use --force (a split brain's writes are archived, not lost)", false},
	{LeaderAlone, CmdSwitchover, "the follower has not caught up (replication is asynchronous); a switchover now could lose writes", false},
	{Leader, CmdSwitchover, "the follower is not streaming", false},
	{Follower, CmdSwitchover, "this node is the follower: run `twonode switchover` on the leader", false},
	{Leader, CmdPromote, "this node already leads", true},
	{LeaderAlone, CmdPromote, "this node already leads", true},
	{Leader, CmdForcePromote, "this node already leads", true},
	{LeaderAlone, CmdForcePromote, "this node already leads", true},
	// A hand-over whose answer was lost is asked again: the follower that
	// took over answers that it did (issue: a reflected request would get
	// the same answer; the peer messages' binding is the wire's work).
	{Leader, CmdHandover, "this node already leads: the hand-over took effect", true},
	{LeaderAlone, CmdHandover, "this node already leads: the hand-over took effect", true},
	{Leader, CmdFollow, "this node leads another term than the one asked: read its status again", false},
	{LeaderAlone, CmdFollow, "this node leads another term than the one asked: read its status again", false},
	{Follower, CmdFollow, "this node does not lead", false},
	{Joining, CmdFollow, "this node does not lead", false},
	{Starting, CmdFollow, "this node does not lead yet", false},
	{Starting, CmdHandover, "this node is not a follower yet", false},
	{Joining, CmdHandover, "this node is still copying from the leader", false},
}

// RefusalFor is the table's answer to cmd in state s; ok is false when no
// entry names them.
func RefusalFor(s State, cmd CommandKind) (r Refusal, ok bool) {
	for _, r := range Refusals {
		if r.State == s && r.Cmd == cmd {
			return r, true
		}
	}
	return Refusal{State: s, Cmd: cmd, Why: fmt.Sprintf("this node is %s", s)}, false
}

// Refuse says why cmd changes nothing in state s.
func Refuse(s State, cmd CommandKind) string {
	r, _ := RefusalFor(s, cmd)
	return "refused: " + r.Why
}
