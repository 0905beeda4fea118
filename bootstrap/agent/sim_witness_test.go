package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/witness"
)

// simWitness is the pair's witness in the simulation: the two records of
// bootstrap/witness with the same compare-and-swap and lease semantics,
// on the simulated clock, reachable or not from each node.
type simWitness struct {
	policy    string // the agents' witness.unreachable
	down      bool
	cut       map[string]bool // nodes that cannot reach it
	term      witness.Term
	rev       int64 // the term record's revision, 0 while there is none
	alone     *witness.Alone
	lease     clientv3.LeaseID // the alone record's lease
	expires   time.Time
	nextRev   int64
	nextLease clientv3.LeaseID
	ttl       time.Duration
	timeout   time.Duration
	// leaseLost: terms (by node) in which a leader alone lost its lease to
	// expiry: only then may its acknowledged writes leave the live data.
	leaseLost map[string]bool
	// leaseTerms: the terms led under the live lease (a leader alone that
	// begins a new term keeps its lease).
	leaseTerms []string
	granted    []simLease // leases granted and not (yet) attached
}

type simLease struct {
	id      clientv3.LeaseID
	expires time.Time
}

var errWitnessUnreachable = errors.New("witness: unreachable")

// enableWitness gives both nodes a witness, before they have done anything.
func (w *simWorld) enableWitness(policy string) error {
	if w.round > 0 {
		return errors.New("witness: must come before the first round")
	}
	w.wit = &simWitness{policy: policy, cut: map[string]bool{}, ttl: 10 * time.Second, timeout: time.Second,
		leaseLost: map[string]bool{}}
	for _, n := range w.nodes {
		n.cfg.Witness.Endpoints = "https://witness.sim:2379" // On(); the client is the fake
		n.cfg.Witness.Unreachable = policy
		n.cfg.Witness.LeaseTTL = w.wit.ttl
		if err := w.boot(n); err != nil {
			return err
		}
	}
	return nil
}

// expireWitness ends a lease whose time is up, as etcd would.
func (w *simWorld) expireWitness() {
	ws := w.wit
	if ws == nil || ws.alone == nil || w.now.Before(ws.expires) {
		return
	}
	for _, t := range ws.leaseTerms {
		ws.leaseLost[t] = true
	}
	w.eventf("witness: %s's lease expired", ws.alone.By)
	ws.alone, ws.lease, ws.leaseTerms = nil, 0, nil
}

func (ws *simWitness) state() witness.State {
	st := witness.State{Term: witness.Seen{Term: ws.term, Rev: ws.rev}}
	if ws.alone != nil {
		a := *ws.alone
		st.Alone = &a
	}
	return st
}

// simWatchdog is a node's watchdog device: armed, it powers the node off
// when its agent has not petted it for the timeout (a hung or dead agent).
// It outlives the agent's process, as the kernel's device does.
type simWatchdog struct {
	armed   bool
	lastPet time.Time
}

const simWatchdogTimeout = 3 * time.Second

// watchdogAgent is one agent incarnation's handle on its node's watchdog.
type watchdogAgent struct{ *simInst }

func (d watchdogAgent) Arm() error {
	if err := d.alive(); err != nil {
		return err
	}
	d.n.wd.armed, d.n.wd.lastPet = true, d.w.now
	return nil
}

func (d watchdogAgent) Pet() error {
	if err := d.alive(); err != nil {
		return err
	}
	if d.n.wd.armed {
		d.n.wd.lastPet = d.w.now
	}
	return nil
}

func (d watchdogAgent) Disarm() error {
	if err := d.alive(); err != nil {
		return err
	}
	d.n.wd.armed = false
	return nil
}

// fireWatchdogs resets (powers off) a node whose watchdog went unpetted.
func (w *simWorld) fireWatchdogs() {
	for _, n := range w.nodes {
		if n.powered && n.wd.armed && w.now.Sub(n.wd.lastPet) > simWatchdogTimeout {
			w.eventf("%s: watchdog: no pet for %s: reset", n.name, w.now.Sub(n.wd.lastPet))
			w.powerOff(n)
			if err := w.powerOn(n); err != nil { // the machine reboots
				w.inv.violate(w, "boot", n.name, "rebooting after the watchdog: %v", err)
			}
		}
	}
}

// simWitnessClient is one agent incarnation's witness client.
type simWitnessClient struct{ *simInst }

func (c simWitnessClient) reach() (*simWitness, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	ws := c.w.wit
	if ws.down || ws.cut[c.n.name] {
		return nil, errWitnessUnreachable
	}
	return ws, nil
}

// ReadLocal is Read: the simulated witness has one copy.
func (c simWitnessClient) ReadLocal(ctx context.Context) (witness.State, error) { return c.Read(ctx) }

func (c simWitnessClient) Read(context.Context) (witness.State, error) {
	ws, err := c.reach()
	if err != nil {
		return witness.State{}, err
	}
	return ws.state(), nil
}

// lease is the agent's view of a lease granted or renewed now (see
// witness.Client.lease).
func (ws *simWitness) localLease(id clientv3.LeaseID, now time.Time) witness.Lease {
	return witness.Lease{ID: id, TTL: ws.ttl, Deadline: now.Add(ws.ttl - max(ws.ttl/10, ws.timeout))}
}

// Grant takes a lease; the fake keeps only the live one of the alone
// record, so a granted lease is just a number until a claim attaches it.
func (c simWitnessClient) Grant(context.Context) (witness.Lease, error) {
	if err := c.before("witness-grant"); err != nil {
		return witness.Lease{}, err
	}
	ws, err := c.reach()
	if err != nil {
		return witness.Lease{}, c.after("witness-grant", err)
	}
	ws.nextLease++
	ws.granted = append(ws.granted, simLease{id: ws.nextLease, expires: c.w.now.Add(ws.ttl)})
	return ws.localLease(ws.nextLease, c.w.now), c.after("witness-grant", nil)
}

// leaseAlive: a granted lease that has not expired.
func (ws *simWitness) leaseAlive(id clientv3.LeaseID, now time.Time) bool {
	if id != 0 && id == ws.lease && ws.alone != nil {
		return true
	}
	for _, g := range ws.granted {
		if g.id == id {
			return now.Before(g.expires)
		}
	}
	return false
}

func (c simWitnessClient) Claim(_ context.Context, from witness.State, term uint64, held witness.Lease) (bool, witness.State, witness.Lease, error) {
	if err := c.before("witness-claim"); err != nil {
		return false, witness.State{}, witness.Lease{}, err
	}
	ws, err := c.reach()
	if err != nil {
		return false, witness.State{}, witness.Lease{}, c.after("witness-claim", err)
	}
	me, now := c.n.name, c.w.now
	fail := func(err error) (bool, witness.State, witness.Lease, error) {
		return false, witness.State{}, witness.Lease{}, c.after("witness-claim", err)
	}
	switch {
	case term == 0 || term < from.Term.Term.Term:
		return fail(fmt.Errorf("witness: term %d does not follow %d", term, from.Term.Term.Term))
	case term == from.Term.Term.Term && from.Term.Rev != 0 && from.Term.By != me:
		return fail(fmt.Errorf("witness: term %d was claimed by %s", term, from.Term.By))
	case from.Alone != nil && from.Alone.By != me:
		return false, from, witness.Lease{}, c.after("witness-claim", nil)
	case !ws.leaseAlive(held.ID, now):
		return fail(witness.ErrLeaseGone)
	}
	aloneAsRead := ws.alone == nil
	if from.Alone != nil {
		aloneAsRead = ws.alone != nil && ws.lease == held.ID
	}
	if ws.rev != from.Term.Rev || !aloneAsRead {
		return false, ws.state(), witness.Lease{}, c.after("witness-claim", nil)
	}
	if ws.lease != held.ID {
		ws.leaseTerms = nil
	}
	ws.leaseTerms = append(ws.leaseTerms, fmt.Sprintf("%d/%s", term, me))
	ws.nextRev++
	ws.term, ws.rev = witness.Term{Term: term, By: me}, ws.nextRev
	ws.alone, ws.lease, ws.expires = &witness.Alone{Term: term, By: me}, held.ID, now.Add(ws.ttl)
	return true, ws.state(), ws.localLease(held.ID, now), c.after("witness-claim", nil)
}

func (c simWitnessClient) Renew(_ context.Context, l witness.Lease) (witness.Lease, error) {
	ws, err := c.reach()
	if err != nil {
		return l, err
	}
	if l.ID == 0 || l.ID != ws.lease || ws.alone == nil {
		return l, errors.New("witness: renew lease: requested lease not found")
	}
	ws.expires = c.w.now.Add(ws.ttl)
	return ws.localLease(l.ID, c.w.now), nil
}

func (c simWitnessClient) Release(_ context.Context, l witness.Lease) error {
	ws, err := c.reach()
	if err != nil {
		return err
	}
	if l.ID != 0 && l.ID == ws.lease {
		ws.alone, ws.lease, ws.leaseTerms = nil, 0, nil
	}
	return nil
}

// acking: n's Kine serves writes that can be acknowledged (a synchronous
// primary whose follower does not stream acknowledges nothing).
func (w *simWorld) acking(n *simNode) bool {
	return w.serving(n) && (!n.pg.sync || w.streamingFrom(w.peerOf(n), n))
}

// witnessCommand runs the witness's commands; ok false: not one of them.
func (s *simRunner) witnessCommand(cmd string, pos []string) (string, bool, error) {
	w := s.w
	if cmd == "witness" {
		policy := "wait"
		if len(pos) > 0 {
			policy = pos[0]
		}
		if policy != "wait" && policy != "promote" {
			return "", true, fmt.Errorf("witness: policy wait or promote, not %q", policy)
		}
		return "ok", true, w.enableWitness(policy)
	}
	switch cmd {
	case "witness-down", "witness-up", "witness-cut", "witness-heal":
	default:
		return "", false, nil
	}
	if w.wit == nil {
		return "", true, fmt.Errorf("%s: no witness (the script needs `witness` first)", cmd)
	}
	switch cmd {
	case "witness-down":
		w.wit.down = true
	case "witness-up":
		w.wit.down = false
	case "witness-cut": // witness-cut a: a alone cannot reach it
		if len(pos) == 0 || w.node(pos[0]) == nil {
			return "", true, fmt.Errorf("witness-cut: want a node")
		}
		w.wit.cut[pos[0]] = true
	case "witness-heal":
		clear(w.wit.cut)
	}
	w.eventf("%s %v", cmd, pos)
	w.inv.fault(w)
	return "ok", true, nil
}
