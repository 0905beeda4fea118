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
	if d.To != Starting || d.Reason != joinTimedOut || m.FailedJoins != 1 {
		t.Fatalf("after the join timeout: %s → %s (%s), %d timeouts", d.From, d.To, d.Reason, m.FailedJoins)
	}
	o.Self = stoppedFollower(4)
	o.Now = o.Now.Add(time.Second)
	m, d = step(t, m, o)
	if d.To != Joining || !strings.Contains(d.Reason, "copying the leader's data afresh") || !strings.Contains(kinds(d.Actions), "base-backup") {
		t.Fatalf("second join: %s → %s (%s): %s", d.From, d.To, d.Reason, kinds(d.Actions))
	}
	if m.FailedJoins != 1 {
		t.Fatalf("joining forgot the timeout: %d", m.FailedJoins)
	}
	// Streaming at last: a later outage joins the cheap way again.
	o.Self = followerSelf()
	m, d = step(t, m, o)
	if d.To != Follower || m.FailedJoins != 0 {
		t.Fatalf("streaming: %s → %s (%s), %d timeouts", d.From, d.To, d.Reason, m.FailedJoins)
	}
}

// A standby whose leader no longer keeps the WAL it must resume from does
// not wait out the join timeout: it starts over at once and copies afresh.
// While the leader still has that WAL, or says nothing, it waits.
func TestAJoinWhoseWALIsGoneCopiesAfresh(t *testing.T) {
	o := Observation{Now: t0.Add(10 * time.Second), Self: notStreaming(), Peer: leaderPeer()}
	o.Self.ReplayLSN = 0x5000000
	for _, oldest := range []uint64{0, 0x4000000, 0x5000000} {
		o.Peer.OldestWAL = oldest
		if _, d := step(t, in(Joining), o); d.Changed {
			t.Fatalf("the leader keeps WAL from %#x, this standby resumes at %#x: %s → %s (%s)", oldest, o.Self.ReplayLSN, d.From, d.To, d.Reason)
		}
	}
	o.Peer.OldestWAL = 0x6000000
	m, d := step(t, in(Joining), o)
	if d.To != Starting || !strings.Contains(d.Reason, "no longer keeps the WAL") || m.FailedJoins != 1 {
		t.Fatalf("WAL gone: %s → %s (%s), %d failed joins", d.From, d.To, d.Reason, m.FailedJoins)
	}
	o.Self = stoppedFollower(4)
	m, d = step(t, m, o)
	if d.To != Joining || d.Reason != copyAfresh || !strings.Contains(kinds(d.Actions), "base-backup") {
		t.Fatalf("next join: %s → %s (%s): %s", d.From, d.To, d.Reason, kinds(d.Actions))
	}
}
