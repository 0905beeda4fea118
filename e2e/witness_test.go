package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// The witness's scenarios, on a real three-member etcd cluster in
// namespaces of its own on the site network (issue 11).

func witnessCluster(t *testing.T, n harness.Net) *cluster.Cluster {
	t.Helper()
	return newClusterWith(t, cluster.Options{Prefix: n.Prefix, Subnet: n.Subnet, Witness: true})
}

// servingWatch samples both nodes' status every 100 ms and counts the
// samples in which both acknowledge writes on their own: two writers.
type servingWatch struct {
	mu      sync.Mutex
	samples int
	dual    int
	since   map[string]time.Time // node -> first sample it served alone, after the start
	stopped map[string]time.Time // node -> first sample it no longer served
}

func watchServing(ctx context.Context, c *cluster.Cluster) *servingWatch {
	sw := &servingWatch{since: map[string]time.Time{}, stopped: map[string]time.Time{}}
	go func() {
		was := map[string]bool{}
		for ctx.Err() == nil {
			serving := map[string]bool{}
			for _, n := range []string{"a", "b"} {
				cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				st, err := c.Status(cctx, n)
				cancel()
				// Acknowledging writes on its own: a synchronous leader
				// acknowledges only what its follower has, which a second
				// primary never streams (measured: a sample caught the old
				// synchronous leader, whose writes all waited, a tick before
				// it fenced itself).
				serving[n] = err == nil && st.State == string(fsm.LeaderAlone) && st.KineEndpoint == c.Nodes[n].Addr
			}
			now := time.Now()
			sw.mu.Lock()
			sw.samples++
			if serving["a"] && serving["b"] {
				sw.dual++
			}
			for n, s := range serving {
				if s && !was[n] {
					sw.since[n] = now
				}
				if !s && was[n] {
					sw.stopped[n] = now
				}
				was[n] = s
			}
			sw.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return sw
}

// aloneAfterPartition: the node that leads alone once the link is cut
// (whichever claimed the next term first at the witness: a race), and

// partitioned is a pair under writes, cut in two with a witness: the
// writer, the watch of who serves, and the node left leading alone.
type partitioned struct {
	ts           []harness.Target
	sw           *servingWatch
	w            *harness.Writer
	alone, other string
	cancel       context.CancelFunc
}

// partitionUnderWrites starts a writer through both nodes and the watch of
// who serves, cuts the link between the nodes after 2 s and waits for the
// node that leads alone. cancel stops the writer and the watch (at the
// test's end at the latest).
func partitionUnderWrites(t *testing.T, c *cluster.Cluster, name string) *partitioned {
	t.Helper()
	p := &partitioned{ts: targets(t, c)}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	t.Cleanup(cancel)
	p.sw = watchServing(ctx, c)
	p.w = harness.NewWriter(name, p.ts...)
	go p.w.Run(ctx, 10)
	time.Sleep(2 * time.Second)
	if err := c.Net.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	p.alone, p.other = aloneAfterPartition(t, c)
	return p
}

// the other.
func aloneAfterPartition(t *testing.T, c *cluster.Cluster) (alone, other string) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, n := range []string{"a", "b"} {
			if st, err := c.Status(context.Background(), n); err == nil && st.State == string(fsm.LeaderAlone) {
				return n, harness.Peer(n)
			}
		}
	}
	t.Fatal("no node leads alone 20 s into the partition")
	return "", ""
}

func (sw *servingWatch) dualSamples() (int, int) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.dual, sw.samples
}

// A full partition of the link while both nodes reach the witness, with
// writes through both nodes: whichever node claims the next term first at
// the witness leads (the leader going alone, or the follower promoting);
// the other stops at once. No two writers, nothing archived, nothing lost.
func TestWitnessPartition(t *testing.T) {
	c := witnessCluster(t, harness.NetWitnessPartition)
	ts := targets(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sw := watchServing(ctx, c)
	wa, wb := harness.NewWriter("witness-split-a", ts...), harness.NewWriter("witness-split-b", ts...)
	if err := wa.PinTo("a"); err != nil {
		t.Fatal(err)
	}
	if err := wb.PinTo("b"); err != nil {
		t.Fatal(err)
	}
	go wa.Run(ctx, 10)
	go wb.Run(ctx, 10)
	time.Sleep(2 * time.Second)
	if err := c.Net.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second)
	healAndSettle(t, c, 60*time.Second, cancel)
	dual, samples := sw.dualSamples()
	if dual > 0 {
		t.Errorf("both nodes served writes in %d of %d samples", dual, samples)
	}
	acked := append(wa.Acked(), wb.Acked()...)
	lost, archived := accountFor(t, c, ts, acked)
	if archived > 0 {
		t.Errorf("%d acknowledged writes archived with a witness", archived)
	}
	st, _ := c.Status(context.Background(), "a")
	t.Logf("partition 20 s with a witness: %d acknowledged (a %d, b %d), %d lost, %d archived, both serving in %d of %d samples; a: %s",
		len(acked), len(wa.Acked()), len(wb.Acked()), len(lost), archived, dual, samples, st.Witness)
	result(t, harness.Result{Scenario: "witness-partition", Acked: len(acked), Lost: len(lost), Archived: archived})
}

// A leader alone cut off from both its follower and the witness: it stops
// serving before its lease can expire, and the follower takes over only
// after that. Its writes while alone are archived (the one case the
// witness trades for availability), none is lost.
func TestWitnessLeaderCutOff(t *testing.T) {
	c := witnessCluster(t, harness.NetWitnessCrash)
	p := partitionUnderWrites(t, c, "witness-cut-off")
	ts, sw, w, alone, other, cancel := p.ts, p.sw, p.w, p.alone, p.other, p.cancel
	cut := time.Now()
	if err := c.CutFromWitness(alone); err != nil {
		t.Fatal(err)
	}
	wait(t, c, other, 60*time.Second, fsm.LeaderAlone)
	time.Sleep(3 * time.Second)
	sw.mu.Lock()
	stopped, served := sw.stopped[alone], sw.since[other]
	sw.mu.Unlock()
	healAndSettle(t, c, 90*time.Second, cancel)
	dual, samples := sw.dualSamples()
	switch {
	case dual > 0:
		t.Errorf("both nodes served writes in %d of %d samples", dual, samples)
	case stopped.IsZero() || served.IsZero():
		t.Errorf("%s stopped serving at %v, %s began at %v: want both", alone, stopped, other, served)
	case !stopped.Before(served):
		t.Errorf("%s served from %s, before %s stopped (%s)", other, served.Format(time.StampMilli), alone, stopped.Format(time.StampMilli))
	}
	acked := w.Acked()
	lost, archived := accountFor(t, c, ts, acked)
	t.Logf("%s, leading alone, cut from the witness at +0: it stopped serving at +%s, %s served from +%s; %d acknowledged, %d lost, %d of them archived",
		alone, stopped.Sub(cut).Round(time.Millisecond), other, served.Sub(cut).Round(time.Millisecond), len(acked), len(lost), archived)
	rto := served.Sub(cut).Milliseconds()
	result(t, harness.Result{Scenario: "witness-leader-cut-off", RTOms: &rto, Acked: len(acked), Lost: len(lost), Archived: archived})
}

// failover: manual: the leader's power is cut; the follower waits for an
// operator and says so; `twonode promote` brings writes back; nothing lost.
func TestManualFailover(t *testing.T) {
	c := newClusterWith(t, cluster.Options{Prefix: harness.NetManualFailover.Prefix, Subnet: harness.NetManualFailover.Subnet, Failover: "manual"})
	ts := targets(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := harness.NewWriter("manual-failover", ts...)
	go w.Run(ctx, 10)
	time.Sleep(2 * time.Second)
	if err := c.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	time.Sleep(8 * time.Second)
	st, err := c.Status(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != string(fsm.Follower) {
		t.Fatalf("b is %s 8 s after the leader's power was cut; in manual mode it must wait", st.State)
	}
	if !strings.Contains(st.Waiting, "awaiting an operator") {
		t.Errorf("b's status says %q; want it to say it awaits an operator", st.Waiting)
	}
	out, err := c.CLI(ctx, "b", "promote")
	if err != nil {
		t.Fatalf("twonode promote: %v\n%s", err, out)
	}
	promoted := time.Now()
	wait(t, c, "b", 20*time.Second, fsm.LeaderAlone, fsm.Leader)
	if err := c.Start("a"); err != nil {
		t.Fatal(err)
	}
	acked, lost, archived := settleAndAccount(t, c, ts, w, cancel)
	first, _ := w.FirstAckAfter(promoted)
	t.Logf("manual mode: b waited %s until the operator, said %q; promote answered %q; first write %s after it; %d acknowledged, %d lost",
		promoted.Sub(fault).Round(time.Millisecond), st.Waiting, strings.TrimSpace(out), first.Sub(promoted).Round(time.Millisecond), len(acked), len(lost))
	rto := first.Sub(promoted).Milliseconds()
	result(t, harness.Result{Scenario: "manual-failover", RTOms: &rto, Acked: len(acked), Lost: len(lost), Archived: archived})
}

// The agent of a leader alone is frozen (SIGSTOP) while it holds the
// witness's lease: its Kine would go on serving after the lease expired
// and a follower took over. The watchdog (here the test pipe, which powers
// the node off when the pets stop) resets the node first. The node then
// reboots (its agent starts again) and the pair converges.
func TestWitnessFrozenAgent(t *testing.T) {
	c := newClusterWith(t, cluster.Options{Prefix: harness.NetWitnessWatchdog.Prefix, Subnet: harness.NetWitnessWatchdog.Subnet, Witness: true, Watchdog: true})
	p := partitionUnderWrites(t, c, "witness-frozen-agent")
	ts, sw, w, alone, other, cancel := p.ts, p.sw, p.w, p.alone, p.other, p.cancel
	if err := c.FreezeAgent(alone); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	var resets []cluster.WatchdogReset
	for end := time.Now().Add(10 * time.Second); len(resets) == 0 && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		resets = c.Resets()
	}
	if len(resets) != 1 || resets[0].Node != alone {
		t.Fatalf("watchdog resets %+v, want one of %s", resets, alone)
	}
	time.Sleep(15 * time.Second) // past the lease: a follower that can take over has
	sw.mu.Lock()
	served := sw.since[other]
	sw.mu.Unlock()
	if err := c.Start(alone); err != nil { // the machine rebooted: its agent starts
		t.Fatal(err)
	}
	healAndSettle(t, c, 90*time.Second, cancel)
	dual, samples := sw.dualSamples()
	if dual > 0 {
		t.Errorf("both nodes served writes in %d of %d samples", dual, samples)
	}
	took := "did not take over (it had fenced itself: it waits for the newer leader)"
	if !served.IsZero() {
		if !resets[0].At.Before(served) {
			t.Errorf("%s served from %s, before the watchdog reset %s (%s)", other, served.Format(time.StampMilli), alone, resets[0].At.Format(time.StampMilli))
		}
		took = fmt.Sprintf("served from +%s", served.Sub(frozen).Round(time.Millisecond))
	}
	acked := w.Acked()
	lost, archived := accountFor(t, c, ts, acked)
	t.Logf("%s's agent frozen at +0: the watchdog reset it at +%s (last pet +%s); %s %s; %d acknowledged, %d lost, %d of them archived",
		alone, resets[0].At.Sub(frozen).Round(time.Millisecond), resets[0].LastPet.Sub(frozen).Round(time.Millisecond), other, took,
		len(acked), len(lost), archived)
	var rto *int64 // writes back: the follower's take-over, if it could
	if !served.IsZero() {
		ms := served.Sub(frozen).Milliseconds()
		rto = &ms
	}
	result(t, harness.Result{Scenario: "witness-frozen-agent", RTOms: rto, Acked: len(acked), Lost: len(lost), Archived: archived})
}
