package peer

import (
	"testing"
	"time"
)

func TestChallengesSingleUse(t *testing.T) {
	c := newChallenges(newFakeClock().now)
	k := c.issue()
	if !wellFormedChallenge(k) {
		t.Fatalf("challenge %q is not 64 lower-case hex digits", k)
	}
	if !c.consume(k) {
		t.Fatal("fresh challenge refused")
	}
	if c.consume(k) {
		t.Fatal("challenge accepted twice")
	}
}

func TestChallengesExpire(t *testing.T) {
	clk := newFakeClock()
	c := newChallenges(clk.now)
	a, b := c.issue(), c.issue()
	clk.advance(challengeTTL)
	if !c.consume(a) {
		t.Fatal("challenge refused at exactly the TTL")
	}
	clk.advance(time.Nanosecond)
	if c.consume(b) {
		t.Fatal("expired challenge accepted")
	}
	// Expired ones are swept when the next is issued.
	d := c.issue()
	clk.advance(challengeTTL + 1)
	c.issue()
	if c.len() != 1 || c.consume(d) {
		t.Fatalf("expired challenges kept: %d outstanding", c.len())
	}
}

func TestChallengesClockBackwardsFailsClosed(t *testing.T) {
	clk := newFakeClock()
	c := newChallenges(clk.now)
	k := c.issue()
	clk.advance(-time.Second)
	if c.consume(k) {
		t.Fatal("challenge accepted after the clock went backwards")
	}
}

func TestChallengesBounded(t *testing.T) {
	c := newChallenges(newFakeClock().now)
	first := c.issue()
	second := c.issue()
	for range challengeCap - 1 {
		c.issue()
	}
	if c.len() != challengeCap {
		t.Fatalf("%d outstanding, want the cap %d", c.len(), challengeCap)
	}
	if c.consume(first) {
		t.Fatal("the oldest challenge should have been evicted")
	}
	if !c.consume(second) {
		t.Fatal("the second oldest should still be there")
	}
}
