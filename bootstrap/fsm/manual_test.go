package fsm

import (
	"strings"
	"testing"
	"time"
)

// failover: manual: no promotion without an operator's word, and status
// says what the node awaits.
func TestManualFailover(t *testing.T) {
	c := cfg
	c.Manual = true
	_, d := Step(lostLeader, Observation{Now: t0, Self: followerSelf()}, c)
	if d.Changed {
		t.Fatalf("promoted by itself in manual mode: %s", d.Reason)
	}
	if !strings.Contains(d.Waiting, "awaiting an operator") || d.WaitsFor != WaitOperator {
		t.Errorf("waiting %q for %q, want it to say it awaits an operator", d.Waiting, d.WaitsFor)
	}
	_, d = Step(lostLeader, Observation{Now: t0, Self: followerSelf(), Cmd: Command{Kind: CmdPromote}}, c)
	if !d.Changed || d.To != LeaderAlone || !d.Consumed {
		t.Errorf("the operator's promote: %+v", d)
	}
	late := Machine{State: Starting, Since: t0, Born: t0.Add(-time.Hour), Fails: 5}
	_, d = Step(late, Observation{Now: t0, Self: stoppedFollower(4)}, c)
	if d.Changed {
		t.Errorf("a rebooted follower took over by itself in manual mode: %s", d.Reason)
	}
	promoted := followerSelf() // killed after pg_promote, before the term was saved
	promoted.Primary, promoted.ReceiverStreaming = true, false
	_, d = Step(in(Starting), Observation{Now: t0, Self: promoted}, c)
	if !d.Changed || d.Reason != promotionCutReason {
		t.Errorf("a promotion cut short is not finished in manual mode: %+v", d)
	}
}

// An operator promotes a node that has just started: its standby first.
func TestOperatorPromotesAStartingNode(t *testing.T) {
	run(t, []tc{
		{"a rebooted follower promoted by the operator", in(Starting), Observation{Self: stoppedFollower(4), Cmd: Command{Kind: CmdPromote}},
			LeaderAlone, "operator promoted", "start-standby,kine-stop,promote,revision-fence,new-term,kine-local,ensure-slot"},
		{"not while the leader answers, without force: it rejoins it", in(Starting), Observation{Self: stoppedFollower(4), Peer: leaderPeer(), Cmd: Command{Kind: CmdPromote}},
			Joining, "newer state", ""},
	})
}
