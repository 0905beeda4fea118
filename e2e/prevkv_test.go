package e2e

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// prevKey is written before a failover and updated after it, outside the
// writers' prefix so that no checker counts it.
const prevKey = "/e2e-prev/written-before-the-fence"

// putPrevKeyBefore writes prevKey through the leader before the fault.
func putPrevKeyBefore(t *testing.T, c *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, prevKey, "before"); err != nil {
		t.Fatal(err)
	}
}

// checkPrevKeyAfter updates prevKey through the new leader, whose
// promotion fenced the revisions (the compact revision is now past the
// key's last one), and resumes a watch from just before the update, as an
// API server whose Kine was re-pointed does. The update's event must carry
// the previous value: the API server refuses an update without one
// ("etcd event received with PrevKv=nil") and resumes from the same
// revision for ever, so its watch cache never moves again (Kine patch
// 0003).
func checkPrevKeyAfter(t *testing.T, c *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var from, updated int64
	for {
		get, err := c.Get(ctx, prevKey)
		if err == nil {
			from = get.Header.Revision + 1
			var put *clientv3.PutResponse
			if put, err = c.Put(ctx, prevKey, "after"); err == nil {
				updated = put.Header.Revision
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("updating %s through the new leader: %v", prevKey, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	wch := c.Watch(ctx, prevKey, clientv3.WithRev(from), clientv3.WithPrevKV())
	for resp := range wch {
		if err := resp.Err(); err != nil {
			t.Fatalf("watch of %s from %d: %v", prevKey, from, err)
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision != updated {
				continue
			}
			if ev.PrevKv == nil || string(ev.PrevKv.Value) != "before" {
				t.Fatalf("a watch resumed at %d after the fence: the update at %d has previous value %v, want %q", from, updated, ev.PrevKv, "before")
			}
			return
		}
	}
	t.Fatalf("a watch resumed at %d after the fence never delivered the update at %d: %v", from, updated, ctx.Err())
}
