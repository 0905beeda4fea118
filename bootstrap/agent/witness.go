package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/witness"
)

// WitnessClient is what the agent needs of the pair's witness
// (*witness.Client); the simulation uses an in-memory one.
type WitnessClient interface {
	Read(ctx context.Context) (witness.State, error)
	ReadLocal(ctx context.Context) (witness.State, error)
	Grant(ctx context.Context) (witness.Lease, error)
	Claim(ctx context.Context, from witness.State, term uint64, held witness.Lease) (bool, witness.State, witness.Lease, error)
	Renew(ctx context.Context, l witness.Lease) (witness.Lease, error)
	Release(ctx context.Context, l witness.Lease) error
}

var _ WitnessClient = (*witness.Client)(nil)

// Watchdog resets the machine unless petted in time (*watchdog.Device).
type Watchdog interface {
	Arm() error
	Pet() error
	Disarm() error
}

// witnessView is what the agent knows of the witness; guarded by a.mu.
type witnessView struct {
	st        witness.State
	reachable bool
	readAt    time.Time // last read attempt, on the agent's clock
	lease     witness.Lease
	// spare: a lease granted ahead of a claim this node may soon make
	// (prepareLease), not attached to anything: the core does not see it.
	spare witness.Lease
	// guardUntil: the latest the witness may still hold a lease of this
	// node's; the watchdog stays armed until then.
	guardUntil time.Time
}

// readWitness refreshes the view when it is due: every tick while the
// pair is not steady, every witness.SteadyRead while it is. No I/O under
// the lock.
//
// A leader or follower whose peer has only begun to fail probes is still
// steady here: the claim that ends its detection window is a
// compare-and-swap, so it needs no fresher read (a swap from a stale
// view is refused and answers with the witness's records, which the next
// tick decides on), and a stale copy can only be older, never show a
// term that does not exist. Measured with the fleet simulation: when a
// thousand pairs lose their links at once, a read every tick of the
// window from each of their nodes was most of what the witness had to
// answer, and it delayed every claim behind it.
func (a *Agent) readWitness(ctx context.Context, now time.Time) {
	if a.d.Witness == nil {
		return
	}
	a.mu.Lock()
	steady := (a.m.State == fsm.Leader || a.m.State == fsm.Follower) && a.m.Fails < a.cfg.Timers.FailureThreshold && a.wv.lease.ID == 0
	due := !steady || a.wv.readAt.IsZero() || now.Sub(a.wv.readAt) >= witness.SteadyRead
	local := steady && !a.wv.readAt.IsZero()
	a.mu.Unlock()
	if !due {
		return
	}
	read := a.d.Witness.Read
	if local {
		// Only to know it answers: the cheap read a fleet can afford
		// (witness.Client.ReadLocal). The first read, and every read once
		// anything is to be decided, go through the witness's quorum.
		read = a.d.Witness.ReadLocal
	}
	st, err := read(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.wv.readAt = now
	if err != nil {
		if a.wv.reachable {
			a.log.Warn("the witness does not answer", "err", err)
		}
		a.wv.reachable = false
		return
	}
	if !a.wv.reachable {
		a.log.Info("the witness answers", "term", st.Term.Term.Term, "by", st.Term.By)
	}
	a.wv.st, a.wv.reachable = st, true
}

// rereadWitness makes the next tick read the witness through its quorum,
// steady or not: after a stalled tick this node's view of it is as old as
// the stall (a steady node reads it only every witness.SteadyRead), and the
// peer may have claimed a term meanwhile. Found by the matrix's frozen
// leader with a witness: thawed, the leader decided on its old view to go
// on alone, learned only from the refused claim that the follower had taken
// over, and its Kine answered reads from the set-aside history for 2.4 s.
func (a *Agent) rereadWitness() {
	a.mu.Lock()
	a.wv.readAt = time.Time{}
	a.mu.Unlock()
}

// witnessFacts is the core's view of the witness. A lease counts only
// while it outlives the next tick, however long that tick's witness calls
// take: the row that stops serving without it must run before the
// witness could expire it (measured: with the witness cut off, ticks
// stretched by its timeouts stopped the writes only 0.6 s before the
// follower took over). Caller holds a.mu.
func (a *Agent) witnessFacts(now time.Time) fsm.Witness {
	if a.d.Witness == nil {
		return fsm.Witness{}
	}
	w := fsm.Witness{On: true, Reachable: a.wv.reachable, Term: a.wv.st.Term.Term.Term, By: a.wv.st.Term.By,
		Lease: a.wv.lease.Valid(now.Add(a.cfg.Timers.ProbeInterval + a.cfg.Witness.RequestTimeout))}
	if al := a.wv.st.Alone; al != nil {
		w.AloneBy = al.By
	}
	return w
}

// witnessClaim runs fsm.WitnessClaim: the swap, from what this node last
// read, with the lease it holds, or a new one (the spare prepareLease
// granted during the detection window, or one granted now). A new lease is recorded in
// the state file before the claim (found by the simulation: an agent
// killed right after its claim could not claim again until its own
// unknown lease expired, its Kine serving meanwhile); a lost swap fails
// the row.
func (a *Agent) witnessClaim(ctx context.Context, term uint64) error {
	if a.d.Watchdog != nil {
		// Armed before the lease exists: a hang right after the claim must
		// reset the node too.
		if err := a.d.Watchdog.Arm(); err != nil {
			return fmt.Errorf("not leading alone without the watchdog: %w", err)
		}
	}
	a.mu.Lock()
	from, held, spare := a.wv.st, a.wv.lease, a.wv.spare
	a.wv.spare = witness.Lease{}
	a.wv.guardUntil = later(a.wv.guardUntil, a.d.Now().Add(a.cfg.Witness.LeaseTTL+a.cfg.Witness.RequestTimeout))
	a.mu.Unlock()
	if held.ID == 0 {
		l, err := spare, error(nil)
		if !spare.Valid(a.d.Now().Add(a.cfg.Witness.RequestTimeout)) {
			l, err = a.d.Witness.Grant(ctx)
		}
		if err != nil {
			return err
		}
		if err := a.updateState(func(p *Persisted) { p.WitnessLease = int64(l.ID) }); err != nil {
			return err
		}
		held = l
		a.mu.Lock()
		a.wv.lease = witness.Lease{ID: l.ID} // held, for the next attempt; not valid until claimed
		a.mu.Unlock()
	}
	won, st, l, err := witness.ClaimFresh(ctx, a.d.Witness, a.cfg.Node.Name, from, term, held)
	if errors.Is(err, witness.ErrLeaseGone) {
		a.mu.Lock()
		a.wv.lease = witness.Lease{}
		a.mu.Unlock()
		a.updateOrKeep("that the witness's lease expired", func(p *Persisted) { p.WitnessLease = 0 })
		return err // the next attempt takes a new lease
	}
	a.mu.Lock()
	if err == nil {
		a.wv.st, a.wv.reachable = st, true
	}
	if won {
		a.wv.lease = l
		a.wv.guardUntil = later(a.wv.guardUntil, guardOf(l))
	}
	a.mu.Unlock()
	switch {
	case err != nil:
		return err
	case !won:
		return fmt.Errorf("the witness refused term %d: %s", term, describeWitness(st))
	}
	return nil
}

// witnessRelease runs fsm.WitnessRelease. A witness that does not answer
// lets the lease expire by itself: that is no reason to stay asynchronous.
func (a *Agent) witnessRelease(ctx context.Context) error {
	a.mu.Lock()
	l := a.wv.lease
	a.wv.lease = witness.Lease{}
	a.mu.Unlock()
	if l.ID != 0 {
		if err := a.d.Witness.Release(ctx, l); err != nil {
			a.log.Warn("the witness's lease could not be given back: it expires by itself", "err", err)
		} else {
			a.mu.Lock()
			a.wv.guardUntil = time.Time{} // the witness holds no lease of ours
			if al := a.wv.st.Alone; al != nil && al.By == a.cfg.Node.Name {
				a.wv.st.Alone = nil // it went with the lease
			}
			a.mu.Unlock()
		}
	}
	a.updateOrKeep("that the witness's lease is given back", func(p *Persisted) { p.WitnessLease = 0 })
	return nil
}

// renewWitness keeps a leader alone's lease: at each tick, once half of
// it is spent. A failure leaves the lease to run out; the table then stops
// this node's writes before the witness can expire it.
func (a *Agent) renewWitness(ctx context.Context, now time.Time) {
	a.mu.Lock()
	l, alone := a.wv.lease, a.m.State == fsm.LeaderAlone
	a.mu.Unlock()
	if a.d.Witness == nil || !alone || !l.Valid(now) || l.Deadline.Sub(now) > l.TTL/2 {
		return // past its deadline the lease is given up: a new claim takes a new one
	}
	nl, err := a.d.Witness.Renew(ctx, l)
	if err != nil {
		a.log.Warn("the witness's lease could not be renewed", "err", err, "left", l.Deadline.Sub(now).Round(time.Millisecond))
		return
	}
	a.mu.Lock()
	if a.wv.lease.ID == l.ID {
		a.wv.lease = nl
		a.wv.guardUntil = later(a.wv.guardUntil, guardOf(nl))
	}
	a.mu.Unlock()
}

// tendWatchdog pets the watchdog after every tick while the witness may
// hold a lease of this node's, and disarms it after. Not holding one, a
// hang resets nothing: the follower cannot take over from a leader that
// holds no lease without winning the witness's swap, which fences it.
func (a *Agent) tendWatchdog(now time.Time) {
	if a.d.Watchdog == nil {
		return
	}
	a.mu.Lock()
	guard := now.Before(a.wv.guardUntil)
	a.mu.Unlock()
	var err error
	switch {
	case guard:
		err = a.d.Watchdog.Arm() // arms after a restart, pets when armed
	default:
		err = a.d.Watchdog.Disarm()
	}
	if err != nil {
		a.log.Error("watchdog", "err", err)
	}
}

// petWhileActing pets an armed watchdog every probe interval while the
// tick's actions run, as long as this node's Kine does not serve its own
// database; the returned func stops it. A long action (initdb, a base
// backup, pg_rewind on a slow disk) blocks the tick that pets it, and
// measured: an initdb of 3.07 s on a busy machine outlasted a 3 s
// watchdog, which reset the node while it formed the pair. Nothing this
// node runs can serve past the witness's lease while its Kine does not
// serve here, so the pets are safe then; a frozen process still stops
// petting, and an action that hangs while Kine serves gets none.
func (a *Agent) petWhileActing() (stop func()) {
	if a.d.Watchdog == nil {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(a.cfg.Timers.ProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if !a.kineServing() {
					if err := a.d.Watchdog.Pet(); err != nil {
						a.log.Error("watchdog", "err", err)
					}
				}
			}
		}
	}()
	return func() { close(done); <-exited }
}

// guardOf is the latest the witness may hold lease l: its local deadline
// plus the margin the deadline keeps.
func guardOf(l witness.Lease) time.Time { return l.Deadline.Add(l.TTL / 2) }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// restoreLease takes the lease a previous run recorded: its deadline is
// unknown (expired), but a claim presents it and keeps it if it lives.
func (a *Agent) restoreLease() {
	if id := a.st.WitnessLease; id != 0 {
		a.wv.lease = witness.Lease{ID: clientv3.LeaseID(id)}
		// The witness may hold it for up to a TTL from now: the watchdog
		// guards that long, in case this agent hangs before it knows more.
		a.wv.guardUntil = a.d.Now().Add(a.cfg.Witness.LeaseTTL + a.cfg.Witness.RequestTimeout)
	}
}

// witnessText is status's line on the witness. Caller holds a.mu.
func (a *Agent) witnessText(w fsm.Witness) string {
	switch {
	case !w.On:
		return ""
	case !w.Reachable:
		return fmt.Sprintf("UNREACHABLE (policy %s)", a.cfg.Witness.Unreachable)
	}
	s := "reachable; " + describeWitness(a.wv.st)
	if w.Lease {
		s += "; this node holds the lease"
	}
	return s
}

func describeWitness(st witness.State) string {
	if st.Term.Rev == 0 {
		return "it records no term yet"
	}
	s := fmt.Sprintf("it records term %d claimed by %s", st.Term.Term.Term, st.Term.By)
	if st.Alone != nil {
		s += fmt.Sprintf(", and %s leads alone under its lease", st.Alone.By)
	}
	return s
}
