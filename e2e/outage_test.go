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
// scale run); now the join after the first timeout copies the leader's data.
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
	// One join timeout (2 min), then the copy.
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
	if !strings.Contains(string(log), "copying the leader's data afresh") {
		t.Fatalf("b follows again without the copy row: did its WAL survive after all? slots were: %s", slots)
	}
}
