package workload

import (
	"bytes"
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"k8s.io/client-go/rest"
)

func TestResultLine(t *testing.T) {
	r := Result{Scenario: `leader "power" loss`, Acked: 120, Lost: 2, Archived: 2, DualLeaderMs: 0, Linearizable: true}
	want := `RESULT {"table":"fault-matrix","scenario":"leader \"power\" loss","api_rto_ms":null,"acked":120,"lost":2,"archived":2,"dual_leader_ms":0,"ha_restored_ms":null,"linearizable":true,"dual_vip_ms":null,"vip_move_ms":null,"vip_rto_ms":null,"cm_renew_gap_ms":null,"sched_renew_gap_ms":null,"lease_losses":null,"controllers_ms":null}`
	if got := r.Line(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	r.APIRTOms, r.HARestoredMs, r.DualLeaderMs, r.Linearizable = Ms(1534*time.Millisecond), Ms(9*time.Second), 40, false
	r.DualVIPms, r.VIPMoveMs, r.VIPRTOms = Ms(0), Ms(1712*time.Millisecond), Ms(2100*time.Millisecond)
	losses := 0
	r.CMRenewGapMs, r.SchedRenewGapMs, r.LeaseLosses, r.ControllersMs = Ms(2104*time.Millisecond), Ms(4*time.Second), &losses, Ms(850*time.Millisecond)
	var b bytes.Buffer
	if err := PrintResult(&b, r); err != nil {
		t.Fatal(err)
	}
	want = `RESULT {"table":"fault-matrix","scenario":"leader \"power\" loss","api_rto_ms":1534,"acked":120,"lost":2,"archived":2,"dual_leader_ms":40,"ha_restored_ms":9000,"linearizable":false,"dual_vip_ms":0,"vip_move_ms":1712,"vip_rto_ms":2100,"cm_renew_gap_ms":2104,"sched_renew_gap_ms":4000,"lease_losses":0,"controllers_ms":850}` + "\n"
	if b.String() != want {
		t.Fatalf("got  %s\nwant %s", b.String(), want)
	}
	// api_rto_ms: first acknowledged write invoked at or after the fault.
	h := newHistory()
	h.op(0, KindCreate, "a", "a1", "", 900, 1200, OK, "", "1") // invoked before the fault
	h.op(0, KindCreate, "b", "b1", "", 1000, 1100, Unknown, "Timeout", "")
	h.op(1, KindUpdate, "a", "a2", "1", 1300, 1450, OK, "", "2")
	h.op(2, KindCreate, "c", "c1", "", 1400, 1420, OK, "", "3")
	if rto := APIRTO(h.ops, h.at(1000)); rto == nil || *rto != 420 {
		t.Fatalf("api_rto_ms %v, want 420", rto)
	}
	if rto := APIRTO(h.ops, h.at(2000)); rto != nil {
		t.Fatalf("api_rto_ms %v, want nil", *rto)
	}
}

func TestConfigValidation(t *testing.T) {
	cfg := &rest.Config{Host: "http://127.0.0.1:1"}
	for _, c := range []Config{
		{Endpoints: []*rest.Config{cfg}},                   // no name
		{Name: "Bad_Name", Endpoints: []*rest.Config{cfg}}, // not a DNS name
		{Name: "ok"}, // no endpoints
		{Name: "ok", Endpoints: []*rest.Config{cfg}, ReadRatio: 0.95, DeleteRatio: 0.1}, // > 1
	} {
		if _, err := New(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// checkRun applies every check of a scenario to a finished run.
func checkRun(t *testing.T, w *Workload, wc *WatchChecker, fault time.Time, name string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	final, err := w.ReadFinal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ops := w.Ops()
	lost := Lost(final, ops, nil)
	vis := filepath.Join(t.TempDir(), name+".html")
	lin, err := CheckLinearizable(ops, CheckOptions{Timeout: 10 * time.Second, VisualizePath: vis})
	if err != nil {
		t.Fatal(err)
	}
	if err := wc.WaitForRV(ctx, MaxAckedRV(ops)); err != nil {
		t.Fatal(err)
	}
	rep := wc.Stop()
	r := NewResult(name, ops, fault, lost, lin)
	t.Logf("%s", r.Line())
	t.Logf("ops %d (ok %d, failed %d, unknown %d), lost-checked %d, porcupine %s over %d ops in %v; watch: %d events, %d streams, %d resumes, %d relists, %d stalls, %d switches",
		len(ops), Count(ops, OK), Count(ops, Failed), Count(ops, Unknown), lost.Checked, lin.Result, lin.Ops, lin.Elapsed.Round(time.Millisecond),
		rep.Events, rep.Streams, rep.Resumes, rep.Relists, rep.Stalls, rep.EndpointSwitches)
	if !r.OK() || len(lost.Missing) != 0 {
		t.Fatalf("result %s: missing %+v; visualization %s", r.Line(), lost.Missing, lin.Visualized)
	}
	if !rep.Clean() {
		t.Fatalf("watch went backwards: %v", rep.Details)
	}
	if snap := wc.Snapshot(); len(snap) != len(final) {
		t.Fatalf("reflector cache %v, final state %v", snap, final)
	}
	for k, v := range final {
		if wc.Snapshot()[k] != v {
			t.Fatalf("reflector cache %v, final state %v", wc.Snapshot(), final)
		}
	}
	return r
}

// TestRunKeepsScore: concurrent clients, bounded rate and duration, with
// faults injected into a share of the writes (never answered and not
// applied; applied and never answered; applied and the connection cut):
// the run stops by itself, every kind of operation and outcome occurs,
// nothing acknowledged is lost, the history (with its unknown outcomes) is
// linearizable and the watch saw everything in order.
func TestRunKeepsScore(t *testing.T) {
	api := newFakeAPI()
	_, cfg := api.serve(t)
	var writes atomic.Int64
	api.setFault(func(kind Kind, _ string) fault {
		if kind == KindGet {
			return noFault
		}
		if n := writes.Add(1); n%6 == 0 { // one write in 6, the three faults in turn
			return []fault{hangNoApply, applyThenHang, applyThenDrop}[(n/6)%3]
		}
		return noFault
	})
	w, err := New(Config{Name: "score", Endpoints: []*rest.Config{cfg}, Clients: 4, Keys: 4,
		Rate: 400, Duration: 2 * time.Second, OpTimeout: 250 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wc := startWatch(t, ctx, WatchOptions{LabelSelector: w.LabelSelector()}, cfg)
	start := time.Now()
	ops := w.Run(ctx)
	if d := time.Since(start); d < 2*time.Second || d > 3*time.Second {
		t.Fatalf("run took %v, want its 2 s Duration", d)
	}
	// At most rate x duration (+1 burst); at least enough for the checks
	// below even on a loaded machine.
	if n := len(ops); n < 40 || n > 2*400+1 {
		t.Fatalf("%d ops in 2 s at 400/s", n)
	}
	seen := map[Kind]bool{}
	reasons := map[string]bool{}
	for _, op := range ops {
		seen[op.Kind] = true
		reasons[string(op.Outcome)+"/"+op.Reason] = true
	}
	for _, k := range []Kind{KindCreate, KindUpdate, KindDelete, KindGet} {
		if !seen[k] {
			t.Errorf("no %s ops", k)
		}
	}
	for _, r := range []string{"ok/", "failed/AlreadyExists", "failed/Conflict", "failed/NotFound", "unknown/Timeout", "unknown/ConnectionLost"} {
		if !reasons[r] {
			t.Errorf("no %s outcome; got %v", r, reasons)
		}
	}
	checkRun(t, w, wc, start, "score")
}

// TestRunFailover: two API servers on one datastore; the preferred one
// freezes mid-run. Clients time out, move to the other and go on; the
// watch notices the silence and resumes there; the score is clean and
// api_rto_ms measures the gap.
func TestRunFailover(t *testing.T) {
	api := newFakeAPI()
	_, cfgA, frozenA := api.serveFreezable(t)
	_, cfgB := api.serve(t)
	eps := []*rest.Config{cfgA, cfgB}
	w, err := New(Config{Name: "failover", Endpoints: eps, Clients: 4, Keys: 6,
		Rate: 150, Duration: 2500 * time.Millisecond, OpTimeout: 300 * time.Millisecond, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wc := startWatch(t, ctx, WatchOptions{LabelSelector: w.LabelSelector(), StallTimeout: 500 * time.Millisecond}, eps...)
	faultAt := make(chan time.Time, 1)
	go func() {
		time.Sleep(time.Second)
		frozenA.Store(true)
		faultAt <- time.Now()
	}()
	w.Run(ctx)
	fault := <-faultAt
	r := checkRun(t, w, wc, fault, "failover")
	if r.APIRTOms == nil || *r.APIRTOms > 1500 {
		t.Fatalf("api_rto_ms %v", r.APIRTOms)
	}
	onB := 0
	for _, op := range w.Ops() {
		if op.Call.After(fault.Add(time.Second)) && op.Endpoint == 1 && op.Outcome == OK {
			onB++
		}
	}
	if onB == 0 {
		t.Fatal("no acknowledged operation on the second endpoint after the fault")
	}
}

// TestRunDetectsBrokenServer: the checks catch a server that breaks its
// promises, through the whole client path: stale reads make the history
// non-linearizable; an acknowledged create that was never stored is
// reported lost (unless archived) and makes the history non-linearizable.
func TestRunDetectsBrokenServer(t *testing.T) {
	ctx := context.Background()
	t.Run("stale reads", func(t *testing.T) {
		api := newFakeAPI()
		_, cfg := api.serve(t)
		api.setStaleReads(true)
		w, err := New(Config{Name: "stale-run", Endpoints: []*rest.Config{cfg}, Clients: 3, Keys: 3,
			Rate: 300, Duration: time.Second, ReadRatio: 0.4, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		w.Run(ctx)
		lin, _ := CheckLinearizable(w.Ops(), CheckOptions{Timeout: 10 * time.Second})
		if lin.Result != porcupine.Illegal {
			t.Fatalf("stale reads: %s over %d ops, want Illegal", lin.Result, lin.Ops)
		}
	})
	t.Run("lost ack", func(t *testing.T) {
		api := newFakeAPI()
		_, cfg := api.serve(t)
		w, err := New(Config{Name: "lost-run", Endpoints: []*rest.Config{cfg}, Clients: 3, Keys: 3,
			Rate: 300, Duration: 500 * time.Millisecond, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		w.Run(ctx)
		api.setFault(func(kind Kind, key string) fault {
			if kind == KindCreate && key == "lost-run-extra" {
				return ackNoApply
			}
			return noFault
		})
		ack := w.NewClient(9).Create(ctx, "lost-run-extra", "x1")
		if ack.Outcome != OK {
			t.Fatalf("create: %+v", ack)
		}
		final, err := w.ReadFinal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// ReadFinal records reads of the workload's own keys only; read the
		// extra key too so that porcupine sees the loss.
		w.NewClient(10).Get(ctx, "lost-run-extra")
		ops := w.Ops()
		rep := Lost(final, ops, nil)
		if len(rep.Missing) != 1 || rep.Missing[0].Key != "lost-run-extra" || rep.OK() {
			t.Fatalf("lost: missing %+v", rep.Missing)
		}
		archive := Archive{}
		archive.Add(KV{Key: "lost-run-extra", Value: "x1"})
		if rep := Lost(final, ops, archive); len(rep.Archived) != 1 || !rep.OK() {
			t.Fatalf("archived: %+v", rep)
		}
		if lin, _ := CheckLinearizable(ops, CheckOptions{}); lin.Result != porcupine.Illegal {
			t.Fatalf("lost ack: %s, want Illegal", lin.Result)
		}
	})
}
