// Package e2e runs the pair end to end: real PostgreSQL, Kine and agents
// as separate hosts in network namespaces, faults made by killing processes
// and by nftables rules, and an etcd client that records every
// acknowledged write and a watch that must never see a revision go back.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
	"github.com/twonode-edge/twonode/e2e/check"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// newCluster forms a pair for one test (see cluster.ForTest).
func newCluster(t *testing.T, n harness.Net) *cluster.Cluster {
	t.Helper()
	return cluster.ForTest(t, n.Prefix, n.Subnet)
}

// newClusterWith forms a pair with options beyond newCluster's (the
// binaries come from the environment, as for every test).
func newClusterWith(t *testing.T, o cluster.Options) *cluster.Cluster {
	t.Helper()
	if o.Dir == "" {
		o.Dir = "/var/tmp/twonode-e2e/" + o.Prefix
	}
	o, err := cluster.FromEnv(o)
	if err != nil {
		t.Fatal(err)
	}
	return cluster.ForTestWith(t, o)
}

func targets(t *testing.T, c *cluster.Cluster) []harness.Target {
	t.Helper()
	ts, err := c.Net.NodeClients(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { harness.CloseTargets(ts) })
	return ts
}

// clientOf returns the target of one node.
func clientOf(ts []harness.Target, node string) harness.Target {
	for _, t := range ts {
		if t.Node == node {
			return t
		}
	}
	panic("no target " + node)
}

// verify checks every acknowledged write through node and returns the lost ones.
func verify(t *testing.T, ts []harness.Target, node string, acked []harness.Op) []harness.Op {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lost []harness.Op
	var err error
	for i := 0; i < 50; i++ { // the survivor's Kine may still be re-pointing
		if lost, err = harness.Verify(ctx, clientOf(ts, node).Client, acked); err == nil {
			return lost
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("reading back through %s: %v", node, err)
	return nil
}

func wait(t *testing.T, c *cluster.Cluster, node string, d time.Duration, states ...fsm.State) {
	t.Helper()
	if _, err := c.WaitState(context.Background(), node, d, check.States(states...)...); err != nil {
		t.Fatal(err)
	}
}

// healAndSettle removes every network fault, waits for the pair to
// converge and stops the writers (cancel) a second later.
func healAndSettle(t *testing.T, c *cluster.Cluster, d time.Duration, cancel context.CancelFunc) {
	t.Helper()
	if err := c.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	converged(t, c, d)
	time.Sleep(time.Second)
	cancel()
}

// settleAndAccount waits for the pair to converge, stops the writer a
// second later (cancel) and accounts for its acknowledged writes.
func settleAndAccount(t *testing.T, c *cluster.Cluster, ts []harness.Target, w *harness.Writer, cancel context.CancelFunc) (acked, lost []harness.Op, archived int) {
	t.Helper()
	converged(t, c, 90*time.Second)
	time.Sleep(time.Second)
	cancel()
	acked = w.Acked()
	lost, archived = accountFor(t, c, ts, acked)
	return acked, lost, archived
}

// accountFor checks every acknowledged write through the leader of the
// converged pair and counts the missing ones found in the other node's
// split-brain archive.
func accountFor(t *testing.T, c *cluster.Cluster, ts []harness.Target, acked []harness.Op) (lost []harness.Op, archived int) {
	t.Helper()
	leader := leaderOf(t, c)
	lost = verify(t, ts, leader, acked)
	return lost, archivedOf(t, c, harness.Peer(leader), lost)
}

func result(t *testing.T, r harness.Result) {
	t.Helper()
	_ = harness.PrintResult(os.Stdout, r)
	if r.Lost != r.Archived {
		t.Errorf("%s: lost %d acknowledged writes but archived %d", r.Scenario, r.Lost, r.Archived)
	}
}

// promotions counts the terms node began by taking over from its peer
// (fsm.TermPromote: a promotion, the operator's, one finished after a
// crash; fsm.TermSwitchover: a hand-over), from the "new term" records of
// its agent's log: a term's kind, not the words of a transition's reason,
// which may be reworded. Logs that hold no term at all fail the test (the
// pair formed in one: the record was renamed, and a count of 0 would prove
// nothing).
func promotions(t *testing.T, c *cluster.Cluster, node string) int {
	t.Helper()
	terms := map[string]bool{}
	seen := 0
	for _, n := range []string{"a", "b"} {
		recs, err := harness.LogRecords(filepath.Join(c.Nodes[n].Dir, "agent.log"), "new term")
		if err != nil {
			t.Fatal(err)
		}
		seen += len(recs)
		for _, r := range recs {
			if n == node && (r["kind"] == string(fsm.TermPromote) || r["kind"] == string(fsm.TermSwitchover)) {
				terms[r["term"]] = true
			}
		}
	}
	if seen == 0 {
		t.Fatal(`no "new term" record in either agent's log, though the pair formed in a term: promotions cannot be counted`)
	}
	return len(terms)
}

// checkNoSecrets: neither the cluster secret nor the passwords derived from
// it appear in any log or in any process's arguments.
func checkNoSecrets(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(c.Opts.Dir, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(raw))
	repl, kine := postgres.DerivePasswords([]byte(secret))
	needles := map[string]string{"cluster secret": secret, "replication password": repl, "kine password": kine}
	var haystacks []string
	for _, n := range c.Nodes {
		for _, f := range []string{"agent.log", "data/postgresql.log", "run/kine.log"} {
			if b, err := os.ReadFile(filepath.Join(n.Dir, f)); err == nil {
				haystacks = append(haystacks, f+" of "+n.Name+"\x00"+string(b))
			}
		}
		pids, err := harness.PidsInNetns(n.NS)
		if err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
				haystacks = append(haystacks, fmt.Sprintf("arguments of pid %d on %s", pid, n.Name)+"\x00"+string(b))
			}
		}
	}
	if len(haystacks) < 6 {
		t.Fatalf("only %d logs and process argument lists to search: the check would prove nothing", len(haystacks))
	}
	for _, h := range haystacks {
		where, text, _ := strings.Cut(h, "\x00")
		for what, needle := range needles {
			if strings.Contains(text, needle) {
				t.Errorf("the %s appears in %s", what, where)
			}
		}
	}
}
