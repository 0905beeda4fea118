package harness

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is one watch event as delivered to the checker.
type Event struct {
	Key  string
	Rev  int64 // ModRevision
	Type string
	Node string // node whose kine delivered it
	At   time.Time
}

// WatchReport is what a Watcher saw.
type WatchReport struct {
	Events            []Event // delivered events in delivery order
	Regressions       int     // delivered revision <= one delivered before
	RegressionDetails []string
	Resumes           int // re-watches from lastRevision+1 after an error/stall/close
	Relists           int // relists after "required revision has been compacted"
	ListBehind        int // relists whose revision was below what had been delivered
	LastRevision      int64
	Errors            []string         // each interruption, with time and node
	Seen              map[string]int64 // key -> mod revision, from events and relists
}

// Missing returns the acked writes the watcher never learnt about (neither
// as an event nor through a relist): what a watch cache would be missing.
func (r WatchReport) Missing(acked []Op) []Op {
	var out []Op
	for _, op := range acked {
		if _, ok := r.Seen[op.Key]; !ok {
			out = append(out, op)
		}
	}
	return out
}

// Watcher watches a prefix through a node's kine the way a watch cache
// would: it resumes from lastRevision+1 after any error or channel close (on
// the other node, so it follows failovers), and relists on "required
// revision has been compacted" (which the revision fence produces). It
// checks that delivered revisions strictly increase.
type Watcher struct {
	Prefix string
	// probeEvery/probeFails: clientv3 retries a broken watch stream forever
	// on the same endpoint without telling us; a Get on the same client
	// every 500 ms detects a dead or frozen kine, and after 3 consecutive
	// failures (1.5-3 s) the watcher moves on.
	probeEvery time.Duration
	probeFails int
	// alive tells whether a target answers (see nextAlive); a test's
	// stands in for the real probe.
	alive func(context.Context, Target) bool

	targets []Target
	cancel  context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex
	rep    WatchReport
	maxRev int64 // highest delivered (or relisted) revision: the resume point
	cur    int
}

// StartWatch lists prefix (to get a start revision; bounded: 10 s across the
// targets) and starts watching from there in the background.
func StartWatch(ctx context.Context, prefix string, targets ...Target) (*Watcher, error) {
	w, err := newWatcher(prefix, targets)
	if err != nil {
		return nil, err
	}
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	for {
		err := w.relist(lctx, false)
		if err == nil {
			break
		}
		w.cur = (w.cur + 1) % len(w.targets)
		select {
		case <-lctx.Done():
			return nil, fmt.Errorf("harness: initial list of %s: %w", prefix, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	w.start(ctx)
	return w, nil
}

// StartWatchFrom starts watching from revision rev without listing first,
// like a client resuming from a revision it remembers (e.g. one seen before
// a failover). A compacted rev makes it relist.
func StartWatchFrom(ctx context.Context, prefix string, rev int64, targets ...Target) (*Watcher, error) {
	w, err := newWatcher(prefix, targets)
	if err != nil {
		return nil, err
	}
	w.maxRev = rev - 1
	w.start(ctx)
	return w, nil
}

func newWatcher(prefix string, targets []Target) (*Watcher, error) {
	if len(targets) == 0 {
		return nil, errors.New("harness: watch: no targets")
	}
	return &Watcher{
		Prefix:     prefix,
		probeEvery: 500 * time.Millisecond,
		probeFails: 3,
		alive:      alive,
		targets:    targets,
		done:       make(chan struct{}),
		rep:        WatchReport{Seen: map[string]int64{}},
	}, nil
}

func (w *Watcher) start(ctx context.Context) {
	wctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	go w.loop(wctx)
}

// Stop ends the watch and returns the report.
func (w *Watcher) Stop() WatchReport {
	w.cancel()
	<-w.done
	return w.Report()
}

// Report returns a snapshot of the report so far.
func (w *Watcher) Report() WatchReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.rep
	r.Events = append([]Event(nil), w.rep.Events...)
	r.RegressionDetails = append([]string(nil), w.rep.RegressionDetails...)
	r.Errors = append([]string(nil), w.rep.Errors...)
	r.Seen = make(map[string]int64, len(w.rep.Seen))
	for k, v := range w.rep.Seen {
		r.Seen[k] = v
	}
	r.LastRevision = w.maxRev
	return r
}

// WaitFor waits (bounded by d) until every key of ops has been seen.
func (w *Watcher) WaitFor(ops []Op, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		w.mu.Lock()
		missing := 0
		for _, op := range ops {
			if _, ok := w.rep.Seen[op.Key]; !ok {
				missing++
			}
		}
		w.mu.Unlock()
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("harness: watch still misses %d of %d keys after %v", missing, len(ops), d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var errCompacted = errors.New("compacted")

func (w *Watcher) loop(ctx context.Context) {
	defer close(w.done)
	for ctx.Err() == nil {
		err := w.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		node := w.targets[w.cur].Node
		w.rep.Errors = append(w.rep.Errors, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), node, err))
		w.mu.Unlock()
		if errors.Is(err, errCompacted) {
			// Relist where the compaction was reported; if that fails, the
			// next round tries the other node (and relists again if needed).
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			rerr := w.relist(rctx, true)
			cancel()
			if rerr == nil {
				continue
			}
		}
		w.mu.Lock()
		w.rep.Resumes++
		from := w.cur
		w.mu.Unlock()
		next, ok := w.nextAlive(ctx, from)
		if !ok {
			return
		}
		w.mu.Lock()
		w.cur = next
		w.mu.Unlock()
	}
}

// nextAlive picks the target to resume on: the first, after from, that
// answers a Get within a second (from itself last), trying again every
// 100 ms until one does. Resuming on a node that is down blocked the
// watcher there: clientv3's Watch on a powered-off node did not return
// within the scenario's 10 s wait while the other node took writes (the
// WATCH-MISSED reports after a failover).
func (w *Watcher) nextAlive(ctx context.Context, from int) (int, bool) {
	for {
		for i := 1; i <= len(w.targets); i++ {
			n := (from + i) % len(w.targets)
			if w.alive(ctx, w.targets[n]) {
				return n, true
			}
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// alive: t's kine answered a Get within a second (bounded here too, not
// only by the client's context).
func alive(ctx context.Context, t Target) bool {
	c, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := t.Client.Get(c, "/e2e-probe")
		done <- err
	}()
	select {
	case err := <-done:
		return err == nil
	case <-c.Done():
		return false
	}
}

// relist reads the whole prefix and makes its revision the new baseline.
func (w *Watcher) relist(ctx context.Context, counted bool) error {
	w.mu.Lock()
	t := w.targets[w.cur]
	w.mu.Unlock()
	resp, err := t.Client.Get(ctx, w.Prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	h := resp.Header.Revision
	if counted {
		w.rep.Relists++
		if h < w.maxRev {
			w.rep.ListBehind++
			w.rep.RegressionDetails = append(w.rep.RegressionDetails,
				fmt.Sprintf("relist on %s at revision %d, below delivered %d", t.Node, h, w.maxRev))
		}
	}
	for _, kv := range resp.Kvs {
		w.rep.Seen[string(kv.Key)] = kv.ModRevision
	}
	// Intentional: after a relist the list's revision is the baseline,
	// even if lower (counted in ListBehind above, not as a regression).
	w.maxRev = h
	return nil
}

// watchOnce runs one watch stream until it fails; it returns why.
func (w *Watcher) watchOnce(ctx context.Context) error {
	w.mu.Lock()
	t := w.targets[w.cur]
	from := w.maxRev + 1
	w.mu.Unlock()

	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go w.probe(wctx, t, cancel)

	ch := t.Client.Watch(wctx, w.Prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	for resp := range ch {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			return fmt.Errorf("%w (compact revision %d, resume from %d)", errCompacted, resp.CompactRevision, from)
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.Canceled {
			return fmt.Errorf("watch canceled: %s", resp.CancelReason)
		}
		if len(resp.Events) == 0 {
			continue // progress notification
		}
		w.record(t.Node, resp.Events)
	}
	if err := context.Cause(wctx); err != nil {
		return err
	}
	return errors.New("watch channel closed")
}

func (w *Watcher) record(node string, evs []*clientv3.Event) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	before := w.maxRev // events of one response may share a revision (one txn)
	prev := int64(0)
	for _, ev := range evs {
		rev := ev.Kv.ModRevision
		if rev <= before || rev < prev {
			w.rep.Regressions++
			w.rep.RegressionDetails = append(w.rep.RegressionDetails,
				fmt.Sprintf("%s: %s at revision %d from %s after revision %d", now.Format("15:04:05.000"), ev.Kv.Key, rev, node, max(before, prev)))
		}
		prev = rev
		if rev > w.maxRev {
			w.maxRev = rev
		}
		key := string(ev.Kv.Key)
		w.rep.Seen[key] = rev
		w.rep.Events = append(w.rep.Events, Event{Key: key, Rev: rev, Type: ev.Type.String(), Node: node, At: now})
	}
}

// probe cancels the watch after ProbeFailures consecutive failed Gets on
// its client (a killed, frozen or re-pointing kine).
func (w *Watcher) probe(ctx context.Context, t Target, cancel context.CancelCauseFunc) {
	fails := 0
	tk := time.NewTicker(w.probeEvery)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		pctx, pcancel := context.WithTimeout(ctx, w.probeEvery)
		_, err := t.Client.Get(pctx, "/e2e-probe") // a missing key: cheap
		pcancel()
		if err == nil {
			fails = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if fails++; fails >= w.probeFails {
			cancel(fmt.Errorf("liveness probe failed %d times: %w", fails, err))
			return
		}
	}
}

// InOrder reports whether the events of keys with the given prefix were
// delivered in key order with increasing revisions (for writers whose keys
// sort in write order).
func (r WatchReport) InOrder(prefix string) bool {
	var keys []string
	var last int64
	for _, e := range r.Events {
		if len(e.Key) < len(prefix) || e.Key[:len(prefix)] != prefix {
			continue
		}
		if e.Rev <= last {
			return false
		}
		last = e.Rev
		keys = append(keys, e.Key)
	}
	return sort.StringsAreSorted(keys)
}
