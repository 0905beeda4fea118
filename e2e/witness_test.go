package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// The witness's scenarios, on a real three-member etcd cluster in
// namespaces of its own on the site network (issue 11).

func witnessCluster(t *testing.T, prefix string, subnet int) *cluster.Cluster {
	t.Helper()
	return newClusterWith(t, cluster.Options{Prefix: prefix, Subnet: subnet, Witness: true})
}

// servingWatch samples both nodes' status every 100 ms and counts the
// samples in which both serve writes from their own database: two writers.
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
				serving[n] = err == nil && (st.State == "leader" || st.State == "leader_alone") && st.KineEndpoint == c.Nodes[n].Addr
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
	c := witnessCluster(t, "tnwp", 75)
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
	c := witnessCluster(t, "tnwc", 76)
	ts := targets(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sw := watchServing(ctx, c)
	w := harness.NewWriter("witness-cut-off", ts...)
	go w.Run(ctx, 10)
	time.Sleep(2 * time.Second)
	if err := c.Net.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	wait(t, c, "a", 20*time.Second, "leader_alone")
	cut := time.Now()
	if err := c.CutFromWitness("a"); err != nil {
		t.Fatal(err)
	}
	wait(t, c, "b", 60*time.Second, "leader_alone")
	time.Sleep(3 * time.Second)
	sw.mu.Lock()
	stoppedA, servedB := sw.stopped["a"], sw.since["b"]
	sw.mu.Unlock()
	healAndSettle(t, c, 90*time.Second, cancel)
	dual, samples := sw.dualSamples()
	switch {
	case dual > 0:
		t.Errorf("both nodes served writes in %d of %d samples", dual, samples)
	case stoppedA.IsZero() || servedB.IsZero():
		t.Errorf("a stopped serving at %v, b began at %v: want both", stoppedA, servedB)
	case !stoppedA.Before(servedB):
		t.Errorf("b served from %s, before a stopped (%s)", servedB.Format(time.StampMilli), stoppedA.Format(time.StampMilli))
	}
	acked := w.Acked()
	lost, archived := accountFor(t, c, ts, acked)
	t.Logf("a cut from the witness at +0: a stopped serving at +%s, b served from +%s; %d acknowledged, %d lost, %d of them archived",
		stoppedA.Sub(cut).Round(time.Millisecond), servedB.Sub(cut).Round(time.Millisecond), len(acked), len(lost), archived)
	rto := servedB.Sub(cut).Milliseconds()
	result(t, harness.Result{Scenario: "witness-leader-cut-off", RTOms: &rto, Acked: len(acked), Lost: len(lost), Archived: archived})
}

// failover: manual: the leader's power is cut; the follower waits for an
// operator and says so; `twonode promote` brings writes back; nothing lost.
func TestManualFailover(t *testing.T) {
	c := newClusterWith(t, cluster.Options{Prefix: "tnmf", Subnet: 79, Failover: "manual"})
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
	if st.State != "follower" {
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
	wait(t, c, "b", 20*time.Second, "leader_alone", "leader")
	if err := c.Start("a"); err != nil {
		t.Fatal(err)
	}
	converged(t, c, 90*time.Second)
	time.Sleep(time.Second)
	cancel()
	acked := w.Acked()
	lost, archived := accountFor(t, c, ts, acked)
	first, _ := w.FirstAckAfter(promoted)
	t.Logf("manual mode: b waited %s until the operator, said %q; promote answered %q; first write %s after it; %d acknowledged, %d lost",
		promoted.Sub(fault).Round(time.Millisecond), st.Waiting, strings.TrimSpace(out), first.Sub(promoted).Round(time.Millisecond), len(acked), len(lost))
	rto := first.Sub(promoted).Milliseconds()
	result(t, harness.Result{Scenario: "manual-failover", RTOms: &rto, Acked: len(acked), Lost: len(lost), Archived: archived})
}
