package matrix

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/e2e/workload"
)

// A disk that answers, slowly (issue 16): every fsync of a node's
// PostgreSQL takes a second or more for 30 s, then the disk heals. Kubernetes'
// controllers lose their leases after 10 s without a write: the figure
// that matters is the longest stretch without an acknowledged write.

const slowFor = 30 * time.Second

// slowDisk slows the named nodes' disks, waits, heals them and judges the
// run as every scenario (nothing lost, linearizable); it reports the
// longest write gap while the disks were slow.
//
// Its rows set options.slowDisk, and with both nodes slow noBetter too:
// nobody would do better, every write waits for two slow disks (3 s at
// 1.5 s a flush), and a controller may lose its lease as on any
// Kubernetes whose one disk is that slow.
//
// Two thirds into the fault, each agent named in shows must report, in its
// status, a slow disk in words that contain what shows gives it.
func (r *rig) slowDisk(slowSync time.Duration, shows map[string]string, nodes ...string) (fault, healed time.Time) {
	t := r.t
	for _, n := range nodes {
		if err := r.c.SlowDisk(n, slowSync); err != nil {
			t.Fatal(err)
		}
	}
	fault = time.Now()
	t.Logf("every fsync of %v's PostgreSQL takes %s for %s", nodes, slowSync, slowFor)
	time.Sleep(slowFor * 2 / 3)
	for _, n := range slices.Sorted(maps.Keys(shows)) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := r.c.Status(ctx, n)
		cancel()
		switch {
		case err != nil:
			t.Errorf("status of %s while a disk was slow: %v", n, err)
		case !strings.Contains(st.DiskSlow, shows[n]):
			t.Errorf("status of %s while a disk was slow says %q; want it to say %q", n, st.DiskSlow, shows[n])
		default:
			t.Logf("%s's status said: %s", n, st.DiskSlow)
		}
	}
	time.Sleep(time.Until(fault.Add(slowFor)))
	for _, n := range nodes {
		if err := r.c.SlowDisk(n, 0); err != nil {
			t.Fatal(err)
		}
	}
	healed = time.Now()
	r.finish(fault)
	acks := ackedWrites(r.w.Ops(), fault, healed)
	gap, at := longestWriteGap(acks, fault, healed)
	t.Logf("while slow: %d acknowledged writes; the longest stretch without one %s (ending %s after the fault)",
		len(acks), gap.Round(time.Millisecond), at.Sub(fault).Round(time.Millisecond))
	return fault, healed
}

// ackedWrites are the times, in order, of the writes acknowledged in
// [from, to].
func ackedWrites(ops []workload.Op, from, to time.Time) []time.Time {
	var acks []time.Time
	for _, op := range ops {
		if op.Kind != workload.KindGet && op.Outcome == workload.OK && op.Return.After(from) && op.Return.Before(to) {
			acks = append(acks, op.Return)
		}
	}
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	return acks
}

// longestWriteGap is the longest time between two acknowledgements (or
// from the fault to the first, or the last to the end), and when it ended.
func longestWriteGap(acks []time.Time, from, to time.Time) (time.Duration, time.Time) {
	gap, end, prev := time.Duration(0), to, from
	for _, at := range append(acks, to) {
		if d := at.Sub(prev); d > gap {
			gap, end = d, at
		}
		prev = at
	}
	return gap, end
}

// The follower's disk slow (1.5 s a flush: slow, yet its replies still
// advance, so the detector alone counts it alive): the leader leaves it
// behind asynchronously and keeps its role.
func followerDiskSlow(r *rig) {
	t := r.t
	fault, healed := r.slowDisk(1500*time.Millisecond,
		map[string]string{"a": "flushes on b are slow", "b": "flushes here are slow, as a measures them"}, "b")
	alone := false
	for _, s := range r.mon.snapshot() {
		if s.At.After(fault) && s.At.Before(healed) {
			if s.Is("b", fsm.Leader, fsm.LeaderAlone) {
				t.Errorf("b became %s at %s: a follower with a slow disk must not lead", s.B, s.At.Sub(fault).Round(time.Millisecond))
				return
			}
			alone = alone || s.Is("a", fsm.LeaderAlone)
		}
	}
	if !alone {
		t.Errorf("a never left its slow follower behind (leader_alone) while b's disk was slow")
	}
}

// The leader's disk slow (3 s a flush: about one write every 3 s, an
// outage for Kubernetes), the follower's fast: the leader hands over as
// for a full disk, nothing lost, and writes resume on b while a's disk is
// still slow. The rig's own checks hold the control plane to its leases.
func leaderDiskSlow(r *rig) {
	t := r.t
	fault, healed := r.slowDisk(3*time.Second, nil, "a")
	for _, s := range r.mon.snapshot() {
		if s.At.After(fault) && s.At.Before(healed) && s.Is("b", fsm.Leader, fsm.LeaderAlone) {
			acks := ackedWrites(r.w.Ops(), s.At, healed)
			if len(acks) == 0 {
				t.Fatalf("b led from %s after the disk slowed, and no write was acknowledged after that", s.At.Sub(fault).Round(time.Millisecond))
			}
			t.Logf("b led %s after a's disk slowed; the first write acknowledged after that at %s",
				s.At.Sub(fault).Round(time.Millisecond), acks[0].Sub(fault).Round(time.Millisecond))
			return
		}
	}
	t.Errorf("b did not take over in the %s a's disk was slow", healed.Sub(fault).Round(time.Second))
}

// Both disks slow (1.5 s a flush each): neither side would do better, so
// no role changes, and both agents say why.
func bothDisksSlow(r *rig) {
	t := r.t
	fault, healed := r.slowDisk(1500*time.Millisecond, map[string]string{"a": "both slow", "b": "flushes here are slow"}, "a", "b")
	for _, s := range r.mon.snapshot() {
		if s.At.After(fault) && s.At.Before(healed) && (!s.Is("a", fsm.Leader) || !s.Is("b", fsm.Follower)) {
			t.Errorf("a was %q and b %q at %s while both disks were slow: no hand-over, no flapping",
				s.A, s.B, s.At.Sub(fault).Round(time.Millisecond))
			return
		}
	}
}
