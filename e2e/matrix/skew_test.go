package matrix

import (
	"context"
	"fmt"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/e2e/workload"
)

// Clock skew: a's wall clock (its agent and its PostgreSQL) runs ten
// minutes ahead of b's for the whole run. Then a split with writes on both
// sides, b (the slow clock) writing last in real time: b must win, though
// every commit timestamp of a's reads ten minutes later than b's. The
// agents measure the offset while paired and correct for it.
func clockSkewSplit(r *rig) {
	t := r.t
	ctx := context.Background()
	st, err := r.c.Status(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("b measured the pair's clock offset as %s", st.ClockOffset)

	// Writes through both API servers before the split.
	before, cancel := context.WithTimeout(ctx, 5*time.Second)
	r.w.Run(before)
	cancel()

	if err := r.c.Net.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	fault := time.Now()
	r.waitState("a", 30*time.Second, fsm.LeaderAlone)
	r.waitState("b", 30*time.Second, fsm.LeaderAlone)
	// The writer through the pair's address writes to whichever node the
	// address reaches, also between the heal and that node noticing the
	// split: its write, not the scenario's, would decide which side wrote
	// last (CI: it wrote to a 0.1 s after b's last write, and a won).
	// Paused until the pair has settled; it has written since the fault.
	r.addr.Pause(true)
	sideA := r.splitWrites(ctx, "a", 0, 20)
	time.Sleep(500 * time.Millisecond)
	sideB := r.splitWrites(ctx, "b", 1, 20) // b writes last
	if err := r.c.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	if leader := r.settle(3 * time.Minute); leader != "b" {
		t.Errorf("%s leads after the split; want b, which wrote last in real time", leader)
	}
	r.addr.Pause(false)
	after := r.w.NewClient(6)
	for i := 0; i < 10; i++ {
		after.Create(ctx, fmt.Sprintf("%s-after-%d", r.name, i), r.w.NextValue(6))
	}
	res := r.check(fault, r.w.Ops())
	if sideA == 0 || sideB == 0 {
		t.Errorf("both sides must acknowledge writes in the split: a %d, b %d", sideA, sideB)
	}
	if res.Archived < sideA {
		t.Errorf("a acknowledged %d writes in the split, but only %d are in its archive", sideA, res.Archived)
	}
	r.report(res)
}

// splitWrites creates n objects through one node's API server only and
// returns how many were acknowledged.
func (r *rig) splitWrites(ctx context.Context, node string, endpoint, n int) int {
	id := 4 + endpoint
	c := r.w.NewClient(id)
	c.Pin(endpoint)
	acked := 0
	for i := 0; i < n; i++ {
		if op := c.Create(ctx, fmt.Sprintf("%s-split-%s-%d", r.name, node, i), r.w.NextValue(id)); op.Outcome == workload.OK {
			acked++
		}
	}
	return acked
}
