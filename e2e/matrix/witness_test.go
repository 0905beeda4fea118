package matrix

import (
	"context"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/e2e/workload"
)

// The partition scenarios of the matrix again, with the pair deciding
// through a witness (a real three-member etcd cluster on the site network,
// issue 11). Without a witness each of them may make two writers and
// archive the loser's writes; with one, the node that did not win the swap
// at the witness never acknowledges a write on its own: no two writers, no
// archive, nothing lost, and the whole history linearizable (not only
// without a loser's branch).

// noSplit checks what a witness promises of a partition.
func (r *rig) noSplit(res workload.Result) {
	r.t.Helper()
	if res.DualLeaderMs != 0 {
		r.t.Errorf("both nodes accepted writes on their own for %d ms with a witness", res.DualLeaderMs)
	}
	if res.Archived != 0 || res.Lost != 0 {
		r.t.Errorf("with a witness %d acknowledged writes were archived and %d lost; want none", res.Archived, res.Lost)
	}
	if !res.Linearizable {
		why := "the whole history is not linearizable"
		if r.split != nil {
			why += " (it holds only without a loser's branch: a node answered from a history the pair set aside)"
		}
		r.t.Errorf("with a witness, %s", why)
	}
}

// witnessed runs a partition scenario and checks what a witness promises
// of it.
func witnessed(fault func(*rig)) func(*rig) {
	return func(r *rig) {
		fault(r)
		r.noSplit(r.res)
	}
}

// A full partition of the link for 20 s (two lease lengths), both nodes
// reaching the witness, the workload writing through both API servers.
// The witness keeps a leading: b's Kine has no database for 20 s, longer
// than the renew deadline, so b's components may lose their leases (its
// row sets options.cutOff "b").
func witnessFullPartition(r *rig) {
	t := r.t
	if err := r.c.Net.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	time.Sleep(20 * time.Second)
	if err := r.c.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	r.finish(fault)
	r.noSplit(r.res)
}

// Clock skew with a witness: a's wall clock ten minutes ahead, the link
// cut, writes tried through both API servers. One node wins the swap and
// takes them; the other refuses them (its leases and deadlines are on its
// monotonic clock, which the skew does not touch). Nothing is archived,
// and the winner leads after the link heals.
func witnessClockSkewSplit(r *rig) {
	t := r.t
	ctx := context.Background()
	before, cancel := context.WithTimeout(ctx, 5*time.Second)
	r.w.Run(before)
	cancel()

	if err := r.c.Net.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	winner, loser := r.aloneOne(30 * time.Second)
	// Fenced for the rest of the partition, tens of seconds.
	r.cutOff = loser
	time.Sleep(2 * time.Second) // past the detection window: the loser has decided too
	acked := map[string]int{}
	// The winner first, so that api_rto_ms is the take-over's, not the
	// loser's refusals' (each waits for the client's timeout).
	acked[winner] = r.splitWrites(ctx, winner, endpointOf(winner), 20)
	acked[loser] = r.splitWrites(ctx, loser, endpointOf(loser), 10)
	if err := r.c.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	if leader := r.settle(3 * time.Minute); leader != winner {
		t.Errorf("%s leads after the split; want %s, which won the swap at the witness and took the writes", leader, winner)
	}
	res := r.check(fault, r.w.Ops())
	t.Logf("%s won the swap: it acknowledged %d of 20 writes; %s (fenced) acknowledged %d of 10", winner, acked[winner], loser, acked[loser])
	if acked[winner] == 0 {
		t.Errorf("%s won the swap but acknowledged no write", winner)
	}
	if acked[loser] != 0 {
		t.Errorf("%s lost the swap but acknowledged %d writes", loser, acked[loser])
	}
	r.report(res)
	r.noSplit(res)
}

// aloneOne waits until exactly one node leads alone and returns it and the
// other.
func (r *rig) aloneOne(d time.Duration) (alone, other string) {
	r.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ss := r.mon.snapshot()
		if len(ss) == 0 {
			continue
		}
		switch s := ss[len(ss)-1]; {
		case s.Is("a", fsm.LeaderAlone) && !s.Is("b", fsm.LeaderAlone):
			return "a", "b"
		case s.Is("b", fsm.LeaderAlone) && !s.Is("a", fsm.LeaderAlone):
			return "b", "a"
		}
	}
	r.t.Fatalf("no single node led alone within %s of the partition", d)
	return "", ""
}

func endpointOf(node string) int {
	if node == "a" {
		return 0
	}
	return 1
}
