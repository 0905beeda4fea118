package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// Scenarios 1 and 3: the leader loses power during writes; the follower
// takes over with nothing lost and the watch never going back; then the
// old leader returns and becomes the follower.
func TestLeaderCrashThenReturn(t *testing.T) {
	c := newCluster(t, harness.NetLeaderCrash)
	ts := targets(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := harness.NewWriter("leader-crash", ts...)
	watch, err := harness.StartWatch(ctx, "/e2e/", clientOf(ts, "b"), clientOf(ts, "a"))
	if err != nil {
		t.Fatal(err)
	}
	go w.Run(ctx, 50)
	putPrevKeyBefore(t, clientOf(ts, "a").Client)
	time.Sleep(2 * time.Second)
	diskLatencyShown(t, c)

	if err := c.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	fault := time.Now() // every process of the node is dead now
	wait(t, c, "b", 30*time.Second, fsm.LeaderAlone)
	time.Sleep(2 * time.Second)
	cancel()
	ack, ok := w.FirstAckAfter(fault)
	acked := w.Acked()
	lost := verify(t, ts, "b", acked)
	checkPrevKeyAfter(t, clientOf(ts, "b").Client)
	// What the issue requires of the watch is that it never goes backwards
	// (checked below, a failure). A watch that never learns of an
	// acknowledged write is reported with the keys, not failed. Most such
	// reports were this harness's watcher resuming on the powered-off node
	// and staying there (fixed: it resumes only on a node that answers);
	// a single missed last write after the relist is still seen now and
	// then, under investigation (issue 3).
	waitErr := watch.WaitFor(acked, 10*time.Second)
	rep := watch.Stop()
	if waitErr != nil {
		for _, op := range rep.Missing(acked) {
			t.Logf("WATCH-MISSED %s (revision %d, acknowledged by %s at %s); watch errors: %v",
				op.Key, op.Revision, op.Node, op.End.Format("15:04:05.000"), rep.Errors)
		}
	}
	if rep.Regressions != 0 {
		t.Errorf("the watch saw revisions go backwards: %v", rep.RegressionDetails)
	}
	t.Logf("watch: %d events, %d resumes, %d relists", len(rep.Events), rep.Resumes, rep.Relists)
	result(t, harness.Result{Scenario: "leader-crash", RTOms: harness.RTO(fault, ack, ok), Acked: len(acked), Lost: len(lost)})
	if !ok {
		t.Fatal("no write was acknowledged after the leader crashed")
	}

	// 3: the old leader returns and follows.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	w2 := harness.NewWriter("old-leader-returns", clientOf(ts, "b"))
	go w2.Run(ctx2, 50)
	back := time.Now()
	if err := c.Start("a"); err != nil {
		t.Fatal(err)
	}
	wait(t, c, "a", 60*time.Second, fsm.Follower)
	wait(t, c, "b", 30*time.Second, fsm.Leader)
	restored := time.Since(back)
	time.Sleep(time.Second)
	cancel2()
	all := append(acked, w2.Acked()...)
	lost = verify(t, ts, "a", all) // read through the returned node's Kine
	t.Logf("old leader rejoined and synchronous again %s after it was started", restored.Round(time.Millisecond))
	rto := restored.Milliseconds()
	result(t, harness.Result{Scenario: "old-leader-returns", RTOms: &rto, Acked: len(all), Lost: len(lost)})
	checkNoSecrets(t, c)
}

// Scenarios 2 and 4: the follower loses power; the leader keeps accepting
// writes within the detection window; then a brand-new empty machine with
// the same name joins as follower.
func TestFollowerCrashThenNewNode(t *testing.T) {
	c := newCluster(t, harness.NetFollowerCrash)
	ts := targets(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := harness.NewWriter("follower-crash", clientOf(ts, "a"))
	go w.Run(ctx, 50)
	time.Sleep(2 * time.Second)
	if err := c.PowerOff("b"); err != nil {
		t.Fatal(err)
	}
	fault := time.Now() // every process of the node is dead now
	wait(t, c, "a", 30*time.Second, fsm.LeaderAlone)
	time.Sleep(time.Second)
	ack, ok := w.FirstAckAfter(fault)
	outage, _ := w.LongestOutage()
	t.Logf("longest gap between acknowledged writes: %s", outage.Round(time.Millisecond))

	// 4: replace b by an empty machine of the same name.
	if err := os.RemoveAll(c.Nodes["b"].Dir + "/data"); err != nil {
		t.Fatal(err)
	}
	joined := time.Now()
	if err := c.Start("b"); err != nil {
		t.Fatal(err)
	}
	wait(t, c, "b", 60*time.Second, fsm.Follower)
	wait(t, c, "a", 30*time.Second, fsm.Leader)
	restored := time.Since(joined)
	time.Sleep(time.Second)
	cancel()
	acked := w.Acked()
	lost := verify(t, ts, "b", acked)
	result(t, harness.Result{Scenario: "follower-crash", RTOms: harness.RTO(fault, ack, ok), Acked: len(acked), Lost: len(lost)})
	if !ok {
		t.Fatal("the leader acknowledged no write after the follower crashed")
	}
	rto := restored.Milliseconds()
	result(t, harness.Result{Scenario: "new-node-joins", RTOms: &rto, Acked: len(acked), Lost: len(lost)})
}

// Scenario 5: a network split with writes on both sides; the side that
// wrote last wins; the loser archives exactly the writes the pair lost.
func TestSplitBrain(t *testing.T) {
	c := newCluster(t, harness.NetSplitBrain)
	ts := targets(t, c)
	before := harness.NewWriter("split-before", ts...)
	before.WriteN(context.Background(), 20)

	if err := c.Net.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	wait(t, c, "b", 30*time.Second, fsm.LeaderAlone)
	wait(t, c, "a", 30*time.Second, fsm.LeaderAlone)
	wa := harness.NewWriter("split-a", clientOf(ts, "a"))
	wa.WriteN(context.Background(), 30)
	time.Sleep(300 * time.Millisecond)
	wb := harness.NewWriter("split-b", clientOf(ts, "b"))
	wb.WriteN(context.Background(), 30) // b writes last: b must win

	if err := c.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	wait(t, c, "a", 90*time.Second, fsm.Follower)
	wait(t, c, "b", 30*time.Second, fsm.Leader)
	acked := append(append(before.Acked(), wa.Acked()...), wb.Acked()...)
	lost := verify(t, ts, "b", acked)
	rows, err := c.Archives("a")
	if err != nil {
		t.Fatal(err)
	}
	archived, unexplained := harness.MatchArchive(lost, rows)
	if len(unexplained) > 0 {
		t.Errorf("%d lost writes are not in the loser's archive, e.g. %s", len(unexplained), unexplained[0].Key)
	}
	if len(wa.Acked()) == 0 || len(wb.Acked()) == 0 {
		t.Fatalf("both sides must have written: a %d, b %d", len(wa.Acked()), len(wb.Acked()))
	}
	for _, op := range lost {
		if op.Node != "a" {
			t.Errorf("a write acknowledged by the winner was lost: %s", op.Key)
		}
	}
	t.Logf("split: %d acked on a, %d on b; %d lost, %d archived rows in the loser's archive", len(wa.Acked()), len(wb.Acked()), len(lost), len(rows))
	result(t, harness.Result{Scenario: "split-brain", RTOms: harness.RTO(fault, firstAck(wb), true), Acked: len(acked), Lost: len(lost), Archived: len(archived)})
	st, err := c.Status(context.Background(), "a")
	if err != nil || len(st.Archives) == 0 {
		t.Errorf("twonode status on the loser shows no archive: %+v %v", st.Archives, err)
	}
}

func firstAck(w *harness.Writer) time.Time {
	for _, op := range w.Acked() {
		return op.End
	}
	return time.Time{}
}

// Scenarios 6 and 7: pause, restart each node in turn, resume: roles do
// not change and nothing is promoted; then a blip shorter than the
// detection window promotes nothing.
func TestPauseRestartsAndBlip(t *testing.T) {
	c := newCluster(t, harness.NetPartitionBoth)
	ts := targets(t, c)
	ctx := context.Background()
	if out, err := c.CLI(ctx, "a", "pause", "--for", "30m"); err != nil {
		t.Fatalf("pause: %v: %s", err, out)
	} else {
		t.Log(out)
	}
	for _, n := range []string{"a", "b"} {
		st, err := c.Status(ctx, n)
		if err != nil || !st.Paused {
			t.Fatalf("%s is not paused after `twonode pause` on a: %+v %v", n, st, err)
		}
	}
	w := harness.NewWriter("pause", ts...)
	for _, n := range []string{"a", "b"} { // the leader first, the harder case
		if err := c.PowerOff(n); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // longer than the detection window
		if err := c.Start(n); err != nil {
			t.Fatal(err)
		}
		wait(t, c, "a", 60*time.Second, fsm.Leader)
		wait(t, c, "b", 60*time.Second, fsm.Follower)
		w.WriteN(ctx, 10)
	}
	if out, err := c.CLI(ctx, "b", "resume"); err != nil {
		t.Fatalf("resume: %v: %s", err, out)
	}
	if p := promotions(t, c, "b"); p != 0 {
		t.Errorf("b was promoted %d times while paused", p)
	}
	acked := w.Acked()
	lost := verify(t, ts, "a", acked)
	result(t, harness.Result{Scenario: "pause-restarts", Acked: len(acked), Lost: len(lost)})

	// 7: a blip of half the detection window (3 × 500 ms) promotes nothing.
	w7 := harness.NewWriter("blip", ts...)
	w7.WriteN(ctx, 10)
	if err := c.Net.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(750 * time.Millisecond)
	if err := c.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	w7.WriteN(ctx, 10)
	for n, want := range map[string]fsm.State{"a": fsm.Leader, "b": fsm.Follower} {
		if st, err := c.Status(ctx, n); err != nil || st.State != string(want) {
			t.Errorf("after the blip %s is %q (%v), want %s", n, st.State, err, want)
		}
	}
	if p := promotions(t, c, "b"); p != 0 {
		t.Errorf("the blip promoted b")
	}
	acked7 := w7.Acked()
	lost7 := verify(t, ts, "a", acked7)
	result(t, harness.Result{Scenario: "blip", Acked: len(acked7), Lost: len(lost7)})
}

// diskLatencyShown: under writes, the leader's status and `twonode status`
// show its commit latency (measured by its own tiny commits) and the
// follower's flush; the follower commits nothing and shows none.
func diskLatencyShown(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, errA := c.Status(ctx, "a")
	sb, errB := c.Status(ctx, "b")
	if errA != nil || errB != nil {
		t.Fatalf("status: %v, %v", errA, errB)
	}
	if sa.CommitLatency <= 0 || sb.CommitLatency != 0 {
		t.Fatalf("commit latency: leader %v, follower %v; want the leader's measured and none on the follower", sa.CommitLatency, sb.CommitLatency)
	}
	out, err := c.CLI(ctx, "a", "status")
	if err != nil || !strings.Contains(out, "Disk latency:") {
		t.Fatalf("twonode status (%v) shows no disk latency:\n%s", err, out)
	}
	t.Logf("leader's commit %v, follower's flush %v", sa.CommitLatency, sa.PeerFlushLag)
}
