package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/archive"
	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/localapi"
	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// fenceMargin is how far revisions jump at a promotion: more than any
// number of writes an old leader could have handed out that never reached
// this node (asynchronous mode, or writes cut off mid-flight).
const fenceMargin = 1_000_000

// actionError is the first action of a decision that failed: the ones
// before it took effect.
type actionError struct {
	index int
	kind  fsm.ActionKind
	err   error
}

func (e *actionError) Error() string { return string(e.kind) + ": " + e.err.Error() }
func (e *actionError) Unwrap() error { return e.err }

// completed reports whether an action of this kind ran to its end before
// the decision failed with err.
func completed(d fsm.Decision, err error, kind fsm.ActionKind) bool {
	var ae *actionError
	if !errors.As(err, &ae) {
		return false
	}
	for _, act := range d.Actions[:min(ae.index, len(d.Actions))] {
		if act.Kind == kind {
			return true
		}
	}
	return false
}

// rewoundStartTimeout bounds the start that proves rewound data runs as a
// standby: replaying what pg_rewind copied takes seconds; a standby not
// consistent after this is copied afresh instead. A variable for tests.
var rewoundStartTimeout = 5 * time.Minute

// execute runs a decision's actions in order and stops at the first error.
func (a *Agent) execute(ctx context.Context, d fsm.Decision, obs observed) error {
	for i, act := range d.Actions {
		timeout := time.Minute
		switch act.Kind {
		case fsm.BaseBackup, fsm.Rewind:
			timeout = 30 * time.Minute
		case fsm.Promote: // the replay wait of a hand-over included
			timeout = a.cfg.Timers.PromoteTimeout
		}
		if act.Kind.DiscardsData() {
			if err := a.markIntent(func(in *fsm.Intent) { in.Discards = true }); err != nil {
				return err
			}
		}
		c, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		err := a.withFault(c, act, func(c context.Context) error { return a.run(c, act, obs) })
		cancel()
		a.log.Debug("action", "action", act.Kind, "took", time.Since(start), "err", err)
		if err != nil {
			return &actionError{index: i, kind: act.Kind, err: err}
		}
		a.tl.action(act.Kind)
		if act.Kind.DiscardsData() {
			if err := a.markIntent(func(in *fsm.Intent) { in.Copied = true }); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *Agent) run(ctx context.Context, act fsm.Action, obs observed) error {
	db := a.d.DB
	switch act.Kind {
	case fsm.InitDB:
		if db.HasData() {
			a.log.Info("data directory exists: using it, not running initdb")
			return nil
		}
		return db.InitDB(ctx)
	case fsm.StartPrimary:
		return db.Start(ctx, false)
	case fsm.StartStandby:
		return db.Start(ctx, true)
	case fsm.StopPostgres:
		return db.Stop(ctx, false)
	case fsm.BaseBackup:
		if err := db.Stop(ctx, true); err != nil {
			return err
		}
		return db.BaseBackup(ctx)
	case fsm.Rewind:
		if err := db.Stop(ctx, false); err != nil {
			return err
		}
		if err := db.Rewind(ctx); err != nil {
			if errors.Is(err, postgres.ErrNoPeerConnection) {
				// Not a rewind that failed: the peer did not answer. A
				// base backup would need it too, and would throw away
				// data that a rewind may still keep. The row fails and is
				// tried again.
				return err
			}
			a.log.Warn("pg_rewind impossible: falling back to a full base backup", "err", err)
			return db.BaseBackup(ctx)
		}
		// A rewind can report success and still leave data that will not
		// start as a standby (PostgreSQL 15: "requested timeline N does not
		// contain minimum recovery point" after several promotions). Prove
		// it starts; otherwise copy everything. Within its own bound, not
		// what is left of the rewind's 30 minutes: a standby that never
		// becomes consistent (the WAL it needs is gone) held pg_ctl -w, and
		// the node, for all of them.
		sc, cancel := context.WithTimeout(ctx, rewoundStartTimeout)
		err := db.Start(sc, true)
		cancel()
		if err != nil {
			a.log.Warn("the rewound data does not start as a standby: falling back to a full base backup", "err", err)
			if err := db.Stop(ctx, true); err != nil {
				return err
			}
			return db.BaseBackup(ctx)
		}
		return nil
	case fsm.Archive:
		return a.archive(ctx, act.Split)
	case fsm.Promote:
		return a.promote(ctx, act.LSN)
	case fsm.Fence:
		return a.fence(ctx, act.Rev)
	case fsm.SyncOn, fsm.SyncOff:
		on := act.Kind == fsm.SyncOn
		if err := db.SetSync(ctx, on); err != nil {
			return err
		}
		return a.updateState(func(p *Persisted) { p.Alone, p.Async = !on, !on })
	case fsm.EnsureSlot:
		return db.EnsureSlot(ctx, slotName(a.cfg.Peer.Name))
	case fsm.KineLocal: // and the pair's address, once Kine serves (address.go)
		if err := a.d.Kine.Point(ctx, a.cfg.Node.Address); err != nil {
			return err
		}
		a.tl.mark(phaseKineReady, time.Now())
		a.holdAddress(ctx, true)
		return nil
	case fsm.KinePeer:
		a.holdAddress(ctx, false)
		return a.d.Kine.Point(ctx, a.cfg.Peer.Address)
	case fsm.KineStop:
		a.holdAddress(ctx, false)
		if act.Kill {
			return a.d.Kine.Kill(ctx)
		}
		return a.d.Kine.Stop(ctx)
	case fsm.NewTerm:
		return a.newTerm(ctx, act)
	case fsm.WitnessClaim:
		return a.witnessClaim(ctx, act.Term)
	case fsm.WitnessRelease:
		return a.witnessRelease(ctx)
	case fsm.AdoptTerm:
		return a.updateState(func(p *Persisted) {
			p.Member = true
			p.TermRole = fsm.RoleFollower
			if act.Term > p.Term {
				// A leader's term is always one it began itself.
				p.Term, p.TermBy = act.Term, a.cfg.Peer.Name
			}
		})
	case fsm.Handover:
		return a.handover(ctx, obs)
	case fsm.Announce:
		return a.d.Peer.Follow(ctx, peer.FollowRequest{Term: act.Term, By: a.cfg.Node.Name})
	case fsm.Followed:
		// Not durable on a full disk: the peer's copy must not wait for
		// this node's disk (a leader with a full disk hands over once the
		// peer streams). A restart before it is written forgets it.
		a.updateOrKeep("that a follower follows this term", func(p *Persisted) { p.Alone = false })
		return nil
	case fsm.ClearIntent:
		a.mu.Lock()
		in := a.st.Intent
		a.mu.Unlock()
		if in != nil {
			a.log.Info("an interrupted transition is forgotten: nothing of it needs finishing", "intent", fmt.Sprintf("%s → %s: %s", in.From, in.To, in.Reason))
		}
		a.setIntent(nil)
		return nil
	}
	return fmt.Errorf("unknown action %q", act.Kind)
}

// promote makes the local standby the primary. After a handover it first
// waits until everything the old leader sent has been replayed.
func (a *Agent) promote(ctx context.Context, lsn uint64) error {
	db := a.d.DB
	var tried error
	if lsn == 0 {
		// A take-over: nothing to wait for, so no status first (one
		// connection and a handful of queries less on the take-over's
		// path). Promote itself finds a server already promoted; one that
		// is down fails it, and is started below.
		if tried = a.promoteNow(ctx); tried == nil {
			return nil
		}
	}
	st, err := db.Status(ctx)
	if err != nil || !st.Up {
		if err := db.Start(ctx, true); err != nil {
			return err
		}
		if st, err = db.Status(ctx); err != nil {
			return err
		}
		tried = nil // it was down: promote it now
	}
	if !st.InRecovery {
		return nil // already a primary: the step was done on an earlier try
	}
	if tried != nil {
		return tried // up, a standby, and its promotion failed: the row is tried again
	}
	for lsn > 0 && st.ReplayLSN < lsn {
		select {
		case <-ctx.Done():
			return fmt.Errorf("replayed up to %d, handover needs %d: %w", st.ReplayLSN, lsn, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if st, err = db.Status(ctx); err != nil {
			return err
		}
	}
	return a.promoteNow(ctx)
}

func (a *Agent) promoteNow(ctx context.Context) error {
	took, err := a.d.DB.Promote(ctx)
	if err == nil && took > 0 {
		a.tl.mark(phasePromoteAsked, time.Now().Add(-took))
		a.log.Info("postgresql promoted", "pg_promote", took)
		a.met.promoteSeconds.Set(took.Seconds())
	}
	return err
}

// fence moves Kine's revisions past the old leader's (after a promotion)
// or past a split's loser's, up to floor, and records that floor.
func (a *Agent) fence(ctx context.Context, floor int64) error {
	rev, err := a.d.DB.RevisionFence(ctx, fenceMargin, floor)
	if err != nil {
		return err
	}
	switch {
	case rev > 0:
		a.log.Info("revisions fenced: clients resuming from an older revision relist", "fence_revision", rev, "past", floor)
	case floor > 0:
		a.log.Info("revisions already past the split loser's", "past", floor)
	}
	if floor <= 0 {
		return nil
	}
	return a.updateState(func(p *Persisted) { p.FencedPast = max(p.FencedPast, floor) })
}

func (a *Agent) newTerm(ctx context.Context, act fsm.Action) error {
	fork, err := a.d.DB.MaxRevision(ctx)
	if err != nil {
		return err
	}
	var term uint64
	if err := a.updateState(func(p *Persisted) {
		if act.Term > p.Term {
			p.Term, p.TermBy = act.Term, a.cfg.Node.Name
			p.ForkRev = fork
		}
		// Every term begins with replication asynchronous (leader_alone).
		p.Member, p.TermRole, p.Alone, p.Async = true, fsm.RoleLeader, true, true
		term = p.Term
	}); err != nil {
		return err
	}
	// The database copy replicates to the follower: history for operators.
	if err := a.d.DB.RecordTerm(ctx, term, string(act.Why), a.cfg.Node.Name, fork); err != nil {
		a.log.Warn("recording the term in the database", "term", term, "err", err)
	}
	a.log.Info("new term", "term", term, "kind", act.Why, "fork_revision", fork)
	return nil
}

func (a *Agent) updateState(f func(*Persisted)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := a.st
	f(&next)
	if err := saveState(a.cfg.DataDir, next); err != nil {
		return err
	}
	a.st = next
	return nil
}

// archive keeps the evidence before a losing node discards anything: the
// Kine rows it has that the winner does not.
func (a *Agent) archive(ctx context.Context, split bool) error {
	db := a.d.DB
	a.mu.Lock()
	done := a.st.Member && a.st.ArchivedTerm == a.st.Term && a.st.Term > 0
	a.mu.Unlock()
	if done {
		// A retried rejoin: this term's rows were already saved, and the
		// data may since have been rewound (it need not start as a primary).
		return nil
	}
	if st, err := db.Status(ctx); err != nil || !st.Up {
		// A crashed old leader: start it (as the primary it was) to read it.
		// Its Kine is stopped and the winner's Kine points elsewhere.
		if err := db.Start(ctx, false); err != nil {
			return fmt.Errorf("starting the old data to archive it: %w", err)
		}
	}
	// Clients of this node saw revisions up to here; the winner must move
	// past them before this node's Kine writes there (fsm: fencedForMe).
	high, err := db.MaxRevision(ctx)
	if err != nil {
		return err
	}
	if err := a.updateState(func(p *Persisted) { p.HighRev = max(p.HighRev, high) }); err != nil {
		return err
	}
	a.mu.Lock()
	st := a.st
	a.mu.Unlock()
	dir := filepath.Join(a.cfg.DataDir, "archive")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := a.d.Now()
	path := filepath.Join(dir, fmt.Sprintf("split-term%d-%d%s", st.Term, now.Unix(), archive.Ext))
	f, err := archive.Create(path, a.d.Secret) // sealed: it holds Secrets' values
	if err != nil {
		return err
	}
	n, err := db.Archive(ctx, st.ForkRev, f, postgres.ArchiveHeader{
		Node: a.cfg.Node.Name, Winner: a.cfg.Peer.Name, Term: st.Term, ForkRev: st.ForkRev, Created: now,
	})
	if cerr := f.Close(); err == nil {
		err = cerr // sealed and synced
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	// Only a split damps (fsm: the row says which). Rows only this node
	// had after a plain crash were never acknowledged while replication
	// was synchronous; they are kept all the same.
	switch {
	case n == 0:
		os.Remove(path) // nothing diverged: no evidence to keep
		a.log.Info("archive: nothing written here is missing on the winner", "split", split)
	case split:
		a.log.Warn("split brain: rows only this node had are archived before rejoining", "rows", n, "path", path, "winner", a.cfg.Peer.Name)
	default:
		a.log.Warn("rows in flight when this leader stopped (never acknowledged while replication was synchronous) are archived before rejoining",
			"rows", n, "path", path, "winner", a.cfg.Peer.Name, "term", st.Term)
	}
	a.met.archivedRows.Add(float64(n))
	if err := a.updateState(func(p *Persisted) {
		if n > 0 {
			p.Archives = append(p.Archives, localapi.Archive{Path: path, Rows: n, Term: st.Term, Winner: a.cfg.Peer.Name, Created: now})
		}
		if split {
			p.lostSplit(now)
		}
		p.ArchivedTerm = st.Term
	}); err != nil {
		return err
	}
	if n > 0 {
		a.pruneArchives()
	}
	return nil
}

// pruneArchives deletes the archives beyond archives.keep and older than
// archives.max_age (after writing one, and when the agent starts), and
// forgets them in the state file, whose list status shows. Deleting is
// best effort: what is left is reported, never fatal.
func (a *Agent) pruneArchives() {
	removed, err := archive.Prune(filepath.Join(a.cfg.DataDir, "archive"), a.cfg.Archives.Keep, a.cfg.Archives.MaxAge, time.Now())
	if err != nil {
		a.log.Warn("split-brain archives could not all be pruned", "err", err)
	}
	if len(removed) == 0 {
		return
	}
	a.log.Info("split-brain archives deleted (archives.keep, archives.max_age)", "paths", removed)
	a.updateOrKeep("the pruned archives", func(p *Persisted) {
		p.Archives = slices.DeleteFunc(p.Archives, func(x localapi.Archive) bool { return slices.Contains(removed, x.Path) })
	})
}

// handover, on the leader: stop PostgreSQL cleanly (a clean shutdown sends
// every WAL record to the connected standby before it exits), then ask the
// follower to take over once it has replayed it.
func (a *Agent) handover(ctx context.Context, obs observed) error {
	lsn := obs.pg.CurrentLSN
	if lsn == 0 {
		return errors.New("this node's WAL position is unknown this tick: not stopping it")
	}
	// A slow disk makes the shutdown checkpoint as slow as every other
	// write (measured: 25 s with fsyncs of 3 s, the pair without a writer
	// all that time), and even an immediate stop waits for the fsync in
	// progress (3.2 s). Once the follower has flushed everything up to lsn
	// neither protects anything it needs: this node's server is told to
	// quit at once, the follower is asked to take over meanwhile, and the
	// next action that needs the server down (the rewind, or a restart as
	// leader) waits for it to be gone; this node's Kine moves to the new
	// leader before that. That its PostgreSQL still runs for a moment while
	// the follower promotes shows no client anything: a commit here is
	// acknowledged only once the follower flushed it, which it no longer
	// does once it promoted, and everything it flushed before, it replays
	// before it serves.
	if obs.o.Self.CommitSlow && a.followerHas(ctx, lsn, 10*time.Second) {
		a.log.Info("handing over from a slow disk: the follower has every write; PostgreSQL told to quit without its checkpoint, while the follower takes over", "lsn", lsn)
		if err := a.d.DB.Crash(ctx); err != nil {
			return err
		}
	} else if err := a.d.DB.Stop(ctx, false); err != nil {
		return err
	}
	a.mu.Lock()
	term := a.st.Term
	a.mu.Unlock()
	resp, err := a.d.Peer.Handover(ctx, peer.HandoverRequest{Term: term + 1, LSN: lsn, By: a.cfg.Node.Name})
	if err != nil {
		return fmt.Errorf("the follower did not take over (this node restarts as leader): %w", err)
	}
	if !resp.Promoted {
		return errors.New("the follower refused the handover: " + resp.Message)
	}
	return nil
}

// followerHas waits, at most patience, until the follower reports that it
// flushed this node's WAL up to lsn.
func (a *Agent) followerHas(ctx context.Context, lsn uint64, patience time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	for {
		if st, err := a.d.DB.Status(ctx); err == nil && st.Up && st.PeerFlushLSN >= lsn {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// markIntent records, durably, how far the transition under way has come:
// Discards before the first action that replaces this node's data (that
// data must not serve again if the agent dies during the copy), Copied
// once the copy finished (the data is whole again). A failed write stops
// the action that needed it.
func (a *Agent) markIntent(mark func(*fsm.Intent)) error {
	return a.updateState(func(p *Persisted) {
		in := fsm.Intent{To: fsm.Joining, Reason: "replacing this node's data"}
		if p.Intent != nil {
			in = *p.Intent
		}
		mark(&in)
		p.Intent = &in
	})
}
