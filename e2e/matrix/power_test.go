package matrix

import (
	"context"
	"os"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/e2e/check"
	"github.com/twonode-edge/twonode/e2e/workload"
)

func (r *rig) waitState(n string, d time.Duration, states ...fsm.State) {
	r.t.Helper()
	if _, err := r.c.WaitState(context.Background(), n, d, check.States(states...)...); err != nil {
		r.t.Fatal(err)
	}
}

// The leader loses power during a burst of writes; the follower takes
// over; the old leader comes back and follows. The link is recorded
// throughout: nothing Kine carries may cross it in clear.
func leaderPowerLoss(r *rig) {
	r.powerOff("a")
	fault := time.Now()
	r.waitState("b", 30*time.Second, fsm.LeaderAlone)
	time.Sleep(3 * time.Second)
	r.powerOn("a")
	r.finish(fault)
}

// The follower loses power; the leader goes on alone within the detection
// window and takes the follower back when it returns.
func followerPowerLoss(r *rig) {
	t := r.t
	r.powerOff("b")
	fault := time.Now()
	r.waitState("a", 30*time.Second, fsm.LeaderAlone)
	time.Sleep(3 * time.Second)
	r.powerOn("b")
	if res := r.finish(fault); res.APIRTOms == nil {
		t.Error("no write was acknowledged after the follower lost power")
	}
}

// A dead follower is replaced by a brand-new machine with the same name
// (empty disk); it joins from a base backup with no human step.
func nodeReplaced(r *rig) {
	t := r.t
	r.powerOff("b")
	fault := time.Now()
	r.waitState("a", 30*time.Second, fsm.LeaderAlone)
	if err := os.RemoveAll(r.c.Nodes["b"].DataDir()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	r.powerOn("b")
	r.finish(fault)
}

// Both nodes lose power together and start again: first a then b, first
// b then a, and both at once. The node with the newer state leads,
// nothing is lost, no human step. One pair, three rounds, one RESULT per
// round (acked, lost and linearizable are of the whole run).
func bothPoweredOff(r *rig) {
	t := r.t
	type round struct {
		name  string
		order []string
		fault time.Time
	}
	rounds := []round{
		{name: "both-off-a-first", order: []string{"a", "b"}},
		{name: "both-off-b-first", order: []string{"b", "a"}},
		{name: "both-off-together", order: []string{"a+b"}},
	}
	for i := range rounds {
		rd := &rounds[i]
		r.powerOff("a")
		r.powerOff("b")
		rd.fault = time.Now()
		time.Sleep(2 * time.Second)
		for j, n := range rd.order {
			if j > 0 {
				time.Sleep(3 * time.Second) // longer than the detection window
			}
			if n == "a+b" {
				r.powerOn("a")
				r.powerOn("b")
				continue
			}
			r.powerOn(n)
		}
		t.Logf("%s: %s leads", rd.name, r.settle(3*time.Minute))
	}
	r.settle(time.Minute)
	time.Sleep(time.Second)
	r.cancel()
	ops := r.w.Wait()
	res := r.check(rounds[0].fault, ops)
	for _, rd := range rounds {
		line := res
		line.Scenario = rd.name
		line.APIRTOms = workload.APIRTO(ops, rd.fault)
		line.HARestoredMs = r.mon.HARestored(rd.fault)
		r.report(line)
	}
}

// Alternating failovers: the leader loses power, comes back as follower,
// and then the new leader loses power, four times over.
func repeatedFailovers(r *rig) {
	var first time.Time
	for i := 0; i < 4; i++ {
		leader := r.settle(2 * time.Minute)
		other := map[string]string{"a": "b", "b": "a"}[leader]
		r.powerOff(leader)
		if i == 0 {
			first = time.Now()
		}
		r.waitState(other, 30*time.Second, fsm.LeaderAlone)
		time.Sleep(time.Second)
		r.powerOn(leader)
	}
	r.finish(first)
}
