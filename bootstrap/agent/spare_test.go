package agent

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/witness"
)

// countingWitness answers as a witness whose term record is term 1 by a
// at revision 7, with no alone record; it counts what it is asked, and
// refuses a swap from any other revision, as etcd does.
type countingWitness struct {
	grants, claims, reads int
	froms                 []witness.State
	helds                 []clientv3.LeaseID
	now                   time.Time
}

func (w *countingWitness) state() witness.State {
	return witness.State{Term: witness.Seen{Term: witness.Term{Term: 1, By: "a"}, Rev: 7}}
}

func (w *countingWitness) Read(context.Context) (witness.State, error) {
	w.reads++
	return w.state(), nil
}

func (w *countingWitness) ReadLocal(ctx context.Context) (witness.State, error) { return w.Read(ctx) }

func (w *countingWitness) Grant(context.Context) (witness.Lease, error) {
	w.grants++
	return witness.Lease{ID: clientv3.LeaseID(100 + w.grants), TTL: 10 * time.Second, Deadline: w.now.Add(9 * time.Second)}, nil
}

func (w *countingWitness) Claim(_ context.Context, from witness.State, term uint64, held witness.Lease) (bool, witness.State, witness.Lease, error) {
	w.claims++
	w.froms, w.helds = append(w.froms, from), append(w.helds, held.ID)
	if from.Term.Rev != w.state().Term.Rev {
		return false, w.state(), witness.Lease{}, nil // a swap from another revision is refused
	}
	st := witness.State{Term: witness.Seen{Term: witness.Term{Term: term, By: "a"}, Rev: 8}, Alone: &witness.Alone{Term: term, By: "a"}}
	return true, st, held, nil
}

func (w *countingWitness) Renew(_ context.Context, l witness.Lease) (witness.Lease, error) {
	return l, nil
}
func (w *countingWitness) Release(context.Context, witness.Lease) error { return nil }

// A leader whose follower has failed probes in two ticks takes a spare
// lease alongside its probes, and its claim at the end of the window is
// then one request; a claim refused only because its view was stale is
// made again at once from the witness's answer.
func TestSpareLeaseAndStaleViewClaim(t *testing.T) {
	r := newRig(t, "a", "b")
	w := &countingWitness{now: r.a.d.Now()}
	r.a.d.Witness = w
	r.a.cfg.Witness.RequestTimeout = time.Second
	r.a.cfg.Witness.LeaseTTL = 10 * time.Second
	ctx := context.Background()
	if r.a.cfg.Timers.FailureThreshold != 3 {
		t.Fatalf("the test assumes a detection window of 3 probes, not %d", r.a.cfg.Timers.FailureThreshold)
	}
	r.a.wv.reachable = true

	r.a.m = fsm.Machine{State: fsm.Leader}
	r.a.prepareLease(ctx, r.a.d.Now())
	if w.grants != 0 {
		t.Fatalf("a steady leader took a spare lease (%d grants)", w.grants)
	}
	r.a.m.Fails = 1
	r.a.readWitness(ctx, r.a.d.Now())
	reads := w.reads
	r.a.readWitness(ctx, r.a.d.Now())
	if w.reads != reads {
		t.Errorf("a leader inside its detection window read the witness again at once (%d reads, then %d): it reads only at the steady pace until the window ends", reads, w.reads)
	}
	r.a.prepareLease(ctx, r.a.d.Now())
	r.a.prepareLease(ctx, r.a.d.Now())
	if w.grants != 1 || r.a.wv.spare.ID == 0 {
		t.Fatalf("after two ticks with failed probes: %d grants, spare %x; want one spare", w.grants, r.a.wv.spare.ID)
	}
	if r.a.witnessFacts(r.a.d.Now()).Lease {
		t.Fatal("the core sees a spare lease as the lease to lead alone under")
	}

	// The view is stale: the witness's record moved to revision 7 since.
	r.a.wv.st = witness.State{Term: witness.Seen{Term: witness.Term{Term: 1, By: "a"}, Rev: 5}}
	if err := r.a.witnessClaim(ctx, 2); err != nil {
		t.Fatalf("claim: %v", err)
	}
	if w.grants != 1 {
		t.Errorf("the claim granted a lease of its own although a spare was ready (%d grants)", w.grants)
	}
	if w.claims != 2 || w.froms[1].Term.Rev != 7 || w.helds[0] != 101 || w.helds[1] != 101 {
		t.Errorf("claims %d from revisions %v with leases %v: want a refused claim from 5, then one from the witness's 7, both with the spare 101",
			w.claims, []int64{w.froms[0].Term.Rev, w.froms[len(w.froms)-1].Term.Rev}, w.helds)
	}
	if r.a.wv.lease.ID != 101 || !r.a.witnessFacts(r.a.d.Now()).Lease {
		t.Errorf("after winning, the lease held is %x (valid to the core: %t), want the spare 101", r.a.wv.lease.ID, r.a.witnessFacts(r.a.d.Now()).Lease)
	}
	if got := r.a.st.WitnessLease; got != 101 {
		t.Errorf("the state file records lease %x, want the spare 101 it claimed with", got)
	}

	// A follower claims WitnessDefer probes later: its spare comes a tick
	// before that, and none while its view shows the leader gone on alone.
	f := newRig(t, "b", "a")
	fw := &countingWitness{now: f.a.d.Now()}
	f.a.d.Witness, f.a.wv.reachable, f.a.fcfg.WitnessDefer = fw, true, 2
	f.a.cfg.Witness.RequestTimeout = time.Second
	f.a.m, f.a.st.Term = fsm.Machine{State: fsm.Follower, Fails: 2}, 1
	f.a.prepareLease(ctx, f.a.d.Now())
	if fw.grants != 0 {
		t.Errorf("a follower took a spare with 2 failed probes, 3 before it may claim")
	}
	f.a.m.Fails = 3
	f.a.wv.st = witness.State{Term: witness.Seen{Term: witness.Term{Term: 1, By: "a"}, Rev: 8}, Alone: &witness.Alone{Term: 1, By: "a"}}
	f.a.prepareLease(ctx, f.a.d.Now())
	if fw.grants != 0 {
		t.Errorf("a follower whose leader leads alone took a spare it will not claim with")
	}
	f.a.wv.st.Alone = nil
	f.a.prepareLease(ctx, f.a.d.Now())
	if fw.grants != 1 {
		t.Errorf("a follower a tick before it may claim took %d spares, want 1", fw.grants)
	}
}
