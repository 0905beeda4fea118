package fsm

import (
	"strings"
	"testing"
	"time"
)

// A follower whose join did not stream within the join timeout copies the
// leader's data at its next join rather than starting the same standby
// again: the leader may have dropped the WAL it needs. Found by make
// bench's scale run, where such a follower went round joining and
// starting for good.
func TestAJoinThatDidNotStreamCopiesAfresh(t *testing.T) {
	m := in(Starting)
	o := Observation{Now: t0, Self: stoppedFollower(4), Peer: leaderPeer()}
	m, d := step(t, m, o)
	if d.To != Joining || strings.Contains(kinds(d.Actions), "base-backup") || strings.Contains(kinds(d.Actions), "rewind") {
		t.Fatalf("first join: %s → %s (%s): %s", d.From, d.To, d.Reason, kinds(d.Actions))
	}
	// The standby starts but never streams.
	o.Self = notStreaming()
	o.Now = t0.Add(cfg.JoinTimeout)
	m, d = step(t, m, o)
	if d.To != Starting || d.Reason != joinTimedOut || m.JoinTimeouts != 1 {
		t.Fatalf("after the join timeout: %s → %s (%s), %d timeouts", d.From, d.To, d.Reason, m.JoinTimeouts)
	}
	o.Self = stoppedFollower(4)
	o.Now = o.Now.Add(time.Second)
	m, d = step(t, m, o)
	if d.To != Joining || !strings.Contains(d.Reason, "copying the leader's data afresh") || !strings.Contains(kinds(d.Actions), "base-backup") {
		t.Fatalf("second join: %s → %s (%s): %s", d.From, d.To, d.Reason, kinds(d.Actions))
	}
	if m.JoinTimeouts != 1 {
		t.Fatalf("joining forgot the timeout: %d", m.JoinTimeouts)
	}
	// Streaming at last: a later outage joins the cheap way again.
	o.Self = followerSelf()
	m, d = step(t, m, o)
	if d.To != Follower || m.JoinTimeouts != 0 {
		t.Fatalf("streaming: %s → %s (%s), %d timeouts", d.From, d.To, d.Reason, m.JoinTimeouts)
	}
}
