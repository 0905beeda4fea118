package agent

import (
	"context"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

// The pair's stable API address follows this node's Kine: the decision
// that points Kine at this node's own database (fsm.KineLocal) takes the
// address once Kine is ready, and every decision that stops that Kine or
// turns it to the peer (fsm.KineStop, fsm.KinePeer) gives the address up
// first, so that clients stop arriving before the writes stop. No row of
// the table names the address: one leadership decision moves the
// database, Kine and the address together, and the address is on both
// nodes only while both Kines serve their own databases (a split
// without a witness).
//
// The address never holds the datastore back: an address that cannot be
// taken (no privilege, the interface gone) is logged, shown in status and
// tried again at every tick, and the node leads all the same, reachable at
// its own address; one that cannot be given up lapses by itself, since the
// kernel keeps it only for its lifetime (config.AddressLifetime) after the
// leader last renewed it.

// holdAddress takes (want) or gives up the address. Both are idempotent:
// a row cut short and run again, or an agent restarted, repeats them.
func (a *Agent) holdAddress(ctx context.Context, want bool) {
	if a.d.VIP == nil {
		return
	}
	a.mu.Lock()
	a.addrWant, a.addrParked = want, false
	a.mu.Unlock()
	var err error
	if want {
		err = a.d.VIP.Acquire(ctx)
		a.mu.Lock()
		a.addrTakenAt = a.d.Now()
		a.mu.Unlock()
	} else {
		err = a.d.VIP.Release(ctx)
	}
	a.addressResult(want, err)
}

// keepAddress runs at the end of every tick whose decision held: while
// this node leads and wants the address, it acquires it again, which
// starts its lifetime again or, if a stall let it lapse or it could not be
// taken, puts it back and announces it. A tick whose actions failed renews
// nothing: the lapse is the safe side.
//
// A synchronous leader whose follower has gone quiet sets the address
// aside (fsm.Machine.HoldsAddress): it commits nothing until it goes on
// alone or the follower is back, and the follower may be taking over.
// It takes it back when it goes on alone, or once the follower is
// plainly back (fsm.Machine.HoldsAddress says when).
//
// The peer whose own Kine served until now (the other side of a split)
// has let go: the hosts and the switch may still point at it, since its
// announcements may have come after this node's, so this node announces
// the address again.
func (a *Agent) keepAddress(ctx context.Context, m fsm.Machine, o fsm.Observation) {
	peerServing := o.Peer.AgentUp && o.Peer.KineServing
	a.mu.Lock()
	want, peerServed, parked := a.addrWant, a.peerServed, a.addrParked
	a.peerServed = peerServing
	a.mu.Unlock()
	if a.d.VIP == nil || !want || !m.State.IsLeader() || !a.kineServing() {
		return
	}
	hold := m.HoldsAddress(a.fcfg, o, parked)
	if hold == parked { // a change: say it once
		if hold {
			a.log.Info("taking the pair's address back", "state", m.State)
		} else {
			a.log.Warn("the follower has gone quiet and this leader commits nothing without it: the pair's address is set aside until it goes on alone or the follower is back", "failed_probes", m.Fails)
		}
	}
	a.mu.Lock()
	a.addrParked = !hold
	a.mu.Unlock()
	var err error
	if !hold {
		err = a.d.VIP.Release(ctx)
		a.addressResult(false, err)
		return
	}
	err = a.d.VIP.Acquire(ctx)
	if err == nil && peerServed && !peerServing {
		a.log.Info("the peer's Kine stopped serving its own database: announcing the pair's address again")
		err = a.d.VIP.Announce(ctx)
	}
	a.addressResult(true, err)
}

// stalled: a tick, or the wait for the next one, outlasted the address's
// lifetime (the node frozen, the agent stopped, or only long actions such
// as initdb: either way what it observed is that old). It renewed nothing, and the kernel let the address
// lapse; the next ticks put it back only on the terms of a set-aside one
// (fsm.Machine.HoldsAddress), since what they see first may be older than
// what the peer did meanwhile.
//
// A tick whose own decision took the address (fsm.KineLocal after a
// promotion that ran long) is exempt: the table decided on that
// observation to lead, and the address goes with Kine (measured: a
// follower that took over in a 1.65 s tick gave the address up again at
// once, and its clients waited 6 s for it).
func (a *Agent) stalled(started time.Time, took time.Duration) {
	a.mu.Lock()
	parked := a.addrWant && !a.addrParked && a.addrTakenAt.Before(started)
	if parked {
		a.addrParked = true
	}
	a.mu.Unlock()
	if parked {
		a.log.Warn("the agent stalled longer than the address's lifetime (a long tick, or a wait for the next one: long actions, or this node frozen or starved): what it saw is old, so the pair's address is set aside until the peer is seen not to lead", "took", took.Round(time.Millisecond))
	}
}

// addressResult records how taking or giving up the address went, and
// logs each new error once.
func (a *Agent) addressResult(want bool, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	a.mu.Lock()
	changed := msg != a.addrErr
	a.addrErr = msg
	a.mu.Unlock()
	switch {
	case err != nil && changed && want:
		a.log.Error("the pair's address cannot be taken: clients of the address cannot reach this leader (tried again every tick)", "err", err)
	case err != nil && changed:
		a.log.Error("the pair's address cannot be given up: it lapses by itself once its lifetime is over", "err", err)
	case err == nil && changed:
		a.log.Info("the pair's address works again")
	}
}

// reconcileAddress runs once at start: an earlier agent that crashed or
// was stopped may have left the address behind. It stays only if this
// node's Kine still serves its own database (the agent's stop leaves
// PostgreSQL and Kine running, and the next decision confirms or moves
// all three); otherwise nothing this node runs answers on it, and it goes.
func (a *Agent) reconcileAddress(ctx context.Context) {
	if a.d.VIP == nil {
		return
	}
	held, err := a.d.VIP.Held()
	if err != nil {
		// Not known: the first decision takes or gives it up anyway, and
		// the address must not keep the agent from running.
		a.log.Error("the pair's address: cannot tell whether an earlier agent left it here", "err", err)
		return
	}
	if !held {
		return
	}
	if a.kineServing() {
		a.log.Info("the pair's address is on this node and its Kine serves here: kept until the next decision")
		a.mu.Lock()
		a.addrWant = true
		a.mu.Unlock()
		return
	}
	a.log.Warn("the pair's address was left on this node, whose Kine does not serve here: removing it")
	a.holdAddress(ctx, false)
}

// addressText is the address's line in status ("" without one).
func (a *Agent) addressText() string {
	if a.d.VIP == nil {
		return ""
	}
	a.mu.Lock()
	want, msg, parked := a.addrWant, a.addrErr, a.addrParked
	a.mu.Unlock()
	switch {
	case want && parked && msg == "":
		return a.cfg.VIP.Address + ": set aside while the follower is quiet (this leader commits nothing without it)"
	case want && msg != "":
		return a.cfg.VIP.Address + ": CANNOT be taken by this leader: " + msg
	case want:
		return a.cfg.VIP.Address + ": held by this node"
	case msg != "":
		return a.cfg.VIP.Address + ": not wanted here, and could not be removed (it lapses by itself): " + msg
	}
	return a.cfg.VIP.Address + ": not on this node"
}
