package workload

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
)

func newTestWorkload(t *testing.T, name string, eps ...*rest.Config) *Workload {
	t.Helper()
	w, err := New(Config{Name: name, Endpoints: eps, OpTimeout: 500 * time.Millisecond, Clients: 2, Keys: 3})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func expect(t *testing.T, op Op, outcome Outcome, reason string) {
	t.Helper()
	if op.Outcome != outcome || op.Reason != reason {
		t.Fatalf("%s %s: got %s/%s (%s), want %s/%s", op.Kind, op.Key, op.Outcome, op.Reason, op.Err, outcome, reason)
	}
	if op.Call.IsZero() || op.Return.Before(op.Call) {
		t.Fatalf("%s %s: bad times %v %v", op.Kind, op.Key, op.Call, op.Return)
	}
}

// TestOutcomes: acknowledged operations and the definite failures the
// model interprets (409 AlreadyExists, 409 Conflict on update and on
// delete preconditions, 404 NotFound), through the real client-go REST path.
func TestOutcomes(t *testing.T) {
	api := newFakeAPI()
	_, cfg := api.serve(t)
	w := newTestWorkload(t, "outcomes", cfg)
	c := w.NewClient(0)
	ctx := context.Background()

	expect(t, c.Get(ctx, "k"), Failed, ReasonNotFound)
	cr := c.Create(ctx, "k", "v1")
	expect(t, cr, OK, "")
	if cr.OutRV == "" {
		t.Fatal("create returned no resourceVersion")
	}
	expect(t, c.Create(ctx, "k", "v2"), Failed, ReasonAlreadyExists)
	up := c.Update(ctx, "k", "v3", cr.OutRV)
	expect(t, up, OK, "")
	expect(t, c.Update(ctx, "k", "v4", cr.OutRV), Failed, ReasonConflict) // stale precondition
	g := c.Get(ctx, "k")
	expect(t, g, OK, "")
	if g.OutValue != "v3" || g.OutRV != up.OutRV {
		t.Fatalf("get: %q rv %s, want v3 rv %s", g.OutValue, g.OutRV, up.OutRV)
	}
	expect(t, c.Delete(ctx, "k", cr.OutRV), Failed, ReasonConflict) // stale precondition
	expect(t, c.Delete(ctx, "k", up.OutRV), OK, "")
	expect(t, c.Delete(ctx, "k", up.OutRV), Failed, ReasonNotFound)
	expect(t, c.Update(ctx, "k", "v5", up.OutRV), Failed, ReasonNotFound)

	ops := w.Ops()
	if len(ops) != 10 || len(Acked(ops)) != 3 {
		t.Fatalf("recorded %d ops, %d acked; want 10, 3", len(ops), len(Acked(ops)))
	}
	lin, _ := CheckLinearizable(ops, CheckOptions{})
	if !lin.Linearizable() {
		t.Fatalf("history of definite outcomes not linearizable: %s", lin.Result)
	}
}

// TestUnknownOutcomes: a request the server never answers is Unknown after
// OpTimeout whether or not it was applied; one whose connection is cut
// after it was applied is Unknown too; either way the model accepts what
// reads show afterwards.
func TestUnknownOutcomes(t *testing.T) {
	api := newFakeAPI()
	_, cfg := api.serve(t)
	w := newTestWorkload(t, "unknown", cfg)
	c := w.NewClient(0)
	ctx := context.Background()
	faults := map[string]fault{"hang": hangNoApply, "applied-hang": applyThenHang, "applied-drop": applyThenDrop}
	api.setFault(func(kind Kind, key string) fault {
		if kind == KindCreate {
			return faults[key]
		}
		return noFault
	})

	op := c.Create(ctx, "hang", "h1")
	expect(t, op, Unknown, "Timeout")
	if d := op.Return.Sub(op.Call); d < 450*time.Millisecond || d > 3*time.Second {
		t.Fatalf("timed-out op took %v, want about the 500ms OpTimeout", d)
	}
	expect(t, c.Create(ctx, "applied-hang", "a1"), Unknown, "Timeout")
	drop := c.Create(ctx, "applied-drop", "d1")
	if drop.Outcome != Unknown {
		t.Fatalf("dropped connection: %s/%s (%s), want unknown", drop.Outcome, drop.Reason, drop.Err)
	}

	expect(t, c.Get(ctx, "hang"), Failed, ReasonNotFound) // did not happen
	if g := c.Get(ctx, "applied-hang"); g.Outcome != OK || g.OutValue != "a1" {
		t.Fatalf("applied-hang: %+v", g)
	}
	if g := c.Get(ctx, "applied-drop"); g.Outcome != OK || g.OutValue != "d1" {
		t.Fatalf("applied-drop: %+v", g)
	}
	lin, _ := CheckLinearizable(w.Ops(), CheckOptions{})
	if !lin.Linearizable() || lin.Unknown != 3 {
		t.Fatalf("got %s with %d unknown writes; want Ok with 3", lin.Result, lin.Unknown)
	}
}

// TestFailoverToNextEndpoint: a refused connection is Unknown and moves the
// client to the next endpoint; a 503 with Retry-After is Unknown and is not
// re-sent by client-go (a re-sent create could turn into a false 409).
func TestFailoverToNextEndpoint(t *testing.T) {
	// endpoint 0: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	// endpoint 1: answers every request with 503 Retry-After.
	var posts atomic.Int32
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"ServiceUnavailable","code":503}`))
	}))
	defer busy.Close()
	// endpoint 2: healthy.
	api := newFakeAPI()
	_, good := api.serve(t)

	w := newTestWorkload(t, "failover", &rest.Config{Host: dead}, &rest.Config{Host: busy.URL}, good)
	c := w.NewClient(0)
	ctx := context.Background()

	op := c.Create(ctx, "k", "v1")
	expect(t, op, Unknown, "ConnectionRefused")
	if op.Endpoint != 0 || c.Endpoint() != 1 {
		t.Fatalf("endpoint %d, next %d; want 0, 1", op.Endpoint, c.Endpoint())
	}
	op = c.Create(ctx, "k", "v2")
	expect(t, op, Unknown, "ServiceUnavailable")
	if n := posts.Load(); n != 1 {
		t.Fatalf("client-go sent the create %d times, want 1 (no retries)", n)
	}
	op = c.Create(ctx, "k", "v3")
	expect(t, op, OK, "")
	if op.Endpoint != 2 {
		t.Fatalf("served by endpoint %d, want 2", op.Endpoint)
	}
	// Pinned clients stay where they are.
	p := w.NewClient(1)
	p.Pin(0)
	expect(t, p.Get(ctx, "k"), Unknown, "ConnectionRefused")
	if p.Endpoint() != 0 {
		t.Fatal("pinned client moved")
	}
}

// PostgreSQL's disk_full as an error is a statement that failed (its
// transaction never committed); any other internal error is unknown.
func TestClassifyDiskFull(t *testing.T) {
	full := apierrors.NewInternalError(errors.New(`rpc error: code = Unknown desc = ERROR: could not extend file "base/16384/16385": No space left on device (SQLSTATE 53100)`))
	if o, r := Classify(full); o != Failed || r != ReasonDiskFull {
		t.Fatalf("disk full: %s %s, want failed %s", o, r, ReasonDiskFull)
	}
	other := apierrors.NewInternalError(errors.New("rpc error: code = Unknown desc = unexpected EOF"))
	if o, _ := Classify(other); o != Unknown {
		t.Fatalf("another internal error: %s, want unknown", o)
	}
}
