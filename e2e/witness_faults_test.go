package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/localapi"
	"github.com/twonode-edge/twonode/bootstrap/witness"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// The witness's own faults (issue 11): the witness down, reachable from
// one node only, and a node that starts alone behind it.

// holds samples both nodes' states every 200 ms for d and returns the
// first sample in which a node was not in its state of want ("" if none).
func holds(c *cluster.Cluster, d time.Duration, want map[string]fsm.State) string {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for n, s := range want {
			st, err := c.Status(context.Background(), n)
			if err != nil {
				return fmt.Sprintf("%s did not answer: %v", n, err)
			}
			if st.State != string(s) {
				return fmt.Sprintf("%s was %s (waiting: %q)", n, st.State, st.Waiting)
			}
		}
	}
	return ""
}

// archivedRows counts the rows both nodes archived. With a witness no
// acknowledged write is archived (accountFor checks that), but a
// synchronous leader cut off may still archive commits it never
// acknowledged: PostgreSQL commits locally before it waits for the
// standby, and a wait cut short leaves the commit in place.
func archivedRows(t *testing.T, c *cluster.Cluster) int {
	t.Helper()
	n := 0
	for _, node := range []string{"a", "b"} {
		rows, err := c.Archives(node)
		if err != nil {
			t.Fatal(err)
		}
		n += len(rows)
	}
	return n
}

// The witness down while the pair is healthy: a synchronous pair does not
// need it, so nothing changes: no role, no write refused.
func TestWitnessDownWhileHealthy(t *testing.T) {
	c := witnessCluster(t, harness.NetWitnessDown)
	ts := targets(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := harness.NewWriter("witness-down-healthy", ts...)
	go w.Run(ctx, 20)
	time.Sleep(2 * time.Second)
	if err := c.StopWitness(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	if why := holds(c, 20*time.Second, map[string]fsm.State{"a": fsm.Leader, "b": fsm.Follower}); why != "" {
		t.Errorf("with the witness down the healthy pair changed: %s", why)
	}
	// A steady node reads the witness only every witness.SteadyRead: it
	// says the witness is gone by then, and a request timeout later.
	var st localapi.StatusReport
	for end := down.Add(witness.SteadyRead + 5*time.Second); ; time.Sleep(500 * time.Millisecond) {
		var err error
		if st, err = c.Status(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.ToLower(st.Witness), "unreachable") || time.Now().After(end) {
			break
		}
	}
	if !strings.Contains(strings.ToLower(st.Witness), "unreachable") {
		t.Errorf("b's status says the witness is %q %s after it went down; want it reported unreachable", st.Witness, time.Since(down).Round(time.Second))
	} else {
		t.Logf("b reported the witness unreachable %s after it went down", time.Since(down).Round(time.Second))
	}
	if err := c.StartWitness(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cancel()
	var failed int
	for _, op := range w.Failed() {
		if op.Start.After(down) {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d writes failed while only the witness was down", failed)
	}
	gap, at := w.LongestOutage()
	acked := w.Acked()
	lost, archived := accountFor(t, c, ts, acked)
	t.Logf("witness down 20 s under a healthy pair: %d acknowledged, %d failed after it went down, longest gap between acknowledgements %s (at %s); b said %q",
		len(acked), failed, gap.Round(time.Millisecond), at.Format(time.StampMilli), st.Witness)
	ms := gap.Milliseconds()
	result(t, harness.Result{Scenario: "witness-down-healthy", RTOms: &ms, Acked: len(acked), Lost: len(lost), Archived: archived})
}

// The witness down, then the leader's power cut. Policy wait: the follower
// does not take over (it cannot know the leader did not go on alone) and
// says so; it takes over once the witness answers again. Policy promote:
// it takes over at once, as without a witness.
func TestWitnessDownThenLeaderCrash(t *testing.T) {
	for _, tc := range []struct {
		policy string
		net    harness.Net
	}{{"wait", harness.NetWitnessDownWait}, {"promote", harness.NetWitnessDownPromote}} {
		t.Run(tc.policy, func(t *testing.T) {
			c := newClusterWith(t, cluster.Options{Prefix: tc.net.Prefix, Subnet: tc.net.Subnet, Witness: true, WitnessUnreachable: tc.policy})
			ts := targets(t, c)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := harness.NewWriter("witness-down-crash-"+tc.policy, ts...)
			go w.Run(ctx, 10)
			time.Sleep(2 * time.Second)
			if err := c.StopWitness(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			if err := c.PowerOff("a"); err != nil {
				t.Fatal(err)
			}
			crash := time.Now()
			back := crash
			if tc.policy == "wait" {
				if why := holds(c, 8*time.Second, map[string]fsm.State{"b": fsm.Follower}); why != "" {
					t.Errorf("policy wait, witness down, leader crashed: %s; want b to wait as a follower", why)
				}
				st, err := c.Status(ctx, "b")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(st.Waiting, "witness") {
					t.Errorf("b's status says waiting %q; want it to name the witness", st.Waiting)
				}
				t.Logf("b waits: %s", st.Waiting)
				if err := c.StartWitness(); err != nil {
					t.Fatal(err)
				}
				back = time.Now()
			}
			wait(t, c, "b", 30*time.Second, fsm.LeaderAlone)
			took := time.Now()
			if err := c.Start("a"); err != nil {
				t.Fatal(err)
			}
			if tc.policy == "promote" {
				if err := c.StartWitness(); err != nil {
					t.Fatal(err)
				}
			}
			acked, lost, archived := settleAndAccount(t, c, ts, w, cancel)
			first, _ := w.FirstAckAfter(back)
			t.Logf("policy %s: b took over %s after the crash (%s after the witness answered); first write %s after that; %d acknowledged, %d lost; %d unacknowledged rows archived",
				tc.policy, took.Sub(crash).Round(time.Millisecond), took.Sub(back).Round(time.Millisecond), first.Sub(back).Round(time.Millisecond), len(acked), len(lost), archivedRows(t, c))
			rto := first.Sub(back).Milliseconds()
			result(t, harness.Result{Scenario: "witness-down-then-leader-crash-" + tc.policy, RTOms: &rto, Acked: len(acked), Lost: len(lost), Archived: archived})
		})
	}
}

// The leader cut from the witness, then from its follower: the follower
// reaches the witness, claims the next term and takes over; the leader
// cannot go alone (its writes wait for the follower, which left) and
// fences itself when it learns the newer term. One writer, nothing
// archived.
func TestWitnessFromOneNodeOnly(t *testing.T) {
	c := witnessCluster(t, harness.NetWitnessOnly)
	ts := targets(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sw := watchServing(ctx, c)
	w := harness.NewWriter("witness-one-node", ts...)
	go w.Run(ctx, 10)
	time.Sleep(2 * time.Second)
	if err := c.CutFromWitness("a"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := c.Net.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	wait(t, c, "b", 30*time.Second, fsm.LeaderAlone)
	took := time.Now()
	time.Sleep(5 * time.Second)
	stA, _ := c.Status(ctx, "a")
	healAndSettle(t, c, 90*time.Second, cancel)
	dual, samples := sw.dualSamples()
	if dual > 0 {
		t.Errorf("both nodes served writes in %d of %d samples", dual, samples)
	}
	acked := w.Acked()
	lost, archived := accountFor(t, c, ts, acked)
	if archived > 0 {
		t.Errorf("%d acknowledged writes archived with a witness", archived)
	}
	t.Logf("a cut from the witness and from b: b took over after %s; a was %s (waiting: %q); %d acknowledged, %d lost; %d unacknowledged rows archived",
		took.Sub(cut).Round(time.Millisecond), stA.State, stA.Waiting, len(acked), len(lost), archivedRows(t, c))
	rto := took.Sub(cut).Milliseconds()
	result(t, harness.Result{Scenario: "witness-from-one-node-only", RTOms: &rto, Acked: len(acked), Lost: len(lost), Archived: archived})
}

// The stale node starting alone: b off, a leads alone (claimed at the
// witness) and acknowledges writes, a off, b boots with its peer still
// off. The witness records a term newer than b's: b does not take over
// (the case where, without a witness, a's writes ended in an archive),
// and says why. When a returns, the pair forms with a's writes.
func TestWitnessStaleNodeStartsAlone(t *testing.T) {
	c := witnessCluster(t, harness.NetWitnessSlow)
	ts := targets(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.PowerOff("b"); err != nil {
		t.Fatal(err)
	}
	wait(t, c, "a", 30*time.Second, fsm.LeaderAlone)
	w := harness.NewWriter("witness-stale-node", ts...)
	if err := w.PinTo("a"); err != nil {
		t.Fatal(err)
	}
	alone := w.WriteN(ctx, 40)
	if err := c.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start("b"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // b's agent is up and has read the witness
	if why := holds(c, 12*time.Second, map[string]fsm.State{"b": fsm.Starting}); why != "" {
		t.Errorf("b, started alone behind a newer term at the witness: %s; want it to wait in starting", why)
	}
	st, err := c.Status(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Waiting, "newer than this node's") {
		t.Errorf("b's status says waiting %q; want the witness's newer term as the reason", st.Waiting)
	}
	if err := c.Start("a"); err != nil {
		t.Fatal(err)
	}
	converged(t, c, 90*time.Second)
	cancel()
	var acked []harness.Op
	for _, op := range alone {
		if op.OK {
			acked = append(acked, op)
		}
	}
	if len(acked) == 0 {
		t.Fatal("a acknowledged no write while it led alone")
	}
	if l := leaderOf(t, c); l != "a" {
		t.Errorf("%s leads after a returned; want a, which holds the newest writes", l)
	}
	lost, archived := accountFor(t, c, ts, acked)
	if rows := archivedRows(t, c); rows > 0 {
		t.Errorf("%d rows archived: a's writes while it led alone must stay live", rows)
	}
	t.Logf("b started alone behind a's term: it waited (%q); a returned and leads; %d of a's writes acknowledged, %d lost", st.Waiting, len(acked), len(lost))
	result(t, harness.Result{Scenario: "witness-stale-node-starts-alone", Acked: len(acked), Lost: len(lost), Archived: archived})
}
