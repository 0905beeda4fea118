package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// The fault matrix on the agent's own data plane (Kine through etcd
// clients). Every scenario ends with a synchronous pair and checks that
// every acknowledged write survived or is in the loser's archive.

// run is one fault scenario: a pair, writers on both nodes, a watch.
type run struct {
	t      *testing.T
	c      *cluster.Cluster
	ts     []harness.Target
	w      *harness.Writer
	watch  *harness.Watcher
	cancel context.CancelFunc
}

func startRun(t *testing.T, prefix string, subnet int, scenario string) *run {
	c := newCluster(t, prefix, subnet)
	ts := targets(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := harness.NewWriter(scenario, ts...)
	watch, err := harness.StartWatch(ctx, "/e2e/", ts...)
	if err != nil {
		t.Fatal(err)
	}
	go w.Run(ctx, 30)
	time.Sleep(1500 * time.Millisecond)
	return &run{t: t, c: c, ts: ts, w: w, watch: watch, cancel: cancel}
}

// settle waits for one leader with replication synchronous and one
// follower, holding for 3 s (longer than the detection window, so that a
// fault the agents have not noticed yet cannot pass for a settled pair).
func (r *run) settle(d time.Duration) string {
	r.t.Helper()
	deadline := time.Now().Add(d)
	var leader string
	var since time.Time
	for time.Now().Before(deadline) {
		sa, ea := r.c.Status(context.Background(), "a")
		sb, eb := r.c.Status(context.Background(), "b")
		now := ""
		if ea == nil && eb == nil {
			switch {
			case sa.State == "leader" && sb.State == "follower":
				now = "a"
			case sb.State == "leader" && sa.State == "follower":
				now = "b"
			}
		}
		if now == "" || now != leader {
			leader, since = now, time.Now()
		} else if time.Since(since) >= 3*time.Second {
			return leader
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.t.Fatalf("the pair did not settle within %s", d)
	return ""
}

// finish stops the writes, settles, and checks and reports the outcome.
func (r *run) finish(scenario string, fault time.Time) {
	r.t.Helper()
	leader := r.settle(120 * time.Second)
	time.Sleep(time.Second)
	r.cancel()
	acked := r.w.Acked()
	lost := verify(r.t, r.ts, leader, acked)
	var rows []harness.ArchiveRow
	for _, n := range []string{"a", "b"} {
		got, err := harness.ReadArchives(r.c.Nodes[n].DataDir() + "/archive")
		if err != nil && !os.IsNotExist(err) {
			r.t.Fatal(err)
		}
		rows = append(rows, got...)
	}
	archived, unexplained := harness.MatchArchive(lost, rows)
	for _, op := range unexplained {
		r.t.Errorf("acknowledged write lost and not archived: %s (acked by %s at %s)", op.Key, op.Node, op.End.Format(time.RFC3339Nano))
	}
	rep := r.watch.Stop()
	if rep.Regressions != 0 {
		r.t.Errorf("the watch saw revisions go backwards: %v", rep.RegressionDetails)
	}
	ack, ok := r.w.FirstAckAfter(fault)
	failed := r.w.Failed()
	r.t.Logf("%d writes acknowledged, %d failed or unknown, %d attempted", len(acked), len(failed), len(r.w.Ops()))
	for i, op := range failed {
		if i >= 2 && i < len(failed)-3 {
			continue // the first two and the last three tell the story
		}
		r.t.Logf("  e.g. %s via %s at %s: %s", op.Key, op.Node, op.Start.Format("15:04:05.000"), op.Err)
	}
	result(r.t, harness.Result{Scenario: scenario, RTOms: harness.RTO(fault, ack, ok), Acked: len(acked), Lost: len(lost), Archived: len(archived)})
}

func killByName(t *testing.T, ns, comm string) int {
	t.Helper()
	pids, err := harness.PidsInNetns(ns)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, pid := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.HasPrefix(strings.TrimSpace(string(b)), comm) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
	}
	if n == 0 {
		t.Fatalf("no %s process in %s", comm, ns)
	}
	return n
}

// A frozen leader (every process stopped longer than the detection window,
// then resumed) must not keep writes that are later lost unarchived.
func TestFrozenLeader(t *testing.T) {
	r := startRun(t, "tnfz", 65, "frozen-leader")
	if err := r.c.Net.Freeze("a"); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	time.Sleep(4 * time.Second)
	if err := r.c.Net.Thaw("a"); err != nil {
		t.Fatal(err)
	}
	r.finish("frozen-leader", fault)
}

// PostgreSQL killed alone on the leader: the agent restarts it, or the
// follower takes over; either way nothing acknowledged is lost.
func TestPostgresKilledOnLeader(t *testing.T) {
	r := startRun(t, "tnpk", 66, "postgres-killed")
	killByName(t, r.c.Nodes["a"].NS, "postgres")
	fault := time.Now()
	r.finish("postgres-killed", fault)
}

// Kine killed alone: the agent restarts it; writes go on through the other node meanwhile.
func TestKineKilled(t *testing.T) {
	r := startRun(t, "tnkk", 67, "kine-killed")
	killByName(t, r.c.Nodes["a"].NS, "kine")
	fault := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := harness.WaitReady(ctx, clientOf(r.ts, "a").Client, 15*time.Second); err != nil {
		t.Fatalf("kine on a was not restarted: %v", err)
	}
	t.Logf("kine on a serves again %s after it was killed", time.Since(fault).Round(time.Millisecond))
	r.finish("kine-killed", fault)
}

// The agent killed alone: the datastore keeps serving and nothing is promoted.
func TestAgentKilledAlone(t *testing.T) {
	r := startRun(t, "tnak", 68, "agent-killed")
	if err := r.c.StopAgent("a", true); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	if err := r.w.PinTo("a"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // longer than the detection window
	if _, ok := r.w.FirstAckAfter(fault.Add(time.Second)); !ok {
		t.Error("no write acknowledged through a while its agent was down")
	}
	if st, err := r.c.Status(context.Background(), "b"); err != nil || st.State != "follower" {
		t.Errorf("b is %q (%v) while a's datastore serves: want follower", st.State, err)
	}
	_ = r.w.PinTo("")
	if err := r.c.Start("a"); err != nil {
		t.Fatal(err)
	}
	if leader := r.settle(60 * time.Second); leader != "a" {
		t.Errorf("after the agent restarted, %s leads; want a (nothing should have moved)", leader)
	}
	r.finish("agent-killed", fault)
	if p := promotions(r.c, "b"); p != 0 {
		t.Errorf("b was promoted while a's datastore served")
	}
}

// Both nodes lose power together and start again, in each order: the node
// with the newer state leads, nothing is lost, no human step.
func TestBothPoweredOff(t *testing.T) {
	r := startRun(t, "tnbo", 69, "both-off")
	for _, order := range [][]string{{"a", "b"}, {"b", "a"}, {"a"}} {
		for _, n := range []string{"a", "b"} {
			if err := r.c.PowerOff(n); err != nil {
				t.Fatal(err)
			}
		}
		for i, n := range order {
			if i > 0 {
				time.Sleep(2 * time.Second)
			}
			if err := r.c.Start(n); err != nil {
				t.Fatal(err)
			}
		}
		if len(order) == 1 { // "together": the second right away
			if err := r.c.Start("b"); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("order %v: %s leads", order, r.settle(120*time.Second))
	}
	r.finish("both-powered-off", time.Now())
}

// A one-way partition (the leader's packets to the follower are dropped).
func TestOneWayPartition(t *testing.T) {
	r := startRun(t, "tnow", 72, "one-way-partition")
	if err := r.c.Net.Partition("a", "b"); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	time.Sleep(5 * time.Second)
	if err := r.c.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	r.finish("one-way-partition", fault)
}

// A flapping link: down and up at random every 0.5–3 s.
func TestFlappingLink(t *testing.T) {
	r := startRun(t, "tnfl", 73, "flapping-link")
	fault := time.Now()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	down := false
	for time.Since(fault) < 30*time.Second {
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
		time.Sleep(500*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond))))
	}
	if err := r.c.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	r.finish("flapping-link", fault)
}
