package workload

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// WatchOptions configures a WatchChecker.
type WatchOptions struct {
	// Namespace watched; default "default".
	Namespace string
	// LabelSelector, e.g. Workload.LabelSelector().
	LabelSelector string
	// RequestTimeout bounds each list request and the wait for a watch's
	// response headers (not the stream itself); default 5 s. A request that
	// fails or times out is tried on the next endpoint in the same call.
	RequestTimeout time.Duration
	// StallTimeout, if > 0, closes a watch stream that delivered nothing
	// (not even a bookmark) for that long, as a client-side health check
	// would; the reflector then resumes. A stream to a powered-off or
	// frozen node gives no error, it just goes silent, so under a steady
	// workload use about 2-3 s; without one leave it 0.
	StallTimeout time.Duration
	// UseWatchList lets the reflector use streaming lists (a watch with
	// sendInitialEvents) instead of LIST when client-go's WatchListClient
	// feature is on; default off (plain LIST + WATCH). Such a watch is
	// counted as a list.
	UseWatchList bool
	// Backoff of the reflector between failed list-and-watch rounds; nil:
	// client-go's default (800 ms doubling to 30 s).
	Backoff *wait.Backoff
}

// StreamRecord is one watch stream (one successful watch request).
type StreamRecord struct {
	Endpoint  int
	StartRV   string // resourceVersion the watch started from
	Resume    bool   // started after a previous stream, without a list in between
	Start     time.Time
	End       time.Time // zero while open
	EndReason string    // "closed", "stopped", "stall", "error: ..." (an ERROR event)
	RVs       []int64   // every resourceVersion delivered, in order (bookmarks too)
	Types     []watch.EventType
}

// WatchReport is what a WatchChecker saw. Resource versions are compared
// as int64: the API server on etcd or Kine uses the store's revision, though
// Kubernetes calls them opaque.
type WatchReport struct {
	Lists            int // successful lists, the first included
	Relists          int // lists after the first one
	Resumes          int // watches started from the last delivered resourceVersion after a stream ended
	Streams          int // successful watch requests
	Stalls           int // streams closed by StallTimeout
	EndpointSwitches int // requests served by another endpoint than the previous one
	Events           int // delivered events (bookmarks included)
	Bookmarks        int
	ExpiredErrors    int // 410 Gone / Expired (too old resource version) seen, in a stream or as a response
	Regressions      int // delivered resourceVersion lower than one delivered before (same stream, or across resumes)
	Duplicates       int // non-bookmark event with the resourceVersion of one delivered before
	ListBehind       int // relists whose resourceVersion is below one delivered before
	Unparsable       int // resourceVersions that are not integers (not compared)
	MaxRV            int64
	Details          []string // one line per regression, duplicate, list behind or unparsable
	Errors           []string // each failed request and each stream ended by an error, with time and endpoint
	Streamed         []StreamRecord
	// Steps: every list, stream and event in the order the reflector was
	// given them, what the checks above judged (JudgeWatch judges them
	// again).
	Steps []WatchStep
}

// Clean reports whether nothing went backwards: no regression, duplicate,
// list behind or unparsable resourceVersion.
func (r WatchReport) Clean() bool {
	return r.Regressions == 0 && r.Duplicates == 0 && r.ListBehind == 0 && r.Unparsable == 0
}

// Recovered reports whether the watch was broken and came back by itself:
// it resumed or relisted at least once.
func (r WatchReport) Recovered() bool { return r.Resumes+r.Relists > 0 }

// WatchChecker runs a client-go Reflector (the machinery of every informer)
// over ConfigMaps through the endpoints, and checks what it is delivered.
// Its ListerWatcher sends each request to the current endpoint and, on
// failure, to the next ones in the same call, the way a client behind a
// virtual IP or load balancer would reach the surviving node; the
// reflector itself decides to resume (re-watch from the last delivered
// resourceVersion) or relist (after 410 Gone, or when a round fails), and
// the checker counts which.
type WatchChecker struct {
	opts   WatchOptions
	eps    []rest.Interface
	store  cache.Store
	refl   *cache.Reflector
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	cond     *sync.Cond
	rep      WatchReport
	cur      int  // endpoint index
	lastEp   int  // endpoint of the previous successful request (-1: none)
	lastList bool // the previous lister-watcher call was a list
	judge    *watchJudge
	synced   bool
	stopped  bool
}

// StartWatch starts a WatchChecker and waits (bounded by ctx) until its
// first list and watch are established.
func StartWatch(ctx context.Context, endpoints []*rest.Config, opts WatchOptions) (*WatchChecker, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	eps, err := restClients(endpoints)
	if err != nil {
		return nil, err
	}
	wc := &WatchChecker{opts: opts, eps: eps, lastEp: -1, done: make(chan struct{})}
	wc.judge = newWatchJudge(&wc.rep)
	wc.cond = sync.NewCond(&wc.mu)
	wc.store = cache.NewStore(cache.DeletionHandlingMetaNamespaceKeyFunc)
	wc.refl = cache.NewReflectorWithOptions(&lw{wc}, &corev1.ConfigMap{}, wc.store, cache.ReflectorOptions{
		Name:    "workload-watch-checker",
		Backoff: opts.Backoff,
	})
	rctx, cancel := context.WithCancel(context.Background())
	wc.cancel = cancel
	go func() {
		defer close(wc.done)
		wc.refl.RunWithContext(rctx)
	}()
	stop := context.AfterFunc(ctx, func() {
		wc.mu.Lock()
		wc.cond.Broadcast()
		wc.mu.Unlock()
	})
	defer stop()
	wc.mu.Lock()
	for !wc.synced && ctx.Err() == nil {
		wc.cond.Wait()
	}
	wc.mu.Unlock()
	if err := ctx.Err(); err != nil {
		wc.Stop()
		return nil, fmt.Errorf("workload: watch did not start: %w (%v)", err, wc.Report().Errors)
	}
	return wc, nil
}

// Report returns a snapshot of what was seen so far.
func (wc *WatchChecker) Report() WatchReport {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	r := wc.rep
	r.Details = append([]string(nil), r.Details...)
	r.Errors = append([]string(nil), r.Errors...)
	r.Steps = append([]WatchStep(nil), r.Steps...)
	r.Streamed = make([]StreamRecord, len(wc.rep.Streamed))
	for i, s := range wc.rep.Streamed {
		s.RVs = append([]int64(nil), s.RVs...)
		s.Types = append([]watch.EventType(nil), s.Types...)
		r.Streamed[i] = s
	}
	return r
}

// Stop stops the reflector, waits for it and returns the final report.
func (wc *WatchChecker) Stop() WatchReport {
	wc.mu.Lock()
	wc.stopped = true
	wc.cond.Broadcast()
	wc.mu.Unlock()
	wc.cancel()
	<-wc.done
	return wc.Report()
}

// WaitForRV waits until the checker has been delivered (by an event, a
// bookmark or a list) a resourceVersion >= rv and the reflector has
// applied it to its cache (its LastSyncResourceVersion reached rv): proof
// that the watch is live again after a fault. For rv, see MaxAckedRV.
func (wc *WatchChecker) WaitForRV(ctx context.Context, rv int64) error {
	stop := context.AfterFunc(ctx, func() {
		wc.mu.Lock()
		wc.cond.Broadcast()
		wc.mu.Unlock()
	})
	defer stop()
	wc.mu.Lock()
	for wc.rep.MaxRV < rv && !wc.stopped && ctx.Err() == nil {
		wc.cond.Wait()
	}
	delivered, stopped := wc.rep.MaxRV, wc.stopped
	wc.mu.Unlock()
	if delivered < rv {
		if stopped {
			return fmt.Errorf("workload: watch stopped at resourceVersion %d before %d", delivered, rv)
		}
		return fmt.Errorf("workload: watch at resourceVersion %d, waiting for %d: %w", delivered, rv, ctx.Err())
	}
	// The reflector applies what it was delivered right after.
	for {
		synced, _ := parseRV(wc.refl.LastSyncResourceVersion())
		if synced >= rv {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("workload: reflector synced to resourceVersion %d, waiting for %d: %w", synced, rv, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Snapshot returns the reflector's cache: key -> value of the objects it
// believes exist (what an informer's lister would return).
func (wc *WatchChecker) Snapshot() map[string]string {
	out := map[string]string{}
	for _, o := range wc.store.List() {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			out[cm.Name] = cm.Data[DataKey]
		}
	}
	return out
}

// MaxAckedRV returns the highest resourceVersion returned by an
// acknowledged create or update in ops (0 if none), as an int64.
func MaxAckedRV(ops []Op) int64 {
	var max int64
	for _, op := range ops {
		if op.Acked() && op.OutRV != "" {
			if v, err := strconv.ParseInt(op.OutRV, 10, 64); err == nil && v > max {
				max = v
			}
		}
	}
	return max
}

// parseRV parses a resourceVersion as the int64 revision it is on etcd/Kine.
func parseRV(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// lw is the checker's ListerWatcher.
type lw struct{ wc *WatchChecker }

var (
	_ cache.ListerWatcherWithContext = (*lw)(nil)
	_ cache.ListerWatcher            = (*lw)(nil)
)

// IsWatchListSemanticsUnSupported tells the reflector whether it may use
// streaming lists (see WatchOptions.UseWatchList).
func (l *lw) IsWatchListSemanticsUnSupported() bool { return !l.wc.opts.UseWatchList }

func (l *lw) List(options metav1.ListOptions) (runtime.Object, error) {
	return l.ListWithContext(context.Background(), options)
}

func (l *lw) Watch(options metav1.ListOptions) (watch.Interface, error) {
	return l.WatchWithContext(context.Background(), options)
}

// ListWithContext lists through the current endpoint, then the others.
func (l *lw) ListWithContext(ctx context.Context, options metav1.ListOptions) (runtime.Object, error) {
	wc := l.wc
	options.LabelSelector = wc.opts.LabelSelector
	var errs []error
	for _, ep := range wc.order() {
		rctx, cancel := context.WithTimeout(ctx, wc.opts.RequestTimeout)
		list := &corev1.ConfigMapList{}
		err := wc.eps[ep].Get().Namespace(wc.opts.Namespace).Resource("configmaps").
			VersionedParams(&options, metav1.ParameterCodec).MaxRetries(0).Do(rctx).Into(list)
		cancel()
		if err == nil {
			wc.listed(ep, list.ResourceVersion, options.Continue != "")
			return list, nil
		}
		wc.failed(ep, "list", err)
		errs = append(errs, err)
		if ctx.Err() != nil || isExpired(err) {
			break // a 410 is the server's answer, not a dead node
		}
	}
	return nil, joinErrs(errs)
}

// WatchWithContext opens a watch through the current endpoint, then the
// others; a request whose response headers do not come within
// RequestTimeout is abandoned.
func (l *lw) WatchWithContext(ctx context.Context, options metav1.ListOptions) (watch.Interface, error) {
	wc := l.wc
	options.LabelSelector = wc.opts.LabelSelector
	options.Watch = true
	var errs []error
	for _, ep := range wc.order() {
		sctx, cancel := context.WithCancel(ctx)
		timer := time.AfterFunc(wc.opts.RequestTimeout, cancel)
		w, err := wc.eps[ep].Get().Namespace(wc.opts.Namespace).Resource("configmaps").
			VersionedParams(&options, metav1.ParameterCodec).MaxRetries(0).Watch(sctx)
		if !timer.Stop() && err == nil {
			w.Stop()
			err = fmt.Errorf("watch response headers not within %v", wc.opts.RequestTimeout)
		}
		if err != nil {
			cancel()
			wc.failed(ep, "watch", err)
			errs = append(errs, err)
			if ctx.Err() != nil || isExpired(err) {
				break
			}
			continue
		}
		return wc.started(ep, options, w, cancel), nil
	}
	return nil, joinErrs(errs)
}

func joinErrs(errs []error) error {
	if len(errs) == 1 {
		return errs[0] // keep its type: the reflector tells 410 and "connection refused" apart
	}
	return errors.Join(errs...)
}

func isExpired(err error) bool {
	var st interface{ Status() metav1.Status }
	if !errors.As(err, &st) {
		return false
	}
	s := st.Status()
	return s.Code == 410 || s.Reason == metav1.StatusReasonExpired || s.Reason == metav1.StatusReasonGone
}

// order returns the endpoints to try: the current one first.
func (wc *WatchChecker) order() []int {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	out := make([]int, 0, len(wc.eps))
	for i := range wc.eps {
		out = append(out, (wc.cur+i)%len(wc.eps))
	}
	return out
}

func (wc *WatchChecker) served(ep int) {
	if wc.lastEp >= 0 && wc.lastEp != ep {
		wc.rep.EndpointSwitches++
	}
	wc.lastEp, wc.cur = ep, ep
}

func (wc *WatchChecker) failed(ep int, what string, err error) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if isExpired(err) {
		wc.rep.ExpiredErrors++
	}
	wc.rep.Errors = append(wc.rep.Errors, fmt.Sprintf("%s %s endpoint %d: %v", time.Now().Format("15:04:05.000"), what, ep, err))
	if !isExpired(err) && wc.cur == ep {
		wc.cur = (ep + 1) % len(wc.eps)
	}
}

func (wc *WatchChecker) listed(ep int, rvs string, continued bool) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	wc.served(ep)
	if continued { // a further page of the same list
		return
	}
	wc.rep.Lists++
	if wc.rep.Lists > 1 {
		wc.rep.Relists++
	}
	wc.lastList = true
	wc.given(WatchStep{Kind: StepList, RV: rvs, Endpoint: ep})
	if rv, ok := parseRV(rvs); ok && rv > wc.rep.MaxRV {
		wc.rep.MaxRV = rv
	}
	wc.cond.Broadcast()
}

// given records a step and judges it (under wc.mu).
func (wc *WatchChecker) given(s WatchStep) {
	wc.rep.Steps = append(wc.rep.Steps, s)
	wc.judge.step(s)
}

func (wc *WatchChecker) started(ep int, options metav1.ListOptions, inner watch.Interface, cancel context.CancelFunc) watch.Interface {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	wc.served(ep)
	initial := options.SendInitialEvents != nil && *options.SendInitialEvents
	if initial { // a streaming list
		wc.rep.Lists++
		if wc.rep.Lists > 1 {
			wc.rep.Relists++
		}
	}
	resume := !initial && !wc.lastList && wc.rep.Streams > 0
	if resume {
		wc.rep.Resumes++
	}
	wc.lastList = false
	wc.rep.Streams++
	idx := len(wc.rep.Streamed)
	wc.rep.Streamed = append(wc.rep.Streamed, StreamRecord{Endpoint: ep, StartRV: options.ResourceVersion, Resume: resume, Start: time.Now()})
	wc.given(WatchStep{Kind: StepStream, Stream: idx, RV: options.ResourceVersion, Initial: initial, Endpoint: ep})
	cw := &checkedWatch{wc: wc, idx: idx, inner: inner, cancel: cancel, out: make(chan watch.Event), stop: make(chan struct{})}
	go cw.run()
	return cw
}

// event records one delivered event of stream idx and judges it (see
// watchJudge).
func (wc *WatchChecker) event(idx int, ev watch.Event) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	s := &wc.rep.Streamed[idx]
	if ev.Type == watch.Error {
		st, _ := ev.Object.(*metav1.Status)
		if st != nil && (st.Code == 410 || st.Reason == metav1.StatusReasonExpired || st.Reason == metav1.StatusReasonGone) {
			wc.rep.ExpiredErrors++
		}
		msg := fmt.Sprintf("%v", ev.Object)
		if st != nil {
			msg = fmt.Sprintf("%d %s: %s", st.Code, st.Reason, st.Message)
		}
		s.EndReason = "error: " + msg
		wc.rep.Errors = append(wc.rep.Errors, fmt.Sprintf("%s watch endpoint %d: ERROR event %s", time.Now().Format("15:04:05.000"), s.Endpoint, msg))
		return
	}
	acc, err := meta.Accessor(ev.Object)
	if err != nil {
		wc.rep.Unparsable++
		wc.rep.Details = append(wc.rep.Details, fmt.Sprintf("stream %d: %s event without metadata: %v", idx, ev.Type, err))
		return
	}
	wc.rep.Events++
	if ev.Type == watch.Bookmark {
		wc.rep.Bookmarks++
	}
	wc.given(WatchStep{Kind: StepEvent, Stream: idx, RV: acc.GetResourceVersion(), Type: ev.Type, Name: acc.GetName(), Endpoint: s.Endpoint,
		Initial: ev.Type == watch.Bookmark && acc.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true"})
	rv, ok := parseRV(acc.GetResourceVersion())
	if !ok {
		return
	}
	s.RVs = append(s.RVs, rv)
	s.Types = append(s.Types, ev.Type)
	if rv > wc.rep.MaxRV {
		wc.rep.MaxRV = rv
		wc.cond.Broadcast()
	}
}

func (wc *WatchChecker) ended(idx int, reason string) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	s := &wc.rep.Streamed[idx]
	s.End = time.Now()
	if s.EndReason == "" {
		s.EndReason = reason
	}
	if reason == "stall" {
		wc.rep.Stalls++
		wc.rep.Errors = append(wc.rep.Errors, fmt.Sprintf("%s watch endpoint %d: no event for %v, closed", s.End.Format("15:04:05.000"), s.Endpoint, wc.opts.StallTimeout))
		if wc.cur == s.Endpoint {
			wc.cur = (s.Endpoint + 1) % len(wc.eps)
		}
	}
	if !wc.synced {
		wc.synced = true // a list and a watch happened
		wc.cond.Broadcast()
	}
}

// markSynced is called once the first stream is open after a list.
func (wc *WatchChecker) markSynced() {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if !wc.synced {
		wc.synced = true
		wc.cond.Broadcast()
	}
}

// checkedWatch forwards a watch's events to the reflector after recording
// them, and closes it when stalled.
type checkedWatch struct {
	wc     *WatchChecker
	idx    int
	inner  watch.Interface
	cancel context.CancelFunc
	out    chan watch.Event
	stop   chan struct{}
	once   sync.Once
}

func (c *checkedWatch) Stop() {
	c.once.Do(func() { close(c.stop) })
}

func (c *checkedWatch) ResultChan() <-chan watch.Event { return c.out }

func (c *checkedWatch) run() {
	reason := "closed"
	defer func() {
		c.inner.Stop()
		c.cancel()
		c.wc.ended(c.idx, reason)
		close(c.out)
	}()
	c.wc.markSynced()
	var stall <-chan time.Time
	var timer *time.Timer
	if d := c.wc.opts.StallTimeout; d > 0 {
		timer = time.NewTimer(d)
		defer timer.Stop()
		stall = timer.C
	}
	for {
		select {
		case <-c.stop:
			reason = "stopped"
			return
		case <-stall:
			reason = "stall"
			return
		case ev, ok := <-c.inner.ResultChan():
			if !ok {
				return
			}
			if timer != nil {
				timer.Reset(c.wc.opts.StallTimeout)
			}
			c.wc.event(c.idx, ev)
			select {
			case c.out <- ev:
			case <-c.stop:
				reason = "stopped"
				return
			}
		}
	}
}
