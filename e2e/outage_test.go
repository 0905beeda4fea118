package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	log, err := os.ReadFile(filepath.Join(c.Nodes["b"].Dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, reason := range []string{"the leader no longer keeps the WAL this standby must resume from", "copying the leader's data afresh"} {
		if !strings.Contains(string(log), reason) {
			t.Fatalf("b follows again without the row %q: did its WAL survive after all? slots were: %s", reason, slots)
		}
	}
	if strings.Contains(string(log), "not streaming within the join timeout") {
		t.Errorf("b waited out a join timeout although a said its WAL was gone")
	}
}
