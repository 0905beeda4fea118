package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

// Commits slower than the bound for the window make the verdict; one fast
// commit ends it.
func TestCommitSlowNeedsTheWholeWindow(t *testing.T) {
	var s commitJudge
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	bound, window := time.Second, 3*time.Second
	for _, c := range []struct {
		at, latency time.Duration
		want        bool
	}{
		{0, 2 * time.Second, false},
		{2 * time.Second, 3 * time.Second, false},
		{3 * time.Second, 3 * time.Second, true},
		{4 * time.Second, 5 * time.Millisecond, false},
		{5 * time.Second, 2 * time.Second, false}, // the window starts again
		{8 * time.Second, 2 * time.Second, true},
	} {
		if got := s.judge(at(c.at), c.latency, bound, window); got != c.want {
			t.Fatalf("at %v, latency %v: slow %v, want %v", c.at, c.latency, got, c.want)
		}
	}
	if s.judge(at(9*time.Second), time.Hour, 0, window) {
		t.Fatal("slow with timers.slow_commit 0 (off)")
	}
}

// A follower judged slow stays so until its flushes have been fast for the
// damping period; idle (no figure) is no evidence; a follower that stops
// streaming is judged afresh when it returns.
func TestFollowerSlowIsDamped(t *testing.T) {
	var s followerJudge
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	bound, window := time.Second, 3*time.Second
	slow, fast, idle := 3*time.Second, 2*time.Millisecond, time.Duration(0)
	steps := []struct {
		at        time.Duration
		lag       time.Duration
		streaming bool
		want      bool
	}{
		{0, slow, true, false},
		{3 * time.Second, slow, true, true},
		{4 * time.Second, fast, true, true},
		{20 * time.Second, idle, true, true},
		{33 * time.Second, fast, true, true}, // fast since 4 s: 29 s, still damped
		{34 * time.Second, fast, true, false},
		{35 * time.Second, slow, true, false},
		{38 * time.Second, slow, true, true},
		{39 * time.Second, idle, false, false}, // gone: not slow
		{40 * time.Second, slow, true, false},  // back: judged afresh
	}
	for _, c := range steps {
		if got := s.judge(at(c.at), c.lag, c.streaming, bound, window); got != c.want {
			t.Fatalf("at %v, lag %v, streaming %v: slow %v, want %v", c.at, c.lag, c.streaming, got, c.want)
		}
	}
}

// The trail's figure is the age of the oldest WAL flushed here and not on
// the follower: it grows while the follower is stuck, even when no reply
// comes, and is 0 once the follower has everything.
func TestFlushTrailGrowsWhileTheFollowerIsStuck(t *testing.T) {
	var f flushTrail
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, c := range []struct {
		at          time.Duration
		local, peer uint64
		want        time.Duration
	}{
		{0, 100, 100, 0},
		{time.Second, 200, 100, 0},                   // first seen now
		{2 * time.Second, 300, 100, time.Second},     // 200 waits since 1 s
		{4 * time.Second, 300, 250, 2 * time.Second}, // 300 since 2 s
		{5 * time.Second, 300, 300, 0},
		{6 * time.Second, 0, 300, 0}, // unknown position: nothing new
	} {
		if got := f.behind(at(c.at), c.local, c.peer); got != c.want {
			t.Fatalf("at %v (local %d, peer %d): behind %v, want %v", c.at, c.local, c.peer, got, c.want)
		}
	}
	// A follower stuck for hours: the trail stays bounded and the oldest
	// mark still makes the figure.
	f = flushTrail{}
	for i := range 10 * maxMarks {
		f.behind(at(time.Duration(i)*time.Second), uint64(1000+i), 10)
	}
	if len(f.marks) > maxMarks {
		t.Fatalf("%d marks kept, at most %d", len(f.marks), maxMarks)
	}
	if got := f.behind(at(time.Duration(10*maxMarks)*time.Second), 0, 10); got != time.Duration(10*maxMarks)*time.Second {
		t.Fatalf("behind %v after a long stall, want the oldest mark's age", got)
	}
}

// The evidence a slow leader needs: new WAL flushed by the follower since
// its commits turned slow, the follower not seen more than half the bound
// behind for slowDamping. With the leader's disk slow (its flushes every
// 3 s) and the follower's fast, the evidence comes with the first flush;
// with both slow, never, although PostgreSQL's flush_lag still shows the
// fast figure from before the fault, the trail sees the follower late,
// and one commit happens to be quick.
func TestFastFollowerNeedsFreshEvidence(t *testing.T) {
	bound, window := time.Second, 2*time.Second
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at, commit  time.Duration
		local, peer uint64
		pgLag       time.Duration
		want        bool
	}
	run := func(name string, steps []step) {
		var e fastFollower
		for _, c := range steps {
			if got := e.judge(at(c.at), c.commit, c.local, c.peer, c.pgLag, true, bound, window); got != c.want {
				t.Fatalf("%s: at %v: fast %v, want %v", name, c.at, got, c.want)
			}
		}
	}
	ms := time.Millisecond
	run("leader slow", []step{
		{0, 5 * ms, 100, 100, 5 * ms, false},             // commits fast: no verdict
		{1000 * ms, 1100 * ms, 100, 100, 5 * ms, false},  // slow: nothing new flushed yet
		{2500 * ms, 2600 * ms, 100, 100, 5 * ms, false},  // a commit in flight
		{3000 * ms, 3000 * ms, 200, 200, 8 * ms, true},   // flushed here at 3 s, there at once
		{3500 * ms, 400 * ms, 200, 200, 8 * ms, true},    // one quick commit: still the episode
		{6000 * ms, 3000 * ms, 300, 300, 8 * ms, true},   //
		{7500 * ms, 5 * ms, 400, 400, 5 * ms, true},      // fast again, for less than the window
		{11000 * ms, 5 * ms, 500, 500, 5 * ms, false},    // fast for the window: over
		{12000 * ms, 1500 * ms, 600, 600, 5 * ms, false}, // a new episode needs new WAL
		{12500 * ms, 1500 * ms, 700, 700, 5 * ms, true},
	})
	// a flushes every 1.5 s (200 at 1.5 s, 300 at 3 s, 400 at 4.5 s), b
	// each 1.5 s after a; the agent sees them at its ticks.
	run("both slow", []step{
		{0, 5 * ms, 100, 100, 5 * ms, false},
		{1000 * ms, 1000*ms + 1, 100, 100, 5 * ms, false},
		{1500 * ms, 1500 * ms, 200, 100, 5 * ms, false}, // flush_lag from before the fault
		{2000 * ms, 1500 * ms, 200, 100, 5 * ms, false},
		{2500 * ms, 1500 * ms, 200, 100, 5 * ms, false}, // 1 s behind: seen
		{3000 * ms, 200 * ms, 300, 200, 5 * ms, false},  // a quick commit; b flushed 200
		{4500 * ms, 1500 * ms, 400, 300, 5 * ms, false},
		{30000 * ms, 1500 * ms, 900, 900, 5 * ms, false}, // still within slowDamping of being behind
	})
	run("both slow, seen by PostgreSQL only", []step{
		{0, 5 * ms, 100, 100, 5 * ms, false},
		{1000 * ms, 1100 * ms, 100, 100, 5 * ms, false},
		{3000 * ms, 3000 * ms, 200, 200, 1500 * ms, false},
		{3500 * ms, 3000 * ms, 300, 300, 0, false},
	})
	var e fastFollower
	if e.judge(at(0), time.Hour, 200, 300, 0, false, bound, window) {
		t.Fatal("fast without a follower streaming")
	}
}

// The status line says which disk is slow on either node: the leader
// judges both, and the follower repeats the leader's verdict on its own.
func TestSlowTextOnEitherNode(t *testing.T) {
	for _, c := range []struct {
		self       fsm.Self
		judgedSlow bool
		want       string
	}{
		{fsm.Self{}, false, ""},
		{fsm.Self{CommitSlow: true, FollowerSlow: true}, false, "both slow"},
		{fsm.Self{CommitSlow: true, FollowerFast: true}, false, "b flushes fast: handing over"},
		{fsm.Self{CommitSlow: true}, false, "b takes over once it is seen to flush fast"},
		{fsm.Self{FollowerSlow: true}, false, "flushes on b are slow"},
		{fsm.Self{}, true, "flushes here are slow, as b measures them"},
	} {
		got := slowText(c.self, c.judgedSlow, "b")
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("%+v, judged slow %v: %q, want it to say %q", c.self, c.judgedSlow, got, c.want)
		}
	}
}

// A follower shows its own disk slow, in its status and its metrics, when
// its leader judges its flushes slow.
func TestFollowerShowsTheLeadersVerdict(t *testing.T) {
	r := followerRig(t)
	if v := labelled(t, r.a, "twonode_disk_slow", "local"); v != 0 {
		t.Fatalf("disk_slow{local} %v before the leader said anything", v)
	}
	r.peer.st.FollowerSlow = true
	r.tick(1)
	if v := labelled(t, r.a, "twonode_disk_slow", "local"); v != 1 {
		t.Fatalf("disk_slow{local} %v once the leader judged this node's flushes slow, want 1", v)
	}
	if s := (&LocalHandler{r.a}).Status(context.Background()).DiskSlow; !strings.Contains(s, "flushes here are slow, as a measures them") {
		t.Fatalf("status says %q", s)
	}
}

// labelled reads one labelled series of a gauge vector as /metrics shows it.
func labelled(t *testing.T, a *Agent, name, label string) float64 {
	t.Helper()
	fams, err := a.met.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s} in the agent's metrics", name, label)
	return 0
}
