package harness

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestResumeOnlyOnANodeThatAnswers: after a stream on b fails while a is
// powered off, the watcher resumes on b again, not on a: it used to move
// on to the next target blindly, and clientv3's Watch on the powered-off
// node never returned (most WATCH-MISSED reports after a failover, 9302fbf).
func TestResumeOnlyOnANodeThatAnswers(t *testing.T) {
	w, err := newWatcher("/e2e/x/", []Target{{Node: "a"}, {Node: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	up := map[string]bool{"a": false, "b": true}
	var asked []string
	w.alive = func(_ context.Context, tg Target) bool {
		asked = append(asked, tg.Node)
		return up[tg.Node]
	}
	if n, ok := w.nextAlive(context.Background(), 1); !ok || n != 1 {
		t.Fatalf("resumed on %d (%v), asked %v; want b", n, ok, asked)
	}
	// Neither answers: it waits, and takes the first that comes back.
	up["b"] = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	time.AfterFunc(300*time.Millisecond, func() { w.mu.Lock(); up["a"] = true; w.mu.Unlock() })
	w.alive = func(_ context.Context, tg Target) bool { w.mu.Lock(); defer w.mu.Unlock(); return up[tg.Node] }
	if n, ok := w.nextAlive(ctx, 1); !ok || n != 0 {
		t.Fatalf("resumed on %d (%v); want a once it answers", n, ok)
	}
}

// TestWatcherFlagsRegression: an event at or below a revision delivered
// before (a node that resumed from an older history) is counted.
func TestWatcherFlagsRegression(t *testing.T) {
	w, err := newWatcher("/e2e/x/", []Target{{Node: "a"}, {Node: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, rev int64) *clientv3.Event {
		return &clientv3.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
	}
	w.record("a", []*clientv3.Event{put("/e2e/x/1", 10), put("/e2e/x/2", 10), put("/e2e/x/3", 11)}) // one txn shares a revision
	w.record("b", []*clientv3.Event{put("/e2e/x/4", 11), put("/e2e/x/5", 12)})
	r := w.Report()
	if r.Regressions != 1 || len(r.RegressionDetails) != 1 || r.LastRevision != 12 || len(r.Seen) != 5 {
		t.Fatalf("regressions %d %v, last %d, seen %d", r.Regressions, r.RegressionDetails, r.LastRevision, len(r.Seen))
	}
	if missing := r.Missing([]Op{{Key: "/e2e/x/5"}, {Key: "/e2e/x/6"}}); len(missing) != 1 || missing[0].Key != "/e2e/x/6" {
		t.Fatalf("missing %v", missing)
	}
}
