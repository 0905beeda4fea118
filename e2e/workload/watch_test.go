package workload

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// fastBackoff keeps the reflector's pauses between rounds short in tests.
var fastBackoff = &wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 10, Cap: 400 * time.Millisecond}

func startWatch(t *testing.T, ctx context.Context, opts WatchOptions, eps ...*rest.Config) *WatchChecker {
	t.Helper()
	if opts.Backoff == nil {
		opts.Backoff = fastBackoff
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 300 * time.Millisecond
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	wc, err := StartWatch(sctx, eps, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Stop() })
	return wc
}

func waitRV(t *testing.T, wc *WatchChecker, rv string) {
	t.Helper()
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", rv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wc.WaitForRV(ctx, n); err != nil {
		t.Fatalf("%v; report %+v", err, wc.Report())
	}
}

func mustOK(t *testing.T, op Op) Op {
	t.Helper()
	if op.Outcome != OK {
		t.Fatalf("%s %s: %s %s", op.Kind, op.Key, op.Outcome, op.Err)
	}
	return op
}

// TestWatchFlagsRegression: an event whose resourceVersion is lower than
// one the watch delivered before is reported, with its details.
func TestWatchFlagsRegression(t *testing.T) {
	api := newFakeAPI()
	_, cfg := api.serve(t)
	ctx := context.Background()
	w := newTestWorkload(t, "regress", cfg)
	c := w.NewClient(0)
	wc := startWatch(t, ctx, WatchOptions{LabelSelector: w.LabelSelector()}, cfg)

	a := mustOK(t, c.Create(ctx, "a", "a1"))
	b := mustOK(t, c.Create(ctx, "b", "b1"))
	waitRV(t, wc, b.OutRV)
	if r := wc.Report(); !r.Clean() || r.Events != 2 {
		t.Fatalf("before injection: %+v", r)
	}
	low, _ := strconv.ParseInt(a.OutRV, 10, 64)
	api.injectEvent(watch.Modified, "a", low) // goes back in time
	c2 := mustOK(t, c.Create(ctx, "c", "c1"))
	waitRV(t, wc, c2.OutRV)
	r := wc.Report()
	if r.Regressions != 1 || r.Clean() || len(r.Details) != 1 || !strings.Contains(r.Details[0], "resourceVersion "+a.OutRV+" after "+b.OutRV) {
		t.Fatalf("regression not flagged: %d %v", r.Regressions, r.Details)
	}
	if got := r.Streamed[0].RVs; len(got) != 4 || got[2] != low {
		t.Fatalf("recorded resourceVersions %v", got)
	}
	judgedAgain(t, r)
}

// TestWatchRelistsAfterGone: a watch that cannot resume because its
// resourceVersion was compacted away (410 Gone, "too old resource version",
// as after a failover to an API server whose watch cache starts later)
// relists by itself and goes on delivering.
func TestWatchRelistsAfterGone(t *testing.T) {
	api := newFakeAPI()
	_, cfg := api.serve(t)
	ctx := context.Background()
	w := newTestWorkload(t, "gone", cfg)
	c := w.NewClient(0)
	wc := startWatch(t, ctx, WatchOptions{LabelSelector: w.LabelSelector()}, cfg)

	waitRV(t, wc, mustOK(t, c.Create(ctx, "a", "a1")).OutRV)
	// The stream breaks and cannot come back at once (429: the reflector
	// retries from the same resourceVersion); meanwhile writes go on and
	// the history is compacted past the watch's resourceVersion.
	api.pauseWatches(true)
	api.dropWatches()
	time.Sleep(200 * time.Millisecond)
	mustOK(t, c.Create(ctx, "b", "b1"))
	mustOK(t, c.Create(ctx, "c", "c1"))
	api.compact()
	api.pauseWatches(false)
	d := mustOK(t, c.Create(ctx, "d", "d1"))
	waitRV(t, wc, d.OutRV)

	r := wc.Report()
	if r.Relists < 1 || r.ExpiredErrors < 1 || r.Resumes < 1 || !r.Recovered() || !r.Clean() {
		t.Fatalf("relists %d expired %d resumes %d clean %v; errors %v details %v",
			r.Relists, r.ExpiredErrors, r.Resumes, r.Clean(), r.Errors, r.Details)
	}
	if snap, want := wc.Snapshot(), api.state(); len(snap) != 4 || snap["b"] != want["b"] || snap["d"] != "d1" {
		t.Fatalf("reflector cache %v, server %v", snap, want)
	}
	judgedAgain(t, r)
}

// TestWatchFailsOverWhenNodeDies: two API servers on one datastore; the one
// serving the watch goes away (connections closed, then refused): the
// reflector resumes on the other from its last resourceVersion, without a
// relist.
func TestWatchFailsOverWhenNodeDies(t *testing.T) {
	api := newFakeAPI()
	srvA, cfgA := api.serve(t)
	_, cfgB := api.serve(t)
	ctx := context.Background()
	w := newTestWorkload(t, "dies", cfgB)
	c := w.NewClient(0)
	wc := startWatch(t, ctx, WatchOptions{LabelSelector: w.LabelSelector()}, cfgA, cfgB)

	waitRV(t, wc, mustOK(t, c.Create(ctx, "a", "a1")).OutRV)
	srvA.Listener.Close() // refuse new connections first, then cut the open ones
	srvA.CloseClientConnections()
	waitRV(t, wc, mustOK(t, c.Create(ctx, "b", "b1")).OutRV)

	r := wc.Report()
	if r.Resumes < 1 || r.Relists != 0 || r.EndpointSwitches < 1 || !r.Clean() {
		t.Fatalf("resumes %d relists %d switches %d clean %v; errors %v", r.Resumes, r.Relists, r.EndpointSwitches, r.Clean(), r.Errors)
	}
	last := r.Streamed[len(r.Streamed)-1]
	if last.Endpoint != 1 || !last.Resume {
		t.Fatalf("last stream %+v", last)
	}
	judgedAgain(t, r)
}

// TestWatchStallFailover: a frozen node gives no error, its stream just goes
// silent and its new requests hang; StallTimeout closes the stream and the
// reflector resumes on the other node.
func TestWatchStallFailover(t *testing.T) {
	api := newFakeAPI()
	_, cfgA, frozenA := api.serveFreezable(t)
	_, cfgB := api.serve(t)
	ctx := context.Background()
	w := newTestWorkload(t, "stall", cfgB)
	c := w.NewClient(0)
	wc := startWatch(t, ctx, WatchOptions{LabelSelector: w.LabelSelector(), StallTimeout: 400 * time.Millisecond}, cfgA, cfgB)

	waitRV(t, wc, mustOK(t, c.Create(ctx, "a", "a1")).OutRV)
	frozenA.Store(true)
	var last Op
	for i := 0; i < 10; i++ { // a steady workload, as StallTimeout assumes
		last = mustOK(t, c.Create(ctx, "k"+strconv.Itoa(i), "v"))
		time.Sleep(50 * time.Millisecond)
	}
	waitRV(t, wc, last.OutRV)
	r := wc.Report()
	if r.Stalls < 1 || r.Resumes < 1 || r.EndpointSwitches < 1 || !r.Clean() {
		t.Fatalf("stalls %d resumes %d switches %d clean %v; errors %v", r.Stalls, r.Resumes, r.EndpointSwitches, r.Clean(), r.Errors)
	}
	if len(wc.Snapshot()) != 11 {
		t.Fatalf("reflector cache has %d objects, want 11", len(wc.Snapshot()))
	}
}
