package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/agent"
	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// A follower away for longer than its leader keeps WAL for comes back by a
// full copy. The leader writes WAL past max_slot_wal_keep_size while b is
// powered off, and a checkpoint drops it: b's standby cannot stream
// ("requested WAL segment ... has already been removed"). It used to start
// that standby again at every join timeout for good (found by make bench's
// scale run); then it copied the leader's data after one join timeout
// (2 min 2 s); now a leads b to it at once: it reports where its oldest WAL
// begins, past where b's standby must resume.
func TestLongOutageRejoinsByCopy(t *testing.T) {
	c := newCluster(t, harness.NetLongOutage)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := c.PowerOff("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitState(ctx, "a", time.Minute, string(fsm.LeaderAlone)); err != nil {
		t.Fatal(err)
	}
	slots, err := c.DropSlotWAL(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a wrote WAL past max_slot_wal_keep_size while b was off; its slots: %s", slots)
	start := time.Now()
	if err := c.Start("b"); err != nil {
		t.Fatal(err)
	}
	// Seconds, not the join timeout: the copy follows the WAL-gone row.
	if _, err := c.WaitState(ctx, "b", 5*time.Minute, string(fsm.Follower)); err != nil {
		t.Fatalf("b did not follow again: %v\n%s", err, c.Logs("b", 30))
	}
	if _, err := c.WaitState(ctx, "a", time.Minute, string(fsm.Leader)); err != nil {
		t.Fatal(err)
	}
	t.Logf("b follows again, the pair synchronous, %s after b's start", time.Since(start).Round(time.Millisecond))
	// Checked on the records of b's actions, not on the rows' words: b
	// copied a's data, and did so before a join timeout could have ended
	// its first join (the only other way to the copy).
	acts, err := harness.LogRecords(filepath.Join(c.Nodes["b"].Dir, "agent.log"), "action")
	if err != nil {
		t.Fatal(err)
	}
	copied := slices.ContainsFunc(acts, func(r map[string]string) bool { return r["action"] == "base-backup" && r["err"] == "<nil>" })
	if !copied {
		t.Fatalf("b follows again without a base backup: did its WAL survive after all? slots were: %s", slots)
	}
	if took := time.Since(start); took >= agent.JoinTimeout {
		t.Errorf("b followed %s after its start, not before the join timeout (%s): it waited the timeout out although a said its WAL was gone", took, agent.JoinTimeout)
	}
}
