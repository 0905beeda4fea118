package agent

import (
	"testing"
	"time"
)

// A commit stuck on a stalled disk reads as its age while it lasts, and
// the figure falls back once it ends.
func TestCommitMeterShowsAStallWhileItLasts(t *testing.T) {
	var c commitMeter
	t0 := time.Now()
	c.end(4 * time.Millisecond)
	if d := c.latency(t0); d != 4*time.Millisecond {
		t.Fatalf("after a 4 ms commit: %v", d)
	}
	c.begin(t0)
	if d := c.latency(t0.Add(time.Millisecond)); d != 4*time.Millisecond {
		t.Fatalf("1 ms into a probe: %v, want the last probe's 4 ms", d)
	}
	if d := c.latency(t0.Add(3 * time.Second)); d != 3*time.Second {
		t.Fatalf("3 s into a stuck probe: %v, want 3 s", d)
	}
	c.end(3100 * time.Millisecond) // it failed after 3.1 s: its time counts
	if d := c.latency(t0.Add(time.Hour)); d != 3100*time.Millisecond {
		t.Fatalf("after the stuck probe ended: %v", d)
	}
	c.reset()
	if d := c.latency(t0.Add(time.Hour)); d != 0 {
		t.Fatalf("after a reset (no longer primary): %v", d)
	}
}
