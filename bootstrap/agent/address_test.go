package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

// fakeAddress is the pair's address on a fake interface; fail, if set, is
// what taking it answers.
type fakeAddress struct {
	held      bool
	fail      error
	acquires  int
	announces int
}

func (f *fakeAddress) Announce(context.Context) error { f.announces++; return nil }

func (f *fakeAddress) Acquire(context.Context) error {
	f.acquires++
	if f.fail != nil {
		return f.fail
	}
	f.held = true
	return nil
}

func (f *fakeAddress) Release(context.Context) error { f.held = false; return nil }
func (f *fakeAddress) Held() (bool, error)           { return f.held, nil }

// The address follows Kine: a follower that promotes takes it with its
// Kine, renews it at every tick while it leads, and an address that
// cannot be taken does not hold the promotion back: it is reported
// (status, metrics) and tried again until it works.
func TestAddressFollowsKineAndNeverHoldsTheDatastoreBack(t *testing.T) {
	r := followerRig(t)
	addr := &fakeAddress{fail: errors.New("operation not permitted")}
	r.a.d.VIP = addr
	r.a.cfg.VIP.Address = "10.0.0.100/24"
	r.peer.up, r.pgUp = false, false
	if s := r.tick(3); s != fsm.LeaderAlone {
		t.Fatalf("state %s after 3 failed probes with an address that cannot be taken: the promotion must not wait for it", s)
	}
	if r.kine.Target() != "10.0.0.1" {
		t.Fatalf("Kine writes to %q after the promotion", r.kine.Target())
	}
	rep := (&LocalHandler{r.a}).Status(context.Background())
	if !strings.Contains(rep.Address, "CANNOT be taken") || !strings.Contains(rep.Address, "operation not permitted") {
		t.Errorf("status says %q", rep.Address)
	}
	if v := gauge(t, r.a, "twonode_address_failing"); v != 1 {
		t.Errorf("twonode_address_failing = %v, want 1", v)
	}
	tries := addr.acquires
	addr.fail = nil
	r.tick(1)
	if !addr.held || addr.acquires <= tries {
		t.Fatalf("the address was not taken at the next tick once it could be (held %t, %d tries)", addr.held, addr.acquires)
	}
	if rep := (&LocalHandler{r.a}).Status(context.Background()); !strings.HasSuffix(rep.Address, "held by this node") {
		t.Errorf("status says %q", rep.Address)
	}
	if v := gauge(t, r.a, "twonode_address_failing"); v != 0 {
		t.Errorf("twonode_address_failing = %v once taken", v)
	}
	before := addr.acquires
	r.tick(2)
	if addr.acquires != before+2 {
		t.Errorf("%d acquisitions in 2 ticks of leading, want 2 (each starts the address's lifetime again)", addr.acquires-before)
	}
}

// gauge reads one of the agent's gauges as /metrics would show it.
func gauge(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	fams, err := a.met.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s in the agent's metrics", name)
	return 0
}

// An agent that starts removes an address an earlier one left behind,
// unless this node's Kine still serves its own database; an address it
// cannot read does not keep it from starting.
func TestAddressLeftBehind(t *testing.T) {
	r := newRig(t, "a", "b")
	addr := &fakeAddress{held: true}
	r.a.d.VIP = addr
	r.a.reconcileAddress(context.Background())
	if addr.held {
		t.Error("an address left on a node whose Kine does not serve was kept")
	}
	addr.held = true
	r.kine.target = "10.0.0.1"
	r.a.reconcileAddress(context.Background())
	if !addr.held || !r.a.addrWant {
		t.Errorf("an address on a node whose Kine serves was removed (held %t, wanted %t)", addr.held, r.a.addrWant)
	}
	r.a.d.VIP = brokenAddress{}
	r.a.reconcileAddress(context.Background()) // logs, returns
}

type brokenAddress struct{}

func (brokenAddress) Acquire(context.Context) error  { return errors.New("no netlink") }
func (brokenAddress) Release(context.Context) error  { return errors.New("no netlink") }
func (brokenAddress) Announce(context.Context) error { return errors.New("no netlink") }
func (brokenAddress) Held() (bool, error)            { return false, errors.New("no netlink") }

// A leader whose peer's Kine served its own database (a split) announces
// the address again once the peer lets go, and only then.
func TestAddressAnnouncedAgainAfterASplit(t *testing.T) {
	r := newRig(t, "a", "b")
	addr := &fakeAddress{held: true}
	r.a.d.VIP = addr
	r.a.addrWant = true
	r.kine.target = "10.0.0.1"
	for i, c := range []struct {
		peerServing bool
		announces   int
	}{{false, 0}, {true, 0}, {true, 0}, {false, 1}, {false, 1}} {
		o := fsm.Observation{Peer: fsm.Peer{AgentUp: true, KineServing: c.peerServing}}
		r.a.keepAddress(context.Background(), fsm.Machine{State: fsm.LeaderAlone}, o)
		if addr.announces != c.announces {
			t.Fatalf("tick %d (peer serving %t): %d announcements, want %d", i+1, c.peerServing, addr.announces, c.announces)
		}
	}
}

// A synchronous leader whose follower has gone quiet sets the address
// aside one probe before the detection window ends (the follower may be
// taking over, and this leader commits nothing without it), and takes it
// back when it goes on alone, or once the follower has looked healthy for
// a whole window and says it follows; a stalled tick sets it aside too.
func TestAddressSetAsideWhileTheFollowerIsQuiet(t *testing.T) {
	r := newRig(t, "a", "b")
	addr := &fakeAddress{held: true}
	r.a.d.VIP = addr
	r.a.addrWant = true
	r.kine.target = "10.0.0.1"
	if r.a.fcfg.FailureThreshold != 3 {
		t.Fatalf("the test assumes a detection window of 3 probes, not %d", r.a.fcfg.FailureThreshold)
	}
	self := fsm.Self{Term: 4}
	follows := fsm.Observation{Self: self, Peer: fsm.Peer{AgentUp: true, State: fsm.Follower, Term: 4}}
	quiet := fsm.Observation{Self: self}
	for i, c := range []struct {
		m      fsm.Machine
		o      fsm.Observation
		stall  bool
		held   bool
		status string
	}{
		{fsm.Machine{State: fsm.Leader, OKs: 5}, follows, false, true, "held by this node"},
		{fsm.Machine{State: fsm.Leader, Fails: 1}, quiet, false, true, "held by this node"},
		{fsm.Machine{State: fsm.Leader, Fails: 2}, quiet, false, false, "set aside while the follower is quiet"},
		{fsm.Machine{State: fsm.LeaderAlone, Fails: 3}, quiet, false, true, "held by this node"},
		{fsm.Machine{State: fsm.Leader, Fails: 2}, quiet, false, false, "set aside"},
		{fsm.Machine{State: fsm.Leader, OKs: 1}, follows, false, false, "set aside"},
		{fsm.Machine{State: fsm.Leader, OKs: 3}, follows, false, true, "held by this node"},
		{fsm.Machine{State: fsm.Leader, OKs: 4}, follows, true, true, "set aside"}, // the stall renews nothing
		{fsm.Machine{State: fsm.Leader, OKs: 5}, quiet, false, false, "set aside"},
		{fsm.Machine{State: fsm.Leader, OKs: 6}, follows, false, true, "held by this node"},
	} {
		if c.stall {
			r.a.stalled(r.a.d.Now(), time.Minute)
		} else {
			r.a.keepAddress(context.Background(), c.m, c.o)
		}
		rep := (&LocalHandler{r.a}).Status(context.Background())
		if addr.held != c.held || !strings.Contains(rep.Address, c.status) {
			t.Fatalf("step %d, %s with %d failed probes: held %t (want %t), status %q (want %q)",
				i+1, c.m.State, c.m.Fails, addr.held, c.held, rep.Address, c.status)
		}
	}
}

// countingWatchdog counts pets.
type countingWatchdog struct {
	mu   sync.Mutex
	pets int
}

func (w *countingWatchdog) Arm() error    { return w.Pet() }
func (w *countingWatchdog) Disarm() error { return nil }
func (w *countingWatchdog) Pet() error    { w.mu.Lock(); defer w.mu.Unlock(); w.pets++; return nil }
func (w *countingWatchdog) count() int    { w.mu.Lock(); defer w.mu.Unlock(); return w.pets }

// A long action is not a hung agent: the watchdog is petted while the
// actions run, unless this node's Kine serves its own database (then an
// action that hangs must let the watchdog reset the node before the
// witness's lease can expire).
func TestWatchdogPettedDuringLongActions(t *testing.T) {
	for _, serving := range []bool{false, true} {
		r := newRig(t, "a", "b")
		wd := &countingWatchdog{}
		r.a.d.Watchdog = wd
		r.a.cfg.Timers.ProbeInterval = 20 * time.Millisecond
		if serving {
			r.kine.target = "10.0.0.1"
		}
		stop := r.a.petWhileActing()
		time.Sleep(200 * time.Millisecond) // an action of 10 probe intervals
		stop()
		n := wd.count()
		if serving && n != 0 || !serving && n < 3 {
			t.Errorf("Kine serving here %t: %d pets during the action", serving, n)
		}
		time.Sleep(60 * time.Millisecond)
		if wd.count() != n {
			t.Error("petted after the actions ended")
		}
	}
}

// A long tick whose own decision took the address (a promotion) keeps it:
// only a tick that renewed an address taken before it sets it aside.
func TestLongTickThatTookTheAddressKeepsIt(t *testing.T) {
	r := newRig(t, "a", "b")
	addr := &fakeAddress{}
	r.a.d.VIP = addr
	r.kine.target = "10.0.0.1"
	started := r.a.d.Now()
	r.a.holdAddress(context.Background(), true)
	r.a.stalled(started, time.Minute)
	if rep := (&LocalHandler{r.a}).Status(context.Background()); !addr.held || !strings.Contains(rep.Address, "held by this node") {
		t.Fatalf("held %t, status %q: the tick that took the address set it aside", addr.held, rep.Address)
	}
	r.a.stalled(r.a.d.Now().Add(time.Second), time.Minute) // a later long tick that took nothing
	if rep := (&LocalHandler{r.a}).Status(context.Background()); !strings.Contains(rep.Address, "set aside") {
		t.Fatalf("status %q after a stalled tick, want set aside", rep.Address)
	}
}
