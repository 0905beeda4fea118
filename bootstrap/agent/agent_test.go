package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/archive"
	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/pki"
)

// rig is an agent on fakes with a hand-driven clock: each tick() is one
// probe interval.
type rig struct {
	t    *testing.T
	a    *Agent
	db   *fakeDB
	peer *fakePeer
	kine *fakeKine
	pgUp bool // the peer's PostgreSQL answers
	now  time.Time
}

func newRig(t *testing.T, name, peerName string) *rig {
	cfg := config.Default()
	cfg.Node = config.Host{Name: name, Address: "10.0.0.1"}
	cfg.Peer = config.Host{Name: peerName, Address: "10.0.0.2"}
	cfg.DataDir = t.TempDir()
	cfg.Timers.BootGrace = 5 * time.Second
	r := &rig{t: t, db: &fakeDB{}, peer: &fakePeer{}, kine: &fakeKine{}, now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	a, err := New(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Deps{
		DB: r.db, Kine: r.kine, Peer: r.peer, Secret: []byte("test secret"),
		PingPeer: func(context.Context) error {
			if r.pgUp {
				return nil
			}
			return context.DeadlineExceeded
		},
		Now: func() time.Time { return r.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	return r
}

func (r *rig) tick(n int) fsm.State {
	for i := 0; i < n; i++ {
		r.a.tick(context.Background(), nil)
		r.now = r.now.Add(500 * time.Millisecond)
	}
	m, _, _ := r.a.snapshot()
	return m.State
}

func TestFormingFreshPair(t *testing.T) {
	r := newRig(t, "a", "b")
	r.peer.up, r.peer.st = true, peer.Status{Name: "b", State: "starting"}
	if s := r.tick(1); s != fsm.LeaderAlone {
		t.Fatalf("state %s, want leader_alone", s)
	}
	if got := strings.Join(r.db.Calls(), ","); got != "initdb,start(standby=false)" {
		t.Fatalf("calls %s", got)
	}
	if r.kine.Target() != "10.0.0.1" {
		t.Fatalf("kine points at %q", r.kine.Target())
	}
	st, err := loadState(r.a.cfg.DataDir)
	if err != nil || !st.Member || st.Term != 1 || st.TermRole != fsm.RoleLeader {
		t.Fatalf("persisted %+v %v", st, err)
	}
	// The follower streams: synchronous after two good probes.
	r.db.peerStreaming = true
	r.peer.st = peer.Status{Name: "b", State: "follower", Member: true, Term: 1, TermRole: "follower"}
	if s := r.tick(2); s != fsm.Leader || !r.db.sync {
		t.Fatalf("state %s sync %v, want leader with sync", s, r.db.sync)
	}
	// A restarted agent never runs initdb over the data.
	r2 := newRig(t, "a", "b")
	r2.a.cfg.DataDir = r.a.cfg.DataDir
	r2.db.data, r2.db.up = true, true
	r2.peer.up, r2.peer.st = true, peer.Status{Name: "b", State: "starting"}
	r2.tick(3)
	for _, c := range r2.db.Calls() {
		if c == "initdb" {
			t.Fatal("initdb over existing data")
		}
	}
}

func followerRig(t *testing.T) *rig {
	r := newRig(t, "b", "a")
	r.db.data, r.db.up, r.db.standby = true, true, true
	if err := saveState(r.a.cfg.DataDir, Persisted{Member: true, Term: 3, TermRole: fsm.RoleFollower}); err != nil {
		t.Fatal(err)
	}
	r.a.st, _ = loadState(r.a.cfg.DataDir)
	r.peer.up, r.pgUp = true, true
	r.peer.st = peer.Status{Name: "a", State: "leader", Member: true, Term: 3, TermRole: "leader", PGUp: true, Primary: true}
	if s := r.tick(1); s != fsm.Follower {
		t.Fatalf("state %s, want follower", s)
	}
	return r
}

// A local PostgreSQL that answers too slowly is busy, not down: the
// follower keeps following for failure_threshold-1 slow ticks and treats
// it as down only after that.
func TestSlowLocalPostgresIsNotDown(t *testing.T) {
	r := followerRig(t)
	r.db.slow = true
	if s := r.tick(2); s != fsm.Follower {
		t.Fatalf("state %s after 2 slow status answers, want follower", s)
	}
	r.db.slow = false
	if s := r.tick(1); s != fsm.Follower {
		t.Fatalf("state %s after the server answered again, want follower", s)
	}
	// A standby that stays slow is still not known down: a follower sent
	// back to starting could promote while WAL flows (issue 10, item 4).
	r.db.slow = true
	if s := r.tick(6); s != fsm.Follower {
		t.Fatalf("state %s after 6 slow answers in a row, want follower", s)
	}
	// A refused connection is down at once.
	r.db.slow, r.db.up = false, false
	if s := r.tick(1); s != fsm.Starting {
		t.Fatalf("state %s with the standby down, want starting", s)
	}
}

func TestFollowerPromotesAfterTheWindow(t *testing.T) {
	r := followerRig(t)
	r.peer.up, r.pgUp = false, false
	if s := r.tick(2); s != fsm.Follower {
		t.Fatalf("promoted after 2 failed probes: %s", s)
	}
	if s := r.tick(1); s != fsm.LeaderAlone {
		t.Fatalf("state %s after 3 failed probes", s)
	}
	calls := strings.Join(r.db.Calls(), ",")
	if !strings.Contains(calls, "promote,fence") {
		t.Fatalf("calls %s", calls)
	}
	st, _ := loadState(r.a.cfg.DataDir)
	if st.Term != 4 || st.TermRole != fsm.RoleLeader || r.kine.Target() != "10.0.0.1" {
		t.Fatalf("after promotion: %+v kine %q", st, r.kine.Target())
	}
	rep := (&LocalHandler{r.a}).Status(context.Background())
	if rep.LastFailover <= 0 || !strings.Contains(rep.LastTransition, "follower → leader_alone") {
		t.Fatalf("status %+v", rep)
	}
}

func TestPausedFollowerNeverPromotes(t *testing.T) {
	r := followerRig(t)
	msg, err := (&LocalHandler{r.a}).Pause(context.Background(), time.Hour)
	if err != nil || r.peer.paused != time.Hour || !strings.Contains(msg, "paused on b and a") {
		t.Fatalf("pause: %q %v peer %s", msg, err, r.peer.paused)
	}
	r.peer.up, r.pgUp = false, false
	if s := r.tick(20); s != fsm.Follower {
		t.Fatalf("paused follower moved to %s", s)
	}
	// The pause survives a restart of the agent.
	st, _ := loadState(r.a.cfg.DataDir)
	if !st.PausedUntil.After(r.now) {
		t.Fatalf("pause not persisted: %+v", st)
	}
	if _, err := (&LocalHandler{r.a}).Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := r.tick(1); s != fsm.LeaderAlone {
		t.Fatalf("resumed follower did not promote: %s", s)
	}
}

func TestFailedActionIsRetried(t *testing.T) {
	r := followerRig(t)
	r.db.failOn = "promote"
	r.peer.up, r.pgUp = false, false
	if s := r.tick(3); s != fsm.Follower {
		t.Fatalf("state %s after a failed promotion, want follower", s)
	}
	if s := r.tick(4); s != fsm.LeaderAlone { // after the 1 s back-off
		t.Fatalf("not retried: %s", s)
	}
}

// The back-off after a failed transition holds only that transition: a
// leader that failed to go on alone, then sees its peer lead again, acts on
// that at the next tick, not a back-off later.
func TestBackOffHoldsOnlyTheFailedTransition(t *testing.T) {
	r := leaderRig(t, 5)
	r.peer.up, r.pgUp, r.db.peerStreaming = true, true, true
	r.peer.st = peer.Status{Name: "b", State: "follower", Member: true, Term: 5, TermRole: "follower", PGUp: true}
	if s := r.tick(2); s != fsm.Leader {
		t.Fatalf("state %s, want leader", s)
	}
	r.db.failOn = "sync(false)"
	r.peer.up, r.pgUp, r.db.peerStreaming = false, false, false
	if s := r.tick(3); s != fsm.Leader || r.a.lastErr == "" {
		t.Fatalf("state %s, error %q: want going alone to have failed", s, r.a.lastErr)
	}
	failedAt := r.a.lastTrans
	r.peer.up, r.pgUp = true, true
	r.peer.st = peer.Status{Name: "b", State: "leader_alone", Member: true, Term: 6, TermRole: "leader", PGUp: true, Primary: true}
	r.tick(1) // within the 1 s back-off of the failed one
	if r.a.lastErr != "" || r.a.lastTrans == failedAt {
		t.Fatalf("the next tick's decision on the returned peer waited (error %q, last transition %q)", r.a.lastErr, r.a.lastTrans)
	}
}

func TestSplitLoserArchives(t *testing.T) {
	r := leaderRig(t, 5)
	r.db.archived = []string{`{"id":5,"name":"/x"}`}
	r.peer.up, r.pgUp = true, true
	r.peer.st = peer.Status{Name: "b", State: "leader_alone", Member: true, Term: 6, TermRole: "leader", PGUp: true, Primary: true}
	// An older archive, beyond archives.keep once the new one is written.
	r.a.cfg.Archives.Keep = 1
	old := filepath.Join(r.a.cfg.DataDir, "archive", "split-term3-1"+archive.Ext)
	if err := os.MkdirAll(filepath.Dir(old), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	if s := r.tick(1); s != fsm.Joining {
		t.Fatalf("state %s, want joining", s)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("the older archive is still there (archives.keep 1): %v", err)
	}
	files, _ := archive.Files(filepath.Join(r.a.cfg.DataDir, "archive"))
	if len(files) != 1 || !strings.HasSuffix(files[0], archive.Ext) {
		t.Fatalf("archive files %v, want one sealed", files)
	}
	fi, _ := os.Stat(files[0])
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive mode %v", fi.Mode())
	}
	raw, _ := os.ReadFile(files[0])
	if strings.Contains(string(raw), `"/x"`) {
		t.Fatal("the archive holds its row in clear")
	}
	f, err := archive.Open(files[0], []byte("test secret"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(f)
	f.Close()
	if err != nil || !strings.Contains(string(text), `{"id":5,"name":"/x"}`) {
		t.Fatalf("the archive reads %q, %v", text, err)
	}
	rep := (&LocalHandler{r.a}).Status(context.Background())
	if len(rep.Archives) != 1 || rep.Archives[0].Rows != 1 || rep.Archives[0].Winner != "b" {
		t.Fatalf("status archives %+v", rep.Archives)
	}
	calls := strings.Join(r.db.Calls(), ",")
	if !strings.Contains(calls, "archive,stop,rewind,start(standby=true)") {
		t.Fatalf("calls %s", calls)
	}
}

// Two leaders of one term compare their last writes, not their last
// commits of any kind: an API server renews its leases on its own side of
// a split, and that renewal must not decide which side's writes survive.
// The comparison waits until both Kines have stopped.
func TestSplitIsDecidedByTheLastWrite(t *testing.T) {
	r := leaderRig(t, 5)
	if s := r.tick(12); s != fsm.LeaderAlone { // boot grace over, peer unseen
		t.Fatalf("state %s, want leader_alone", s)
	}
	_, _, st := r.a.snapshot() // leading alone began a new term
	bWrote := r.now.Add(-2 * time.Second)
	r.db.lastWrite = bWrote.Add(-time.Second) // a's last create came first...
	r.db.lastCommit = bWrote.Add(time.Second) // ...its lease renewal last
	r.peer.up, r.pgUp = true, true
	r.peer.st = peer.Status{Name: "b", State: "leader_alone", Member: true, Term: st.Term, TermRole: "leader", PGUp: true, Primary: true,
		KineServing: true, LastCommit: bWrote.UnixNano()}
	if s := r.tick(1); s != fsm.LeaderAlone || r.kine.Target() != "" {
		t.Fatalf("state %s, kine at %q: want leader_alone with kine stopped", s, r.kine.Target())
	}
	if s := r.tick(2); s != fsm.LeaderAlone {
		t.Fatalf("state %s while the peer's kine still serves, want leader_alone", s)
	}
	if got := (&PeerHandler{r.a}).Status(context.Background()).LastCommit; got != r.db.lastWrite.UnixNano() {
		t.Fatalf("reported last commit %v, want the last write %v", time.Unix(0, got), r.db.lastWrite)
	}
	r.peer.st.KineServing = false
	if s := r.tick(1); s != fsm.Joining {
		t.Fatalf("state %s, want joining: b wrote last", s)
	}
}

// `twonode pause` without --for pauses both nodes for the configured expiry.
func TestPauseDefaultsToTheExpiry(t *testing.T) {
	r := followerRig(t)
	if _, err := (&LocalHandler{r.a}).Pause(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if r.peer.paused != r.a.cfg.Timers.PauseExpiry {
		t.Fatalf("peer paused for %s, want %s", r.peer.paused, r.a.cfg.Timers.PauseExpiry)
	}
	st, _ := loadState(r.a.cfg.DataDir)
	if got := st.PausedUntil.Sub(r.now); got != r.a.cfg.Timers.PauseExpiry {
		t.Fatalf("paused for %s", got)
	}
}

// Rewound data that will not start as a standby is replaced by a base
// backup, and a retried rejoin does not archive (read) the data again.
func TestRewoundDataThatWillNotStartIsCopied(t *testing.T) {
	r := leaderRig(t, 5)
	r.peer.up, r.pgUp = true, true
	r.peer.st = peer.Status{Name: "b", State: "leader_alone", Member: true, Term: 6, TermRole: "leader", PGUp: true, Primary: true}
	r.db.failOn = "start(standby=true)"
	if s := r.tick(1); s != fsm.Joining {
		t.Fatalf("state %s, want joining", s)
	}
	calls := strings.Join(r.db.Calls(), ",")
	if !strings.Contains(calls, "rewind,start(standby=true),stop,basebackup") {
		t.Fatalf("calls %s", calls)
	}
	st, _ := loadState(r.a.cfg.DataDir)
	if st.ArchivedTerm != 5 {
		t.Fatalf("archived term %d", st.ArchivedTerm)
	}
}

// Lost splits damp promotion for an hour, and older ones are forgotten.
func TestLostSplitsAreRememberedForAnHour(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var p Persisted
	p.lostSplit(t0)
	p.lostSplit(t0.Add(30 * time.Minute))
	if n := p.recentSplits(t0.Add(59 * time.Minute)); n != 2 {
		t.Fatalf("recent splits %d, want 2", n)
	}
	if n := p.recentSplits(t0.Add(61 * time.Minute)); n != 1 {
		t.Fatalf("recent splits an hour after the first %d, want 1", n)
	}
	p.lostSplit(t0.Add(2 * time.Hour))
	if len(p.LostSplits) != 1 {
		t.Fatalf("kept %d lost splits, want only the last", len(p.LostSplits))
	}
}

// The data filesystem counts as full below diskFullBelow; an unreadable
// one says nothing about space. The peer learns it through the status.
func TestDiskFullIsObservedAndReported(t *testing.T) {
	r := newRig(t, "a", "b")
	free, ferr := uint64(diskFullBelow-1), error(nil)
	r.a.d.FreeBytes = func(string) (uint64, error) { return free, ferr }
	r.tick(1)
	ph, _ := r.a.Handlers()
	if !r.a.last.o.Self.DiskFull || !ph.Status(context.Background()).DiskFull {
		t.Fatal("a data filesystem below the threshold is not reported full")
	}
	free = diskFullBelow
	r.tick(1)
	if r.a.last.o.Self.DiskFull {
		t.Fatal("a data filesystem at the threshold is reported full")
	}
	free, ferr = 0, errors.New("no such directory")
	r.tick(1)
	if r.a.last.o.Self.DiskFull {
		t.Fatal("an unreadable free space is reported full")
	}
}

// The operator's switchover holds once the hand-over action ran, whatever
// failed after it.
func TestCompletedAction(t *testing.T) {
	d := fsm.Decision{Actions: []fsm.Action{{Kind: fsm.KineStop}, {Kind: fsm.Handover}, {Kind: fsm.Rewind}}}
	failed := func(i int) error {
		return &actionError{index: i, kind: d.Actions[i].Kind, err: errors.New("boom")}
	}
	if !completed(d, failed(2), fsm.Handover) {
		t.Fatal("the rewind failed after the hand-over: the hand-over did not count")
	}
	if completed(d, failed(1), fsm.Handover) || completed(d, errors.New("other"), fsm.Handover) {
		t.Fatal("a failed hand-over counted as done")
	}
}

// A leader whose commits are slow hands over without waiting for its own
// disk: once the follower has flushed the hand-over's position, the server
// is told to quit at once (not stopped with its checkpoint) and the
// follower is asked to take over. A follower that has not flushed it
// within the patience gets the ordinary, clean stop.
func TestHandoverFromASlowDisk(t *testing.T) {
	for _, c := range []struct {
		name    string
		slow    bool
		flushed uint64
		want    string
	}{
		{"slow, the follower has it", true, 100, "crash"},
		{"not slow", false, 100, "stop"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, "a", "b")
			r.db.data, r.db.up, r.db.peerStreaming, r.db.peerFlushed = true, true, true, c.flushed
			var obs observed
			obs.o.Self.CommitSlow = c.slow
			obs.pg.CurrentLSN = 100
			if err := r.a.handover(context.Background(), obs); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(r.db.Calls(), ","); got != c.want || !r.peer.handed {
				t.Fatalf("calls %q (want %q), handed over %v", got, c.want, r.peer.handed)
			}
		})
	}
}

// What status shows of a peer error: why an answer was not believed, never
// a plain absence.
func TestPeerProblem(t *testing.T) {
	tlsErr := &pki.RefusedError{Why: "the peer's TLS certificate expired at 2026-01-01T00:00:00Z", Err: errors.New("x509: certificate has expired")}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("peer status: %w", tlsErr), true},
		{fmt.Errorf("peer status: %w", peer.ErrForged), true},
		{fmt.Errorf("%w: out of bounds", peer.ErrImplausible), true},
	} {
		if got := peerProblem(tc.err); (got != "") != tc.want || (got != "" && got != tc.err.Error()) {
			t.Errorf("peerProblem(%v) = %q", tc.err, got)
		}
	}
}

// Rewound data whose standby never becomes consistent (pg_ctl -w waiting
// for WAL that is gone) is copied afresh after its own bound, not after
// what is left of the rewind's 30 minutes.
func TestRewoundStandbyThatNeverStartsIsCopied(t *testing.T) {
	defer func(d time.Duration) { rewoundStartTimeout = d }(rewoundStartTimeout)
	rewoundStartTimeout = 50 * time.Millisecond
	r := newRig(t, "a", "b")
	r.db.data, r.db.standbyHangs = true, true
	start := time.Now()
	if err := r.a.run(context.Background(), fsm.Action{Kind: fsm.Rewind}, observed{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.db.Calls(), ","); got != "stop,rewind,start(standby=true): waits,stop,basebackup" {
		t.Fatalf("calls %q", got)
	}
	t.Logf("copied afresh %s after the rewind began", time.Since(start).Round(time.Millisecond))
}
