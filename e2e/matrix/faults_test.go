package matrix

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

// oneWay drops the packets from one node to the other for 6 s.
func oneWay(from, to string) func(*rig) {
	return func(r *rig) { r.oneWay(from, to) }
}

func (r *rig) oneWay(from, to string) {
	t := r.t
	if err := r.c.Net.Partition(from, to); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	time.Sleep(6 * time.Second)
	if err := r.c.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	r.finish(fault)
}

// flapping: the link down and up at random every 0.5-3 s for 60 s (its
// rows set options.multiFault: dozens of cuts in a row).
func flapping(r *rig) {
	t := r.t
	fault := time.Now()
	rng := rand.New(rand.NewPCG(uint64(fault.UnixNano()), 7))
	down := false
	flips := 0
	for time.Since(fault) < 60*time.Second {
		var err error
		if down {
			err = r.c.Net.Heal()
		} else {
			err = r.c.Net.Isolate("a", "b")
		}
		if err != nil {
			t.Fatal(err)
		}
		down = !down
		flips++
		time.Sleep(500*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond))))
	}
	if err := r.c.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	t.Logf("the link changed %d times in 60 s", flips)
	r.finish(fault)
}

// frozenLeader: every process of the leader stopped (SIGSTOP) for longer
// than the detection window, then resumed. Its writes from before and
// after must not be lost without an archive.
//
// Its controller manager and scheduler are frozen with it for 5 s of
// their 10 s renew deadline, and it then rejoins: their gaps are reported
// (about 9 s measured, 10 s once with a witness), a loss on the frozen
// node is not failed; one on the other node is (its rows set
// options.cutOff "a").
func frozenLeader(r *rig) {
	t := r.t
	if err := r.c.Net.Freeze("a"); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	time.Sleep(5 * time.Second)
	if err := r.c.Net.Thaw("a"); err != nil {
		t.Fatal(err)
	}
	r.finish(fault)
}

// killedOnLeader: the leader's processes named comm killed alone.
func killedOnLeader(comm string) func(*rig) {
	return func(r *rig) {
		r.kill("a", comm)
		r.finish(time.Now())
	}
}

// agentKilledOnLeader: the datastore keeps serving while the agent
// restarts, and nothing is promoted.
func agentKilledOnLeader(r *rig) {
	t := r.t
	if err := r.c.StopAgent("a", true); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	time.Sleep(4 * time.Second) // longer than the detection window
	if err := r.c.Start("a"); err != nil {
		t.Fatal(err)
	}
	res := r.finish(fault)
	if res.APIRTOms == nil || *res.APIRTOms > 2000 {
		t.Errorf("writes stopped while only the agent was down (first acknowledged write after the kill: %v ms)", res.APIRTOms)
	}
	for _, s := range r.mon.snapshot() {
		if s.Is("b", fsm.Leader, fsm.LeaderAlone) {
			t.Fatalf("b became %s at %s while a's datastore served", s.B, s.At.Format("15:04:05.000"))
		}
	}
}

// diskFull fills node n's data filesystem for 8 s, then frees it (its
// rows set options.dataSize).
func (r *rig) diskFull(n string) (fault, freed time.Time) {
	t := r.t
	took, err := r.c.FillDisk(n)
	if err != nil {
		t.Fatal(err)
	}
	fault = time.Now()
	t.Logf("filled %s's data filesystem with %d MiB", n, took>>20)
	time.Sleep(8 * time.Second)
	if err := r.c.FreeDisk(n); err != nil {
		t.Fatal(err)
	}
	freed = time.Now()
	r.finish(fault)
	return fault, freed
}

func followerDiskFull(r *rig) { r.diskFull("b") }

// leaderDiskFull: a leader whose disk is full refuses every write; the
// follower, with the same data and room, must take over while the disk is
// still full.
func leaderDiskFull(r *rig) {
	t := r.t
	fault, freed := r.diskFull("a")
	for _, s := range r.mon.snapshot() {
		if s.At.After(fault) && s.At.Before(freed) && s.Is("b", fsm.Leader, fsm.LeaderAlone) {
			t.Logf("b took over %s after the disk filled", s.At.Sub(fault).Round(time.Millisecond))
			return
		}
	}
	t.Errorf("b did not take over in the %s a's disk was full", freed.Sub(fault).Round(time.Second))
}

// A planned switchover under the client-go load through both API servers:
// the leader hands over to its synchronous follower and rejoins as its
// follower. Nothing acknowledged may be lost and nothing archived; the
// write pause it causes is api_rto_ms (fault = the command).
func switchoverUnderLoad(r *rig) {
	t := r.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fault := time.Now()
	out, err := r.c.CLI(ctx, "a", "switchover")
	if err != nil {
		t.Fatalf("twonode switchover on a: %v: %s", err, out)
	}
	t.Logf("twonode switchover took %s: %s", time.Since(fault).Round(time.Millisecond), strings.TrimSpace(out))
	res := r.finish(fault)
	if res.Archived != 0 || res.Lost != 0 {
		t.Errorf("a planned switchover lost %d and archived %d writes", res.Lost, res.Archived)
	}
	for _, s := range r.mon.snapshot() {
		if s.Is("a", fsm.LeaderAlone) && s.Is("b", fsm.LeaderAlone) {
			t.Fatalf("both nodes led at %s during a planned switchover", s.At.Format("15:04:05.000"))
		}
	}
}
