package fsm

import "fmt"

// Refusal is the answer to an operator's or the peer's command that no
// row of the node's state handles: the decision not to act, with its
// reason, is part of the table too (`twonode fsm` prints both).
type Refusal struct {
	State State
	Cmd   CommandKind
	Why   string
}

// Refusals lists, per state and command, why the command changes nothing.
var Refusals = []Refusal{
	{Follower, CmdPromote, "the leader's database still answers; if you are sure it is down, use --force (a split brain's writes are archived, not lost)"},
	{LeaderAlone, CmdSwitchover, "the follower has not caught up (replication is asynchronous); a switchover now could lose writes"},
	{Leader, CmdSwitchover, "the follower is not streaming"},
	{Follower, CmdSwitchover, "this node is the follower: run `twonode switchover` on the leader"},
	{Leader, CmdPromote, "this node already leads"},
	{LeaderAlone, CmdPromote, "this node already leads"},
	{Starting, CmdHandover, "this node is not a follower yet"},
	{Joining, CmdHandover, "this node is still copying from the leader"},
}

// Refuse says why cmd changes nothing in state s.
func Refuse(s State, cmd CommandKind) string {
	for _, r := range Refusals {
		if r.State == s && r.Cmd == cmd {
			return "refused: " + r.Why
		}
	}
	return fmt.Sprintf("refused: this node is %s", s)
}
