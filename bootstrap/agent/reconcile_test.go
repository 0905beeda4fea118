package agent

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// restart is the agent's process killed and started again: the same data
// directory, PostgreSQL and Kine (they are other processes), a new Agent.
func (r *rig) restart() {
	r.t.Helper()
	a, err := New(r.a.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), r.a.d)
	if err != nil {
		r.t.Fatal(err)
	}
	r.a = a
}

// leaderRig is a node that stored "leader of term", with its data and
// PostgreSQL running.
func leaderRig(t *testing.T, term uint64) *rig {
	r := newRig(t, "a", "b")
	r.db.data, r.db.up = true, true
	if err := saveState(r.a.cfg.DataDir, Persisted{Member: true, Term: term, TermRole: fsm.RoleLeader}); err != nil {
		t.Fatal(err)
	}
	r.a.st, _ = loadState(r.a.cfg.DataDir)
	return r
}

func (r *rig) persisted() Persisted {
	r.t.Helper()
	st, err := loadState(r.a.cfg.DataDir)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// Killed after pg_promote and before the term was saved: the restarted
// agent finds a primary where it stored a follower, and the intent. It
// finishes the promotion (it used to try to start a standby on a running
// primary, refused for ever, with Kine stopped).
func TestPromotionCutShortIsFinished(t *testing.T) {
	for _, returns := range []bool{false, true} {
		r := followerRig(t)
		r.peer.up, r.pgUp = false, false // the leader dies
		r.db.failOn = "fence"            // stands for the kill: the step after pg_promote
		r.tick(3)
		if r.db.standby || r.persisted().Intent == nil || !r.persisted().Intent.Promotes {
			t.Fatalf("setup: standby=%v intent=%+v", r.db.standby, r.persisted().Intent)
		}
		if returns {
			// The old leader is back first, not yet serving.
			r.peer.up = true
			r.peer.st = peer.Status{Name: "a", State: "starting", Member: true, Term: 3, TermRole: "leader"}
		}
		r.restart()
		if s := r.tick(1); s != fsm.LeaderAlone {
			t.Fatalf("returns=%v: state %s after the restart, want leader_alone (calls %v)", returns, s, r.db.Calls())
		}
		st := r.persisted()
		if st.Term != 4 || st.TermRole != fsm.RoleLeader || st.Intent != nil {
			t.Fatalf("returns=%v: persisted %+v", returns, st)
		}
		if r.kine.Target() != "10.0.0.1" {
			t.Fatalf("returns=%v: kine at %q", returns, r.kine.Target())
		}
	}
}

// A plain crash (the old leader returns with a lower term) archives what
// it had in flight but is not a lost split: no flap damping.
func TestPlainCrashIsNotALostSplit(t *testing.T) {
	for _, peerTerm := range []uint64{6, 5} {
		r := leaderRig(t, 5)
		r.db.archived = []string{`{"id":5,"name":"/x"}`}
		r.peer.up, r.pgUp = true, true
		r.peer.st = peer.Status{Name: "b", State: "leader_alone", Member: true, Term: peerTerm, TermRole: "leader", PGUp: true, Primary: true,
			LastCommit: r.now.UnixNano()} // b wrote last
		if s := r.tick(1); s != fsm.Joining {
			t.Fatalf("state %s, want joining", s)
		}
		st := r.persisted()
		want := 0
		if peerTerm == 5 {
			want = 1 // two leaders of one term: a real split
		}
		if len(st.LostSplits) != want || len(st.Archives) != 1 {
			t.Fatalf("peer term %d: lost splits %d (want %d), archives %d", peerTerm, len(st.LostSplits), want, len(st.Archives))
		}
	}
}

// b off → a leads alone and writes → a off → b boots and takes over the
// same term number → a returns: a's data is read before the split is
// decided, and a wrote last, so a leads and b rejoins.
func TestRebootedLeaderThatWroteLastWins(t *testing.T) {
	r := newRig(t, "a", "b")
	r.db.data = true // powered off: its PostgreSQL is down
	if err := saveState(r.a.cfg.DataDir, Persisted{Member: true, Term: 5, TermRole: fsm.RoleLeader}); err != nil {
		t.Fatal(err)
	}
	r.a.st, _ = loadState(r.a.cfg.DataDir)
	r.db.lastWrite = r.now.Add(-time.Minute)
	r.peer.up, r.pgUp = true, true
	r.peer.st = peer.Status{Name: "b", State: "leader_alone", Member: true, Term: 5, TermRole: "leader", PGUp: true, Primary: true,
		KineServing: true, LastCommit: r.now.Add(-10 * time.Minute).UnixNano()}
	if s := r.tick(1); s != fsm.Starting || !r.db.up || r.db.standby || r.kine.Target() != "" {
		t.Fatalf("state %s, pg up %v standby %v, kine %q: want its database started, not serving", s, r.db.up, r.db.standby, r.kine.Target())
	}
	if s := r.tick(1); s != fsm.Starting {
		t.Fatalf("state %s while the peer still serves, want starting", s)
	}
	r.peer.st.KineServing = false // b stopped for the split
	if s := r.tick(1); s != fsm.LeaderAlone {
		t.Fatalf("state %s, want leader_alone: a wrote last", s)
	}
}

// A loser whose rejoin cannot finish (the winner's database port blocked)
// has conceded all the same: it tells the winner, which resumes writes.
func TestLoserConcedesWhenItsRejoinFails(t *testing.T) {
	r := leaderRig(t, 5)
	r.peer.up = true
	r.peer.st = peer.Status{Name: "b", State: "leader_alone", Member: true, Term: 6, TermRole: "leader", PGUp: true, Primary: true}
	r.db.peerBlocked = true
	r.tick(1)
	st := r.persisted()
	if st.Intent == nil || !st.Intent.Discards {
		t.Fatalf("intent %+v, want a conceded rejoin (calls %v, state %+v)", st.Intent, r.db.Calls(), st)
	}
	calls := r.db.Calls()
	if slices.Contains(calls, "rewind: no connection") && slices.Contains(calls, "basebackup: no connection") {
		t.Fatalf("a rewind that could not connect fell back to a base backup: %v", calls)
	}
	if ps := (&PeerHandler{r.a}).Status(context.Background()); !ps.Rejoining {
		t.Fatalf("status does not say rejoining: %+v", ps)
	}
	// Restarted with the winner away: it never leads on that data.
	r.peer.up = false
	r.restart()
	if s := r.tick(20); s != fsm.Starting || r.kine.Target() == "10.0.0.1" {
		t.Fatalf("state %s, kine %q: a conceded node led", s, r.kine.Target())
	}
	// The winner is back: the rejoin finishes.
	r.peer.up, r.db.peerBlocked = true, false
	if s := r.tick(4); s != fsm.Follower || r.persisted().Intent != nil || r.kine.Target() != "10.0.0.2" {
		t.Fatalf("state %s intent %+v kine %q, want a follower with the intent cleared", s, r.persisted().Intent, r.kine.Target())
	}
}

// A sign of life from replication is a change of the server's mark, read
// on the agent's own clock: a mark that stands still is silence however
// recent the (peer's) time it carries, and a changing one is life however
// far the peer's clock is off. The first mark after a start is no news.
func TestPeerHeardIsJudgedOnTheAgentsClock(t *testing.T) {
	r := newRig(t, "a", "b")
	now := r.now
	mark := func(m string) postgres.Status { return postgres.Status{Up: true, PeerMark: m} }
	if r.a.peerHeard(mark("2026-11-22 12:00:05+00 0/3000060"), now) {
		t.Fatal("the first mark after the start counted as news")
	}
	now = now.Add(500 * time.Millisecond)
	if !r.a.peerHeard(mark("2026-11-22 12:00:06+00 0/3000060"), now) {
		t.Fatal("a changed mark is not a sign of life")
	}
	for i := 0; i < 4; i++ { // 2 s of the same mark
		now = now.Add(500 * time.Millisecond)
	}
	if r.a.peerHeard(mark("2026-11-22 12:00:06+00 0/3000060"), now) {
		t.Fatal("a mark that stood still for 2 s is still a sign of life")
	}
}
