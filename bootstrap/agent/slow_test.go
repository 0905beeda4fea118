package agent

import (
	"testing"
	"time"
)

// Commits slower than the bound for the window make the verdict; one fast
// commit ends it.
func TestCommitSlowNeedsTheWholeWindow(t *testing.T) {
	var s slowness
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
		if got := s.commit(at(c.at), c.latency, bound, window); got != c.want {
			t.Fatalf("at %v, latency %v: slow %v, want %v", c.at, c.latency, got, c.want)
		}
	}
	if s.commit(at(9*time.Second), time.Hour, 0, window) {
		t.Fatal("slow with timers.slow_commit 0 (off)")
	}
}

// A follower judged slow stays so until its flushes have been fast for the
// damping period; idle (no figure) is no evidence; a follower that stops
// streaming is judged afresh when it returns.
func TestFollowerSlowIsDamped(t *testing.T) {
	var s slowness
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
		if got := s.flush(at(c.at), c.lag, c.streaming, bound, window); got != c.want {
			t.Fatalf("at %v, lag %v, streaming %v: slow %v, want %v", c.at, c.lag, c.streaming, got, c.want)
		}
	}
}
