package agent

// The simulated world of sim_test.go: two nodes "a" and "b", each with a
// fake PostgreSQL (a write-ahead log of entries), a fake Kine (where it
// points) and a real Agent built with New on its own DataDir, joined by a
// link that can be cut (both ways, or only for connections one node
// initiates). Everything runs in the test's goroutine: the only other
// goroutines are observe()'s probes (which only read) and, for a command
// that needs the agent's Run loop (a peer's hand-over, an operator's
// switchover), the handler's own goroutine while this one plays the loop.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

type entryKind uint8

const (
	eInit  entryKind = iota // initdb: a new system identifier
	eRow                    // a Kine row written by a client
	eFence                  // the revision fence's filler row
	eTerm                   // a twonode_terms row
	eCkpt                   // a checkpoint written at a clean stop, or after crash recovery of a primary
	ePromo                  // a timeline switch (pg_promote, or a primary start on a standby's data)
)

// simEntry is one WAL record. IDs are unique in the world, so two logs
// share an entry only if one copied it from the other: a log is a prefix
// of another exactly when its last entry is at the same position there.
type simEntry struct {
	Kind entryKind
	ID   int
	Rev  int64  // rows and fences: the Kine revision
	Term uint64 // terms (twonode_terms): the term recorded
	At   time.Time
}

// simPG is one node's PostgreSQL: its data directory and its server.
type simPG struct {
	data    bool
	running bool
	standby bool // in recovery
	signal  bool // standby.signal: the data was prepared as a standby
	sync    bool // synchronous_standby_names names the peer
	dirty   bool // stopped without a shutdown checkpoint (crash, power loss, -m immediate)
	wal     []simEntry
}

func (p *simPG) maxRev() int64 {
	for i := len(p.wal) - 1; i >= 0; i-- {
		if p.wal[i].Rev > 0 {
			return p.wal[i].Rev
		}
	}
	return 0
}

func (p *simPG) rows() int {
	n := 0
	for _, e := range p.wal {
		if e.Kind == eRow {
			n++
		}
	}
	return n
}

func (p *simPG) has(id int) bool {
	for _, e := range p.wal {
		if e.ID == id {
			return true
		}
	}
	return false
}

func isPrefix(s, p []simEntry) bool {
	if len(s) > len(p) {
		return false
	}
	return len(s) == 0 || s[len(s)-1].ID == p[len(s)-1].ID
}

// crashPlan makes one effectful call of a node's agent its last: the call
// fails (before: without effect; after: with it) and the agent is thrown
// away. Either the nth call named call (counted from arming), or the
// node's global effectful call number at.
type crashPlan struct {
	call  string
	nth   int
	at    int
	after bool
	seen  int
}

func (c *crashPlan) String() string {
	when := "before"
	if c.after {
		when = "after"
	}
	if c.call != "" {
		return fmt.Sprintf("%s %s#%d", when, c.call, c.nth)
	}
	return fmt.Sprintf("%s call %d", when, c.at)
}

type simNode struct {
	name, peerName string
	addr           string
	cfg            *config.Config
	powered        bool
	pg             simPG
	kine           string // the address Kine writes to, "" when stopped
	kineDead       bool   // the Kine process died (its target kept, as kine.Process keeps it)
	wd             simWatchdog
	agent          *Agent
	inst           *simInst
	restartAt      int // round at which a crashed agent comes back
	calls          int // effectful calls made while acting, over all incarnations
	crash          *crashPlan
	callLog        []string // names of the counted calls, by number-1 (recording runs)
	diskFull       bool     // the data filesystem has no room left (FreeBytes says so)
	addrHeld       bool     // the pair's address was put on this node's interface (simWorld.holdsAddr)
	addrUntil      time.Time
}

// simFiring is one decided transition whose actions ran (or failed).
type simFiring struct {
	node    string
	key     string // from|to|reason
	actions []string
	c0, c1  int // the node's call counter before and after
	ok      bool
	round   int
}

type simWrite struct {
	ID     int
	Rev    int64
	Term   uint64 // the writing primary's node's term
	Via    string // the node whose Kine took the write
	Writer string // the node whose database committed it
	Acked  bool
	Round  int
}

type simWorld struct {
	nodes   [2]*simNode
	now     time.Time
	round   int
	linkUp  bool
	blocked string // one-way fault: connections this node initiates fail
	nextID  int
	writes  []simWrite
	events  []string
	log     *slog.Logger
	probe   time.Duration
	restart int // rounds before a crashed agent is restarted
	clients bool

	wit *simWitness // the pair's witness, nil: none

	record  bool // keep firings and call names
	firings []simFiring
	onCrash func(n *simNode)

	inv simInvariants
}

var errCrashed = errors.New("sim: the agent process died here")

func simConfig(name, peerName, addr, peerAddr, dir string) *config.Config {
	cfg := config.Default()
	cfg.Node = config.Host{Name: name, Address: addr}
	cfg.Peer = config.Host{Name: peerName, Address: peerAddr}
	cfg.DataDir = dir
	return &cfg
}

// newSimWorld builds the world in base (a directory it owns) with both
// nodes powered and their agents started.
func newSimWorld(base string, log *slog.Logger) (*simWorld, error) {
	if log == nil {
		log = slog.New(discardHandler{})
	}
	w := &simWorld{
		now:    time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC),
		linkUp: true, log: log, restart: 1, clients: true, nextID: 1,
	}
	for i, name := range []string{"a", "b"} {
		peerName := []string{"b", "a"}[i]
		addr, peerAddr := fmt.Sprintf("10.0.0.%d", i+1), fmt.Sprintf("10.0.0.%d", 2-i)
		dir := filepath.Join(base, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		w.nodes[i] = &simNode{name: name, peerName: peerName, addr: addr, cfg: simConfig(name, peerName, addr, peerAddr, dir), powered: true}
	}
	w.probe = w.nodes[0].cfg.Timers.ProbeInterval
	for _, n := range w.nodes {
		if err := w.boot(n); err != nil {
			return nil, err
		}
	}
	w.inv.init(w)
	return w, nil
}

// discardHandler drops every record without formatting it.
type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (h discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h discardHandler) WithGroup(string) slog.Handler           { return h }

func (w *simWorld) node(name string) *simNode {
	for _, n := range w.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (w *simWorld) peerOf(n *simNode) *simNode {
	if n == w.nodes[0] {
		return w.nodes[1]
	}
	return w.nodes[0]
}

func (w *simWorld) byAddr(addr string) *simNode {
	for _, n := range w.nodes {
		if n.addr == addr {
			return n
		}
	}
	return nil
}

func (w *simWorld) eventf(format string, args ...any) {
	w.events = append(w.events, fmt.Sprintf("r%d %s", w.round, fmt.Sprintf(format, args...)))
}

func (w *simWorld) clock() time.Time { return w.now }

// canConnect: a connection from's side opens reaches to and is answered.
func (w *simWorld) canConnect(from, to *simNode) bool {
	return from.powered && to.powered && w.linkUp && w.blocked != from.name
}

// streamingFrom: s is a standby whose WAL receiver streams from p.
func (w *simWorld) streamingFrom(s, p *simNode) bool {
	return s.powered && s.pg.running && s.pg.standby && p.powered && p.pg.running && !p.pg.standby &&
		w.canConnect(s, p) && isPrefix(s.pg.wal, p.pg.wal)
}

// settle lets a streaming standby catch up: replication is instantaneous.
func (w *simWorld) settle() {
	for _, s := range w.nodes {
		p := w.peerOf(s)
		if w.streamingFrom(s, p) && len(s.pg.wal) < len(p.pg.wal) {
			s.pg.wal = slices.Clip(p.pg.wal)
		}
	}
}

func (w *simWorld) appendEntry(n *simNode, k entryKind, rev int64) simEntry {
	e := simEntry{Kind: k, ID: w.nextID, Rev: rev, At: w.now.Add(time.Duration(w.nextID%1000) * time.Microsecond)}
	w.nextID++
	n.pg.wal = append(n.pg.wal, e)
	return e
}

// persisted is a node's state file as its agent (or its disk) has it.
func (w *simWorld) persisted(n *simNode) Persisted {
	if n.agent != nil {
		_, _, st := n.agent.snapshot()
		return st
	}
	st, _ := loadState(n.cfg.DataDir)
	return st
}

func (w *simWorld) boot(n *simNode) error {
	inst := &simInst{w: w, n: n}
	d := Deps{
		DB: simDB{inst}, Kine: simKine{inst}, Peer: simPeer{inst}, PingPeer: inst.ping, Now: w.clock, VIP: simAddress{inst},
		Secret: simSecret,
		FreeBytes: func(string) (uint64, error) {
			if n.diskFull {
				return 0, nil
			}
			return 1 << 40, nil
		},
	}
	if w.wit != nil {
		d.Witness, d.Watchdog = simWitnessClient{inst}, watchdogAgent{inst}
	}
	a, err := New(n.cfg, w.log.With("node", n.name), d)
	if err != nil {
		return err
	}
	inst.a = a
	n.agent, n.inst = a, inst
	return nil
}

// kill throws the agent away: its process died. PostgreSQL and Kine keep
// running as they were.
func (w *simWorld) kill(n *simNode, why string) {
	if n.inst != nil {
		n.inst.dead = true
	}
	n.agent, n.inst = nil, nil
	n.restartAt = w.round + w.restart
	w.eventf("%s: agent crashed %s", n.name, why)
	w.inv.fault(w)
}

func (w *simWorld) powerOff(n *simNode) {
	if n.inst != nil {
		n.inst.dead = true
	}
	n.agent, n.inst = nil, nil
	n.powered = false
	if n.pg.running {
		n.pg.running, n.pg.dirty = false, true
	}
	n.kine, n.kineDead, n.wd, n.addrHeld = "", false, simWatchdog{}, false
	w.eventf("%s: power off", n.name)
	w.inv.fault(w)
}

// inflight: a write committed in n's WAL when the power fails, before it
// was sent to the standby (so never acknowledged in synchronous mode).
func (w *simWorld) inflight(n *simNode) {
	if !n.powered || !n.pg.running || n.pg.standby || !n.pg.sync {
		return // asynchronous: a write is acknowledged once local, never in flight
	}
	e := w.appendEntry(n, eRow, n.pg.maxRev()+1)
	w.writes = append(w.writes, simWrite{ID: e.ID, Rev: e.Rev, Term: w.persisted(n).Term, Via: n.name, Writer: n.name, Round: w.round})
	w.eventf("%s: write %d in flight at the power loss", n.name, e.ID)
}

func (w *simWorld) powerOn(n *simNode) error {
	if n.powered {
		return nil
	}
	n.powered = true
	n.pg.running, n.kine = false, ""
	w.eventf("%s: power on", n.name)
	w.inv.fault(w)
	return w.boot(n)
}

func (w *simWorld) setLink(up bool, blocked string) {
	w.linkUp, w.blocked = up, blocked
	switch {
	case !up:
		w.eventf("link down")
	case blocked != "":
		w.eventf("link one-way: %s cannot connect to its peer", blocked)
	default:
		w.eventf("link up")
	}
	w.settle()
	w.inv.fault(w)
}

// tickNode runs one tick of n's agent (req: a command the loop received)
// and records the decision it took.
func (w *simWorld) tickNode(ctx context.Context, n *simNode, req *cmdReq) {
	a, inst := n.agent, n.inst
	w.settle()
	a.mu.Lock()
	before, retry := a.m, a.retry
	a.mu.Unlock()
	c0 := n.calls
	a.tick(ctx, req)
	a.mu.Lock()
	obs, lastErr := a.last, a.lastErr
	a.mu.Unlock()
	_, d := fsm.Step(before, obs.o, a.fcfg)
	if d.Changed && !retry.holds(d, obs.o.Now) {
		ok := lastErr == "" && !inst.dead
		if w.record {
			acts := make([]string, len(d.Actions))
			for i, act := range d.Actions {
				acts[i] = string(act.Kind)
			}
			w.firings = append(w.firings, simFiring{node: n.name, key: rowKey(d.From, d.To, d.Reason), actions: acts,
				c0: c0, c1: n.calls, ok: ok, round: w.round})
		}
		if ok {
			w.eventf("%s: %s → %s: %s", n.name, d.From, d.To, d.Reason)
		} else {
			w.eventf("%s: %s → %s FAILED: %s (%s)", n.name, d.From, d.To, d.Reason, lastErr)
		}
	}
	if inst.dead && n.inst == inst {
		w.kill(n, inst.why)
	}
}

func rowKey(from, to fsm.State, reason string) string {
	return string(from) + "|" + string(to) + "|" + reason
}

// withLoop calls a handler that submits a command to n's loop (a.do) and
// plays that loop here until the handler returns.
func (w *simWorld) withLoop(n *simNode, call func(ctx context.Context)) {
	a := n.agent
	// Bounds only a promotion waiting for WAL that never comes (the fake
	// replays instantly or never); nothing else here takes time.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); call(ctx) }()
	for {
		select {
		case req := <-a.cmds:
			if n.agent == a {
				w.tickNode(ctx, n, &req)
			} else {
				req.reply <- cmdResult{err: errCrashed}
			}
		case <-done:
			return
		}
	}
}

// clientWrite: a client writes one row through n's Kine.
func (w *simWorld) clientWrite(n *simNode) {
	if !n.powered || n.kine == "" || n.kineDead {
		return
	}
	t := w.byAddr(n.kine)
	if t == nil || (t != n && !w.canConnect(n, t)) || !t.powered || !t.pg.running || t.pg.standby {
		return
	}
	e := w.appendEntry(t, eRow, t.pg.maxRev()+1)
	w.settle()
	p := w.peerOf(t)
	acked := !t.pg.sync || (w.streamingFrom(p, t) && p.pg.has(e.ID))
	w.writes = append(w.writes, simWrite{ID: e.ID, Rev: e.Rev, Term: w.persisted(t).Term, Via: n.name, Writer: t.name, Acked: acked, Round: w.round})
}

// step is one round: restart crashed agents, tick both, let clients
// write, check the invariants, advance the clock by one probe interval.
func (w *simWorld) step(ctx context.Context) {
	w.round++
	w.expireWitness()
	for _, n := range w.nodes {
		if n.powered && n.agent == nil && w.round >= n.restartAt {
			if err := w.boot(n); err != nil {
				w.inv.violate(w, "boot", n.name, "restarting the agent: %v", err)
			} else {
				w.eventf("%s: agent restarted", n.name)
			}
		}
	}
	for _, n := range w.nodes {
		if n.agent != nil {
			w.tickNode(ctx, n, nil)
		}
	}
	if w.clients {
		for _, n := range w.nodes {
			w.clientWrite(n)
		}
	}
	w.fireWatchdogs()
	w.inv.check(w)
	w.now = w.now.Add(w.probe)
}

// simSecret is the simulated pair's cluster secret (its archives are
// sealed with it).
var simSecret = []byte("the simulated pair's secret")
