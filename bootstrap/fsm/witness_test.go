package fsm

import (
	"strings"
	"testing"
	"time"
)

// A witness that answered: term 4, claimed by a (the leader of the
// helpers), nobody alone.
func witnessAt(term uint64, by string) Witness {
	return Witness{On: true, Reachable: true, Term: term, By: by}
}
func aloneAt(term uint64, by string) Witness { w := witnessAt(term, by); w.AloneBy = by; return w }
func leased(w Witness) Witness               { w.Lease = true; return w }
func unreachable() Witness                   { return Witness{On: true} }

// lostLeader: the follower has failed every probe of the leader.
var lostLeader = Machine{State: Follower, Fails: 3, Since: t0, Born: t0.Add(-time.Hour)}

func TestWitness(t *testing.T) {
	follower := followerSelf()
	late := Machine{State: Starting, Since: t0, Born: t0.Add(-time.Minute), Fails: 5}
	born := Machine{State: Starting, Since: t0, Born: t0}
	run(t, []tc{
		{"the follower claims its promotion at the witness first", lostLeader, Observation{Self: follower, Witness: witnessAt(4, "a")},
			LeaderAlone, "promoting", "witness-claim,kine-stop,promote,revision-fence,new-term,kine-local,ensure-slot"},
		{"no promotion while the leader holds the lease", lostLeader, Observation{Self: follower, Witness: aloneAt(4, "a")}, Follower, "", ""},
		{"a running follower takes over once the alone leader's lease expired", lostLeader, Observation{Self: follower, Witness: witnessAt(5, "a")},
			LeaderAlone, "promoting", "witness-claim,kine-stop,promote,revision-fence,new-term,kine-local,ensure-slot"},
		{"the policy promote, the witness unreachable: promotes as without one", lostLeader, Observation{Self: follower, Witness: unreachable()},
			LeaderAlone, "promoting", "kine-stop,promote,revision-fence,new-term,kine-local,ensure-slot"},
		{"a promotion this node claimed before it crashed goes on", lostLeader, Observation{Self: follower, Witness: witnessAt(5, "b")},
			LeaderAlone, "promoting", "witness-claim,kine-stop,promote,revision-fence,new-term,kine-local,ensure-slot"},
		{"the leader claims its going alone first", Machine{State: Leader, Fails: 3}, Observation{Self: leaderSelf(), Witness: witnessAt(4, "a")},
			LeaderAlone, "asynchronous", "witness-claim,new-term,sync-off"},
		{"the leader does not go alone once the follower claimed the next term", Machine{State: Leader, Fails: 3},
			Observation{Self: leaderSelf(), Witness: witnessAt(5, "b")}, Starting, "claimed by the peer", "kine-stop,stop-postgres"},
		{"a leader alone that lost the race stops too", in(LeaderAlone), Observation{Self: aloneLeader(), Witness: witnessAt(5, "b")},
			Starting, "claimed by the peer", "kine-stop,stop-postgres"},
		{"caught up: synchronous again, and the lease goes back", Machine{State: LeaderAlone, OKs: 1},
			Observation{Self: leaderSelf(), Peer: followerPeer(), Witness: leased(aloneAt(4, "a"))}, Leader, "synchronous again", "sync-on,witness-release"},
		{"a leader alone whose lease could not be renewed stops serving", in(LeaderAlone), Observation{Self: aloneLeader(), Witness: aloneAt(4, "a")},
			LeaderAlone, "without the witness's lease", "kine-stop"},
		{"it serves again with a new lease", in(LeaderAlone), Observation{Self: notServing(aloneLeader()), Witness: witnessAt(4, "a")},
			LeaderAlone, "writes resume", "witness-claim,kine-local"},
		{"holding the lease, a leader alone just serves", in(LeaderAlone), Observation{Self: aloneLeader(), Witness: leased(aloneAt(4, "a"))}, LeaderAlone, "", ""},
		{"a node of a new pair does not form it alone over a witness record", late, Observation{Self: Self{Name: "a", Preferred: true}, Witness: witnessAt(3, "b")},
			Starting, "", ""},
		{"nor does a rebooted follower take over when the witness knows more", late, Observation{Self: stoppedFollower(4), Witness: witnessAt(5, "a")},
			Starting, "", ""},
		{"a leader whose claim was cut short before it saved the term begins it", born, Observation{Self: stoppedLeader(4), Peer: stoppedFollowerPeer(4), Witness: witnessAt(5, "a")},
			Starting, "cut short", "witness-claim,start-primary,new-term"},
		{"a restarted agent whose Kine serves alone without a lease stops it", born, Observation{Self: aloneLeader(), Witness: aloneAt(4, "a")},
			Starting, "without a lease", "kine-stop"},
		{"with an empty witness it forms the pair, claiming term 1", late, Observation{Self: Self{Name: "a", Preferred: true}, Witness: witnessAt(0, "")},
			LeaderAlone, "forming", "witness-claim,initdb,start-primary,new-term,ensure-slot,kine-local"},
	})
}

// The policy wait: an unreachable witness stops every take-over, and
// status says why.
func TestWitnessPolicyWait(t *testing.T) {
	c := cfg
	c.WitnessWait = true
	_, d := Step(lostLeader, Observation{Now: t0, Self: followerSelf(), Witness: unreachable()}, c)
	if d.Changed {
		t.Fatalf("promoted with the witness unreachable under the policy wait: %s", d.Reason)
	}
	if !strings.Contains(d.Waiting, "the policy is to wait") || d.WaitsFor != WaitWitness {
		t.Errorf("waiting %q for %q, want the reason", d.Waiting, d.WaitsFor)
	}
	_, d = Step(Machine{State: Leader, Fails: 3}, Observation{Now: t0, Self: leaderSelf(), Witness: unreachable()}, c)
	if d.Changed {
		t.Errorf("went alone with the witness unreachable under the policy wait: %s", d.Reason)
	}
}

// Without a witness, Waiting stays empty and nothing changes.
func TestNoWitnessNoWaiting(t *testing.T) {
	_, d := step(t, lostLeader, Observation{Now: t0, Self: followerSelf()})
	if d.Waiting != "" || kinds(d.Actions) != "kine-stop,promote,revision-fence,new-term,kine-local,ensure-slot" {
		t.Errorf("without a witness: %q %s", d.Waiting, kinds(d.Actions))
	}
}

// With a witness that answers, a follower that lost its leader waits
// WitnessDefer more failed probes than without one, so that a leader that
// still reaches the witness claims first; with the witness unreachable, or
// without one, it promotes after FailureThreshold as always.
func TestWitnessDefer(t *testing.T) {
	c := cfg
	c.WitnessDefer = 2
	follower := followerSelf()
	for _, x := range []struct {
		name  string
		w     Witness
		fails int
		want  bool
	}{
		{"witness answers, the threshold reached: waits", witnessAt(4, "a"), 3, false},
		{"witness answers, one probe short of the deferral: waits", witnessAt(4, "a"), 4, false},
		{"witness answers, the deferral over: promotes", witnessAt(4, "a"), 5, true},
		{"witness unreachable (policy promote), the threshold reached: promotes", unreachable(), 3, true},
		{"no witness, the threshold reached: promotes", Witness{}, 3, true},
	} {
		t.Run(x.name, func(t *testing.T) {
			m := Machine{State: Follower, Fails: x.fails - 1, Since: t0, Born: t0.Add(-time.Hour)}
			_, d := Step(m, Observation{Now: t0, Self: follower, Witness: x.w}, c)
			promoted := d.Changed && d.To == LeaderAlone
			if promoted != x.want {
				t.Errorf("after %d failed probes: promoted %t (%s → %s: %s), want %t", x.fails, promoted, d.From, d.To, d.Reason, x.want)
			}
		})
	}
}
