package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/localapi"
	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// PeerHandler answers the other agent (package peer authenticates first).
type PeerHandler struct{ a *Agent }

// LocalHandler answers the operator's CLI over the unix socket.
type LocalHandler struct{ a *Agent }

// Handlers returns the two API faces of the agent.
func (a *Agent) Handlers() (*PeerHandler, *LocalHandler) { return &PeerHandler{a}, &LocalHandler{a} }

// Status implements peer.Handler.
func (h *PeerHandler) Status(context.Context) peer.Status {
	a := h.a
	m, last, st := a.snapshot()
	now := a.d.Now()
	s := peer.Status{
		Name: a.cfg.Node.Name, State: string(m.State), Term: st.Term, TermRole: string(st.TermRole),
		Alone: m.State == fsm.LeaderAlone, Member: st.Member && a.d.DB.HasData(),
		PGUp: last.pg.Up, Primary: last.pg.Up && !last.pg.InRecovery,
		Now: now.UnixNano(), PairOffset: int64(st.PairOffset), ForkRev: st.ForkRev, Version: Version,
		HighRev: st.HighRev, FencedPast: st.FencedPast, DiskFull: last.o.Self.DiskFull,
		FollowerSlow: last.o.Self.FollowerSlow,
		// As observed, with the last commit: the peer compares commits only
		// when this says stopped, and then the commit was read after the stop.
		KineServing: last.o.Self.KineServing,
		// Read now, not from the last tick: a loser concedes in the middle
		// of a tick, and the winner resumes on this.
		Rejoining:  st.Intent != nil && st.Intent.Discards && !a.kineServing(),
		Unobserved: last.o.Now.IsZero(),
	}
	if s.Primary {
		s.OldestWAL = last.pg.OldestWAL
	}
	if lc := last.o.Self.LastCommit; !lc.IsZero() {
		s.LastCommit = lc.UnixNano()
	}
	if st.PausedUntil.After(now) {
		s.PausedFor = int64(st.PausedUntil.Sub(now))
	}
	return s
}

// Pause implements peer.Handler: the peer paused the pair.
func (h *PeerHandler) Pause(_ context.Context, r peer.PauseRequest) error {
	until := h.a.d.Now().Add(time.Duration(r.For))
	h.a.log.Info("paused by the peer", "by", r.By, "until", until.UTC().Format(time.RFC3339))
	return h.a.updateState(func(p *Persisted) { p.PausedUntil = until })
}

// Resume implements peer.Handler.
func (h *PeerHandler) Resume(_ context.Context, r peer.ResumeRequest) error {
	h.a.log.Info("resumed by the peer", "by", r.By)
	return h.a.updateState(func(p *Persisted) { p.PausedUntil = time.Time{} })
}

// Handover implements peer.Handler: the leader asks this follower to take over.
func (h *PeerHandler) Handover(ctx context.Context, r peer.HandoverRequest) (peer.HandoverResponse, error) {
	a := h.a
	res, err := a.do(ctx, fsm.Command{Kind: fsm.CmdHandover, LSN: r.LSN})
	if err != nil {
		return peer.HandoverResponse{}, err
	}
	_, _, st := a.snapshot()
	switch {
	case res.consumed:
		return peer.HandoverResponse{Term: st.Term, Promoted: true, Message: "promoted"}, nil
	case res.noChange():
		return peer.HandoverResponse{Term: st.Term, Promoted: true, Message: explain(res)}, nil
	}
	return peer.HandoverResponse{Term: st.Term, Message: explain(res)}, nil
}

// Follow implements peer.Handler: the peer is about to adopt this node's
// term; the table records it (or refuses) before the answer.
func (h *PeerHandler) Follow(ctx context.Context, r peer.FollowRequest) error {
	res, err := h.a.do(ctx, fsm.Command{Kind: fsm.CmdFollow, Term: r.Term})
	if err != nil {
		return err
	}
	if !res.consumed {
		return fmt.Errorf("%w: %s", peer.ErrConflict, explain(res))
	}
	return nil
}

// Status implements localapi.Handler.
func (h *LocalHandler) Status(context.Context) localapi.StatusReport {
	a := h.a
	m, last, st := a.snapshot()
	now := a.d.Now()
	a.mu.Lock()
	lastTrans, lastAt, failover := a.lastTrans, a.lastAt, a.failover
	wit, waiting, problem := a.witnessText(last.o.Witness), a.waiting, a.peerProblem
	if waiting != "" && !a.failStart.IsZero() {
		// The evidence an operator decides on.
		waiting += fmt.Sprintf(" (the peer last answered %s ago; %s)", now.Sub(a.failStart).Round(time.Second), walText(last.pg))
	}
	a.mu.Unlock()
	r := localapi.StatusReport{
		Node: a.cfg.Node.Name, Peer: a.cfg.Peer.Name, State: string(m.State), Role: roleOf(m.State), Term: st.Term,
		PeerReachable: last.o.Peer.AgentUp, PeerProblem: problem, PeerState: string(last.o.Peer.State), PeerTerm: last.o.Peer.Term,
		Replication: replication(m.State, last), LagBytes: last.pg.PeerFlushLagBytes, PGUp: last.pg.Up,
		KineEndpoint: a.d.Kine.Target(), LastTransition: lastTrans, LastTransitionAt: lastAt,
		LastFailover: failover, ClockOffset: st.PairOffset, Archives: st.Archives, Version: Version,
		DiskFull: last.o.Self.DiskFull, RecentSplits: last.o.Self.RecentSplits, Witness: wit, Waiting: waiting,
		Address: a.addressText(), CommitLatency: a.commitLatency(last.pg), PeerFlushLag: last.pg.PeerFlushLag,
		DiskSlow: slowText(last.o.Self, last.o.Peer.AgentUp && last.peer.FollowerSlow, a.cfg.Peer.Name),
	}
	if in := st.Intent; in != nil {
		r.Unfinished = fmt.Sprintf("%s → %s: %s", in.From, in.To, in.Reason)
		if in.Discards && !in.Copied {
			r.Unfinished += " (conceded: this node's data serves again only as a copy of the peer's)"
		}
	}
	until := last.o.Self.PausedUntil // includes the peer's pause
	if st.PausedUntil.After(until) {
		until = st.PausedUntil // set since the last tick
	}
	if until.After(now) {
		r.Paused, r.PausedUntil = true, until
	}
	return r
}

func roleOf(s fsm.State) string {
	switch {
	case s.IsLeader():
		return "leader"
	case s == fsm.Follower:
		return "follower"
	}
	return "none"
}

func replication(s fsm.State, last observed) string {
	switch s {
	case fsm.Leader:
		return "sync"
	case fsm.LeaderAlone:
		return "async"
	case fsm.Follower:
		return "streaming"
	}
	return "none"
}

// Pause implements localapi.Handler: pause on this node and on the peer.
func (h *LocalHandler) Pause(ctx context.Context, d time.Duration) (string, error) {
	a := h.a
	if d <= 0 {
		d = a.cfg.Timers.PauseExpiry
	}
	if d > 24*time.Hour {
		return "", fmt.Errorf("a pause of %s is longer than the 24h limit", d)
	}
	until := a.d.Now().Add(d)
	if err := a.updateState(func(p *Persisted) { p.PausedUntil = until }); err != nil {
		return "", err
	}
	when := until.UTC().Format("2006-01-02 15:04:05 UTC")
	if err := a.d.Peer.Pause(ctx, peer.PauseRequest{For: int64(d), By: a.cfg.Node.Name}); err != nil {
		return fmt.Sprintf("paused on %s until %s; %s did not answer (%v): it is paused while it sees %s, and by its own pause if one was set",
			a.cfg.Node.Name, when, a.cfg.Peer.Name, err, a.cfg.Node.Name), localapi.ErrPartial
	}
	return fmt.Sprintf("paused on %s and %s until %s: no promotion until `twonode resume` or then", a.cfg.Node.Name, a.cfg.Peer.Name, when), nil
}

// Resume implements localapi.Handler.
func (h *LocalHandler) Resume(ctx context.Context) (string, error) {
	a := h.a
	if err := a.updateState(func(p *Persisted) { p.PausedUntil = time.Time{} }); err != nil {
		return "", err
	}
	if err := a.d.Peer.Resume(ctx, peer.ResumeRequest{By: a.cfg.Node.Name}); err != nil {
		return fmt.Sprintf("resumed on %s; %s did not answer (%v): run `twonode resume` there too", a.cfg.Node.Name, a.cfg.Peer.Name, err), localapi.ErrPartial
	}
	return fmt.Sprintf("resumed on %s and %s", a.cfg.Node.Name, a.cfg.Peer.Name), nil
}

// Promote implements localapi.Handler.
func (h *LocalHandler) Promote(ctx context.Context, force bool) (string, error) {
	a := h.a
	kind := fsm.CmdPromote
	if force {
		kind = fsm.CmdForcePromote
	}
	res, err := a.do(ctx, fsm.Command{Kind: kind})
	if err != nil {
		return "", err
	}
	if res.noChange() {
		return fmt.Sprintf("no change: %s is already the leader (%s)", a.cfg.Node.Name, res.d.From), nil
	}
	if !res.consumed {
		return "", fmt.Errorf("%s", explain(res))
	}
	_, _, st := a.snapshot()
	return fmt.Sprintf("promoted %s: leader of term %d", a.cfg.Node.Name, st.Term), nil
}

// Switchover implements localapi.Handler.
func (h *LocalHandler) Switchover(ctx context.Context) (string, error) {
	a := h.a
	res, err := a.do(ctx, fsm.Command{Kind: fsm.CmdSwitchover})
	if err != nil {
		return "", err
	}
	if res.err != nil && completed(res.d, res.err, fsm.Handover) {
		// The peer leads: what the operator asked for holds. Only this
		// node's rejoin failed, and the table tries it again.
		return fmt.Sprintf("%s handed over to %s; rejoining as follower failed for now and is retried: %v",
			a.cfg.Node.Name, a.cfg.Peer.Name, res.err), nil
	}
	if !res.consumed {
		return "", fmt.Errorf("%s", explain(res))
	}
	return fmt.Sprintf("%s handed over to %s and is rejoining as follower", a.cfg.Node.Name, a.cfg.Peer.Name), nil
}

// noChange: the table says the command's effect already holds.
func (r cmdResult) noChange() bool {
	if r.consumed || r.err != nil {
		return false
	}
	ref, _ := fsm.RefusalFor(r.d.From, r.cmd)
	return ref.NoChange
}

// explain says why a command changed nothing.
func explain(r cmdResult) string {
	if r.err != nil {
		return "refused: " + r.err.Error()
	}
	return fsm.Refuse(r.d.From, r.cmd)
}

// walText is how much WAL this node has, for an operator weighing a
// promotion: what a primary wrote, what a standby replayed.
func walText(pg postgres.Status) string {
	switch {
	case !pg.Up:
		return "this node's PostgreSQL is not running: its WAL position is unknown"
	case pg.InRecovery:
		return "this node has replayed WAL up to " + lsnText(pg.ReplayLSN)
	}
	return "this node has written WAL up to " + lsnText(pg.CurrentLSN)
}

// lsnText writes a WAL position as PostgreSQL does (16/B374D848).
func lsnText(lsn uint64) string { return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn)) }
