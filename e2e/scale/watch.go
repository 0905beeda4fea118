package scale

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// watches are n etcd watches on one prefix, each its own Watch call on
// one client (clientv3 carries them on one gRPC stream; Kine serves each
// with a watcher of its own), kept open across the crash: a watch that
// breaks resumes from the revision after its last event, and one told its
// revision was compacted (the new leader fences revisions) watches again
// from now, as a client relisting would.
type watches struct {
	mu      sync.Mutex
	armed   bool
	fault   time.Time
	pastRev int64       // revisions up to here were written before the fault
	first   []time.Time // per watch: its first event past pastRev
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

func openWatches(ctx context.Context, cli *clientv3.Client, n int, prefix string) *watches {
	ctx, cancel := context.WithCancel(ctx)
	w := &watches{first: make([]time.Time, n), cancel: cancel}
	for i := 0; i < n; i++ {
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			w.follow(ctx, cli, i, prefix)
		}()
	}
	return w
}

func (w *watches) follow(ctx context.Context, cli *clientv3.Client, i int, prefix string) {
	var rev int64 // 0: from now
	for ctx.Err() == nil {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		wctx, stop := context.WithCancel(ctx)
		for resp := range cli.Watch(wctx, prefix, opts...) {
			if resp.CompactRevision != 0 {
				rev = 0
				break
			}
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				rev = ev.Kv.ModRevision + 1
				w.saw(i, ev.Kv.ModRevision, time.Now())
			}
		}
		stop()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (w *watches) saw(i int, rev int64, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed && rev > w.pastRev && w.first[i].IsZero() {
		w.first[i] = at
	}
}

// arm starts timing: from fault, to each watch's first event written after
// every write acknowledged before it (revision past pastRev).
func (w *watches) arm(fault time.Time, pastRev int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed, w.fault, w.pastRev = true, fault, pastRev
}

// resumed is how many watches delivered such an event, and when the last
// of them did, from the fault (ok only when all did).
func (w *watches) resumed() (n int, last time.Duration, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.first {
		if !t.IsZero() {
			n++
			last = max(last, t.Sub(w.fault))
		}
	}
	return n, last, n == len(w.first)
}

// wait waits up to d for every watch to resume.
func (w *watches) wait(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, _, ok := w.resumed(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *watches) close() {
	w.cancel()
	w.done.Wait()
}
