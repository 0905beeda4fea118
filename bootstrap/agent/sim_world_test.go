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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
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
	agent          *Agent
	inst           *simInst
	restartAt      int // round at which a crashed agent comes back
	calls          int // effectful calls made while acting, over all incarnations
	crash          *crashPlan
	callLog        []string // names of the counted calls, by number-1 (recording runs)
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
	a, err := New(n.cfg, w.log.With("node", n.name), Deps{
		DB: simDB{inst}, Kine: simKine{inst}, Peer: simPeer{inst}, PingPeer: inst.ping, Now: w.clock,
		FreeBytes: func(string) (uint64, error) { return 1 << 40, nil },
	})
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
	n.kine = ""
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
	before, retryAt := a.m, a.retryAt
	a.mu.Unlock()
	c0 := n.calls
	a.tick(ctx, req)
	a.mu.Lock()
	obs, lastErr := a.last, a.lastErr
	a.mu.Unlock()
	_, d := fsm.Step(before, obs.o, a.fcfg)
	if d.Changed && !obs.o.Now.Before(retryAt) {
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
	if !n.powered || n.kine == "" {
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
	w.inv.check(w)
	w.now = w.now.Add(w.probe)
}

// simInst is one incarnation of a node's agent: its actors. Once dead,
// every call fails and the world throws the agent away.
type simInst struct {
	w    *simWorld
	n    *simNode
	a    *Agent
	dead bool
	why  string
	// crashAfter: the current call is the planned last one, after its effect.
	crashAfter bool
}

func (i *simInst) die(why string) {
	i.dead, i.why = true, why
	if i.w.onCrash != nil {
		i.w.onCrash(i.n)
	}
}

// before is the start of an effectful call: counted (while the agent runs
// a transition's actions) and, if planned, the agent's last.
func (i *simInst) before(name string) error {
	if i.dead {
		return errCrashed
	}
	i.crashAfter = false
	if i.a == nil || !i.a.acting.Load() {
		return nil
	}
	n := i.n
	n.calls++
	if i.w.record {
		n.callLog = append(n.callLog, name)
	}
	c := n.crash
	if c == nil {
		return nil
	}
	hit := false
	if c.call != "" && c.call == name {
		c.seen++
		hit = c.seen == c.nth
	} else if c.call == "" && c.at == n.calls {
		hit = true
	}
	if !hit {
		return nil
	}
	n.crash = nil
	if c.after {
		i.crashAfter = true
		return nil
	}
	i.die(c.String() + " (" + name + ")")
	return errCrashed
}

// after ends an effectful call whose effect happened.
func (i *simInst) after(name string, err error) error {
	i.w.settle()
	if i.crashAfter {
		i.crashAfter = false
		i.die("after " + name)
		return errCrashed
	}
	return err
}

func (i *simInst) alive() error {
	if i.dead {
		return errCrashed
	}
	return nil
}

func (i *simInst) ping(context.Context) error {
	if err := i.alive(); err != nil {
		return err
	}
	p := i.w.peerOf(i.n)
	if !i.w.canConnect(i.n, p) || !p.pg.running {
		return context.DeadlineExceeded
	}
	return nil
}

// simDB is the node's PostgreSQL as the agent's Database.
type simDB struct{ *simInst }

func (d simDB) pg() *simPG { return &d.n.pg }

func (d simDB) HasData() bool { return d.n.pg.data }

func (d simDB) InitDB(context.Context) error {
	if err := d.before("initdb"); err != nil {
		return err
	}
	var err error
	if d.pg().data {
		err = errors.New("postgres: initdb: refusing: the data directory already holds a cluster")
	} else {
		d.pg().data = true
		d.w.appendEntry(d.n, eInit, 0)
	}
	return d.after("initdb", err)
}

func (d simDB) Start(_ context.Context, standby bool) error {
	name := "start-primary"
	if standby {
		name = "start-standby"
	}
	if err := d.before(name); err != nil {
		return err
	}
	return d.after(name, d.w.pgStart(d.n, standby))
}

func (w *simWorld) pgStart(n *simNode, standby bool) error {
	pg := &n.pg
	switch {
	case !pg.data:
		return errors.New("postgres: start: no cluster")
	case pg.running && pg.standby == standby:
		return nil
	case pg.running && standby:
		return errors.New("postgres: start as standby: it runs as a primary: stop and rewind it first")
	case pg.running:
		return errors.New("postgres: start as primary: it runs as a standby: promote it instead")
	}
	pg.running, pg.sync = true, false
	if standby {
		pg.standby, pg.signal, pg.dirty = true, true, false
		return nil
	}
	pg.standby = false
	switch {
	case pg.signal: // a standby's data opened as a primary: promoted to a new timeline
		pg.signal = false
		w.appendEntry(n, ePromo, 0)
	case pg.dirty: // crash recovery ends with a checkpoint
		w.appendEntry(n, eCkpt, 0)
	}
	pg.dirty = false
	return nil
}

func (d simDB) Stop(_ context.Context, immediate bool) error {
	if err := d.before("stop"); err != nil {
		return err
	}
	pg := d.pg()
	if pg.running {
		if !pg.standby && !immediate {
			// The shutdown checkpoint reaches a connected standby before exit.
			d.w.appendEntry(d.n, eCkpt, 0)
			d.w.settle()
		}
		pg.running = false
		pg.dirty = immediate
	}
	return d.after("stop", nil)
}

// copyFromPeer is pg_rewind's and pg_basebackup's result: the peer's WAL,
// prepared as a standby, not started.
func (w *simWorld) copyFromPeer(n *simNode, tool string, rewind bool) error {
	p := w.peerOf(n)
	if !w.canConnect(n, p) || !p.pg.running {
		return fmt.Errorf("postgres: %s from %s: could not connect to the source server", tool, p.addr)
	}
	if rewind {
		if !n.pg.data {
			return errors.New("postgres: rewind: no cluster")
		}
		if n.pg.running {
			return errors.New("postgres: rewind: target server must be shut down cleanly")
		}
		if len(n.pg.wal) == 0 || len(p.pg.wal) == 0 || n.pg.wal[0].ID != p.pg.wal[0].ID {
			return errors.New("postgres: pg_rewind: source and target clusters are from different systems")
		}
	}
	n.pg = simPG{data: true, signal: true, wal: slices.Clip(p.pg.wal)}
	return nil
}

func (d simDB) BaseBackup(context.Context) error {
	if err := d.before("base-backup"); err != nil {
		return err
	}
	d.pg().running = false
	return d.after("base-backup", d.w.copyFromPeer(d.n, "pg_basebackup", false))
}

func (d simDB) Rewind(context.Context) error {
	if err := d.before("rewind"); err != nil {
		return err
	}
	return d.after("rewind", d.w.copyFromPeer(d.n, "pg_rewind", true))
}

func (d simDB) Promote(context.Context) (time.Duration, error) {
	if err := d.before("promote"); err != nil {
		return 0, err
	}
	pg := d.pg()
	var err error
	switch {
	case !pg.running:
		err = errors.New("postgres: promote: not running")
	case !pg.standby:
		pg.sync = false // the inherited settings are cleared first
	default:
		pg.standby, pg.signal, pg.sync = false, false, false
		d.w.appendEntry(d.n, ePromo, 0)
	}
	return time.Millisecond, d.after("promote", err)
}

func (d simDB) SetSync(_ context.Context, on bool) error {
	name := "sync-off"
	if on {
		name = "sync-on"
	}
	if err := d.before(name); err != nil {
		return err
	}
	var err error
	if !d.pg().running {
		err = errors.New("postgres: set sync: not running")
	} else {
		d.pg().sync = on
	}
	return d.after(name, err)
}

func (d simDB) EnsureSlot(context.Context, string) error {
	if err := d.before("ensure-slot"); err != nil {
		return err
	}
	var err error
	if !d.pg().running {
		err = errors.New("postgres: ensure slot: not running")
	}
	return d.after("ensure-slot", err)
}

func (d simDB) RevisionFence(_ context.Context, margin, floor int64) (int64, error) {
	if err := d.before("fence"); err != nil {
		return 0, err
	}
	pg := d.pg()
	var f int64
	var err error
	switch {
	case !pg.running:
		err = errors.New("postgres: revision fence: not running")
	case pg.standby:
		err = errors.New("postgres: revision fence: cannot execute LOCK TABLE during recovery")
	case pg.maxRev() == 0: // Kine has not created its table yet
	default:
		cur := pg.maxRev()
		if floor > 0 && cur > floor {
			break
		}
		f = max(cur, floor) + margin
		d.w.appendEntry(d.n, eFence, f)
	}
	return f, d.after("fence", err)
}

func (d simDB) RecordTerm(_ context.Context, term uint64, _, _ string, _ int64) error {
	if err := d.before("record-term"); err != nil {
		return err
	}
	var err error
	if pg := d.pg(); !pg.running || pg.standby {
		err = errors.New("postgres: record term: not a running primary")
	} else {
		d.w.appendEntry(d.n, eTerm, 0)
		pg.wal[len(pg.wal)-1].Term = term
	}
	return d.after("record-term", err)
}

// MaxTerm is the newest term in this node's WAL (replicated on a standby).
func (d simDB) MaxTerm(context.Context) (uint64, error) {
	if err := d.alive(); err != nil {
		return 0, err
	}
	pg := d.pg()
	if !pg.running {
		return 0, errors.New("postgres: max term: not running")
	}
	var t uint64
	for _, e := range pg.wal {
		if e.Kind == eTerm {
			t = max(t, e.Term)
		}
	}
	return t, nil
}

func (d simDB) MaxRevision(context.Context) (int64, error) {
	if err := d.before("max-revision"); err != nil {
		return 0, err
	}
	if !d.pg().running {
		return 0, d.after("max-revision", errors.New("postgres: max revision: not running"))
	}
	return d.pg().maxRev(), d.after("max-revision", nil)
}

func (d simDB) LastWrite(context.Context) (time.Time, string, error) {
	if err := d.alive(); err != nil {
		return time.Time{}, "", err
	}
	pg := d.pg()
	if !pg.running {
		return time.Time{}, "", errors.New("postgres: last write: not running")
	}
	for i := len(pg.wal) - 1; i >= 0; i-- {
		if e := pg.wal[i]; e.Kind == eRow {
			return e.At, fmt.Sprintf("/registry/sim/%d", e.ID), nil
		}
	}
	return time.Time{}, "", nil
}

func (d simDB) Status(context.Context) (postgres.Status, error) {
	st := postgres.Status{PeerFlushLagBytes: -1}
	simHeard(&st, false, "")
	if err := d.alive(); err != nil {
		return st, err
	}
	pg, p := d.pg(), d.w.peerOf(d.n)
	if !pg.running {
		return st, nil
	}
	st.Up, st.InRecovery = true, pg.standby
	for i := len(pg.wal) - 1; i >= 0; i-- {
		if k := pg.wal[i].Kind; k == eRow || k == eFence || k == eTerm {
			st.LastCommit = pg.wal[i].At
			break
		}
	}
	lsn := uint64(len(pg.wal))
	if pg.standby {
		st.ReceiveLSN, st.ReplayLSN = lsn, lsn
		st.ReceiverStreaming = d.w.streamingFrom(d.n, p)
		simHeard(&st, st.ReceiverStreaming, d.w.mark(d.n))
	} else {
		st.CurrentLSN = lsn
		st.Streaming = d.w.streamingFrom(p, d.n)
		simHeard(&st, st.Streaming, d.w.mark(d.n))
		if st.Streaming {
			st.PeerFlushLagBytes = 0
		}
		if pg.sync {
			st.SyncStandbyNames = fmt.Sprintf(`FIRST 1 ("%s")`, d.n.peerName)
		}
	}
	return st, nil
}

// simHeard says whether replication brought a message from the peer just
// now, in whichever form postgres.Status has: HeardAgo (a duration, -1 if
// never) or PeerMark (changes with every message, "" if none). Set by
// reflection so the world compiles against either.
func simHeard(st *postgres.Status, heard bool, mark string) {
	v := reflect.ValueOf(st).Elem()
	if f := v.FieldByName("HeardAgo"); f.IsValid() {
		if heard {
			f.SetInt(0)
		} else {
			f.SetInt(-1)
		}
	}
	if f := v.FieldByName("PeerMark"); f.IsValid() {
		if heard {
			f.SetString(mark)
		} else {
			f.SetString("")
		}
	}
}

// mark is what a streaming node last heard: a keepalive every round.
func (w *simWorld) mark(n *simNode) string {
	return fmt.Sprintf("%d %d", w.now.UnixNano(), len(n.pg.wal))
}

// simArchiveHeader is the fake's archive header: the real one, plus the
// winner's term when the archive was written (a same-term split or not).
type simArchiveHeader struct {
	postgres.ArchiveHeader
	WinnerTerm uint64 `json:"sim_winner_term"`
}

type simArchiveRow struct {
	ID    int64 `json:"id"`
	Write int   `json:"sim_write"`
}

func (d simDB) Archive(_ context.Context, forkRev int64, out io.Writer, h postgres.ArchiveHeader) (int, error) {
	if err := d.before("archive"); err != nil {
		return 0, err
	}
	pg, p := d.pg(), d.w.peerOf(d.n)
	if !pg.running {
		return 0, d.after("archive", errors.New("postgres: archive: not running"))
	}
	if !d.w.canConnect(d.n, p) || !p.pg.running {
		return 0, d.after("archive", errors.New("postgres: archive: connecting to the winner: no answer"))
	}
	theirs := map[int]bool{}
	for _, e := range p.pg.wal {
		theirs[e.ID] = true
	}
	var rows []simArchiveRow
	for _, e := range pg.wal {
		if e.Kind == eRow && e.Rev > forkRev-10000 && !theirs[e.ID] {
			rows = append(rows, simArchiveRow{ID: e.Rev, Write: e.ID})
		}
	}
	h.Kind, h.ForkRev, h.Count = "header", forkRev, len(rows)
	enc := json.NewEncoder(out)
	if err := enc.Encode(simArchiveHeader{ArchiveHeader: h, WinnerTerm: d.w.persisted(p).Term}); err != nil {
		return 0, d.after("archive", err)
	}
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return 0, d.after("archive", err)
		}
	}
	return len(rows), d.after("archive", nil)
}

// simKine is the node's Kine.
type simKine struct{ *simInst }

func (k simKine) Point(_ context.Context, host string) error {
	name := "kine-local"
	if host != k.n.addr {
		name = "kine-peer"
	}
	if err := k.before(name); err != nil {
		return err
	}
	k.n.kine = host
	return k.after(name, nil)
}

func (k simKine) Stop(context.Context) error {
	if err := k.before("kine-stop"); err != nil {
		return err
	}
	k.n.kine = ""
	return k.after("kine-stop", nil)
}

func (k simKine) Ensure(context.Context) error { return k.alive() }
func (k simKine) Target() string               { return k.n.kine }

// simPeer is the other agent over the link: its PeerHandler, called directly.
type simPeer struct{ *simInst }

func (c simPeer) reach() (*simNode, error) {
	p := c.w.peerOf(c.n)
	if !c.w.canConnect(c.n, p) {
		return nil, fmt.Errorf("peer %s: connection timed out", p.name)
	}
	if p.agent == nil || p.inst == nil || p.inst.dead {
		return nil, fmt.Errorf("peer %s: connection refused", p.name)
	}
	return p, nil
}

func (c simPeer) Status(ctx context.Context) (peer.Status, time.Time, time.Time, error) {
	now := c.w.now
	if err := c.alive(); err != nil {
		return peer.Status{}, now, now, err
	}
	p, err := c.reach()
	if err != nil {
		return peer.Status{}, now, now, err
	}
	return (&PeerHandler{p.agent}).Status(ctx), now, now, nil
}

func (c simPeer) Pause(ctx context.Context, r peer.PauseRequest) error {
	if err := c.before("peer-pause"); err != nil {
		return err
	}
	p, err := c.reach()
	if err == nil {
		err = (&PeerHandler{p.agent}).Pause(ctx, r)
	}
	return c.after("peer-pause", err)
}

func (c simPeer) Resume(ctx context.Context, r peer.ResumeRequest) error {
	if err := c.before("peer-resume"); err != nil {
		return err
	}
	p, err := c.reach()
	if err == nil {
		err = (&PeerHandler{p.agent}).Resume(ctx, r)
	}
	return c.after("peer-resume", err)
}

func (c simPeer) Handover(_ context.Context, r peer.HandoverRequest) (peer.HandoverResponse, error) {
	if err := c.before("handover"); err != nil {
		return peer.HandoverResponse{}, err
	}
	p, err := c.reach()
	var resp peer.HandoverResponse
	if err == nil {
		c.w.withLoop(p, func(ctx context.Context) { resp, err = (&PeerHandler{p.agent}).Handover(ctx, r) })
	}
	return resp, c.after("handover", err)
}

// archivedWrites are the write ids in n's archive files, with whether the
// archive was written in a same-term split (the loser's term equal to the
// winner's).
func archivedWrites(n *simNode) (map[int]bool, error) {
	files, err := filepath.Glob(filepath.Join(n.cfg.DataDir, "archive", "*.jsonl"))
	if err != nil {
		return nil, err
	}
	ids := map[int]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var h simArchiveHeader
		if err := json.Unmarshal([]byte(lines[0]), &h); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		same := h.Term == h.WinnerTerm
		for _, l := range lines[1:] {
			var r simArchiveRow
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			ids[r.Write] = ids[r.Write] || same
		}
	}
	return ids, nil
}
