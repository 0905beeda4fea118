// Package agent is the twonode daemon: every probe interval it observes the
// local PostgreSQL, the peer's agent and the peer's PostgreSQL, asks the
// pure decision core (package fsm) what to do, runs the decided actions in
// order, and keeps the new state only when all of them succeeded.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/kine"
	"github.com/twonode-edge/twonode/bootstrap/localapi"
	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// Version is set at build time.
var Version = "dev"

// Deps are the actors the agent drives; New wires the real ones.
type Deps struct {
	DB       Database
	Kine     kine.Runner
	Peer     PeerClient
	PingPeer Pinger
	Now      func() time.Time // the wall clock, with the config's test offset
	// PeerLastWrite reads the peer's last write from its database (the
	// split's evidence, checked against the peer's claim); nil: not read.
	PeerLastWrite func(ctx context.Context) (time.Time, string, error)
	// Fault makes the agent die inside a transition: FOR FAULT TESTS ONLY
	// (see FaultEnv). Zero: none.
	Fault Fault
	// FreeBytes is the space left to unprivileged writers on the
	// filesystem holding path (statfs by default).
	FreeBytes func(path string) (uint64, error)
	// Witness is the pair's third vote (nil: none configured).
	Witness WitnessClient
	// Watchdog resets the node if the agent hangs while the witness may
	// hold its lease (nil: none).
	Watchdog Watchdog
	// Secret is the cluster secret: split-brain archives are sealed with a
	// key derived from it (bootstrap/archive).
	Secret []byte
	// VIP is the pair's stable API address (*vip.VIP; nil: none). It is on
	// this node exactly while this node's Kine serves its own database:
	// taken once fsm.KineLocal's Kine is ready, given up before fsm.KineStop
	// or fsm.KinePeer touches Kine.
	VIP Address
	// ProbeCommit commits one tiny transaction on the local primary and
	// says how long it took (nil: commit latency is not measured).
	ProbeCommit func(ctx context.Context) (time.Duration, error)
}

// Address is what the agent needs of the virtual IP (*vip.VIP).
type Address interface {
	Acquire(ctx context.Context) error
	Announce(ctx context.Context) error
	Release(ctx context.Context) error
	Held() (bool, error)
}

// Agent is the daemon's state; all fields after mu are guarded by it.
type Agent struct {
	cfg        *config.Config
	log        *slog.Logger
	d          Deps
	fcfg       fsm.Config
	met        *metrics
	cmds       chan cmdReq
	lastTickAt atomic.Int64 // unix nanos of the last completed tick, for the watchdog
	acting     atomic.Bool  // actions are running (a base backup may take minutes)
	commit     commitMeter
	slow       slowness // under mu

	mu          sync.Mutex
	st          Persisted
	m           fsm.Machine
	last        observed
	lastTrans   string
	lastAt      time.Time
	failStart   time.Time     // first failed probe of the current outage
	failover    time.Duration // detection to serving, last promotion
	peerOKAt    time.Time     // wall clock: the end of the last tick whose probes the peer answered
	failWall    time.Time     // wall clock: the end of the first failed probe of the current outage
	tl          *timeline     // the take-over under way (loop only; nil: none)
	backoff     time.Duration // after a failed transition
	retry       retryWait
	lastKept    time.Time // when the last tick last kept (or set aside) the address
	lastErr     string
	pgSlow      int             // consecutive ticks whose local PostgreSQL status timed out
	loggedWrite time.Time       // the last write a pending split logged
	peerMark    string          // the last replication mark from the peer (postgres.Status.PeerMark)
	markSeen    bool            // a mark was read since the agent started
	heardAt     time.Time       // when peerMark last changed, on this agent's clock
	peerFlushed int64           // (primary) the standby's flush position at that mark
	pgNow       postgres.Status // this tick's local PostgreSQL, as localPG judged it
	lastPeerErr string          // the last peer error, logged once when not believed (loop only)
	peerProblem string          // why the peer's last answer was not believed, for status
	wv          witnessView     // what this node knows of the witness
	waiting     string          // the last tick's fsm.Decision.Waiting
	addrWant    bool            // this node's decisions put the pair's address here (address.go)
	addrParked  bool            // set aside for now: a synchronous leader whose follower went quiet (address.go)
	addrTakenAt time.Time       // when an action last took the address (address.go)
	addrErr     string          // the last error taking or giving it up, "" if none
	peerServed  bool            // at the last tick the peer's Kine served its own database
	waitsFor    fsm.WaitKind    // and whom it waits for
}

// observed is the last tick's view, for status answers.
type observed struct {
	o    fsm.Observation
	pg   postgres.Status
	peer peer.Status
	at   time.Time // wall clock: the probes returned
}

type cmdReq struct {
	cmd   fsm.Command
	reply chan cmdResult
}

type cmdResult struct {
	cmd      fsm.CommandKind
	consumed bool
	err      error
	d        fsm.Decision
}

// JoinTimeout ends a join whose standby does not stream (the next join
// copies the leader's data afresh); a leader that says the WAL is gone
// ends it sooner.
const JoinTimeout = 2 * time.Minute

// New builds an agent from a validated config and its actors.
func New(cfg *config.Config, log *slog.Logger, d Deps) (*Agent, error) {
	st, err := loadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if d.Now == nil {
		off := cfg.ClockOffset
		d.Now = func() time.Time { return time.Now().Add(off) }
	}
	if d.FreeBytes == nil {
		d.FreeBytes = freeBytes
	}
	a := &Agent{
		cfg: cfg, log: log, d: d, st: st,
		fcfg: fsm.Config{
			FailureThreshold: cfg.Timers.FailureThreshold,
			RecoverThreshold: 2,
			HeardFor:         ticks(heardFor(cfg), cfg.Timers.ProbeInterval),
			BootGrace:        cfg.Timers.BootGrace,
			JoinTimeout:      JoinTimeout,
			WitnessWait:      cfg.Witness.Unreachable == "wait",
			// One witness request's time: a leader's claim to go on alone
			// answers within it.
			WitnessDefer: ticks(cfg.Witness.RequestTimeout, cfg.Timers.ProbeInterval),
			Manual:       cfg.Failover == "manual",
		},
		met:  newMetrics(),
		cmds: make(chan cmdReq),
	}
	a.m = fsm.New(d.Now())
	a.restoreLease()
	a.reconcileAddress(context.Background())
	return a, nil
}

// Run ticks until ctx ends. It never stops PostgreSQL or Kine on the way
// out: the datastore keeps serving while the agent restarts.
func (a *Agent) Run(ctx context.Context) error {
	a.log.Info("agent started", "node", a.cfg.Node.Name, "peer", a.cfg.Peer.Name, "term", a.st.Term,
		"term_role", a.st.TermRole, "member", a.st.Member, "version", Version)
	a.pruneArchives()
	go a.measureCommits(ctx)
	t := time.NewTicker(a.cfg.Timers.ProbeInterval)
	defer t.Stop()
	var pending *cmdReq
	for {
		a.tick(ctx, pending)
		pending = nil
		select {
		case <-ctx.Done():
			a.log.Info("agent stopping; PostgreSQL and Kine keep running")
			return nil
		case <-t.C:
		case c := <-a.cmds:
			pending = &c
		}
	}
}

func (a *Agent) tick(ctx context.Context, req *cmdReq) {
	var cmd fsm.Command
	if req != nil {
		cmd = req.cmd
	}
	started := a.d.Now()
	if idle := started.Sub(a.lastKept); !a.lastKept.IsZero() && idle > a.cfg.AddressLifetime() {
		// Stalled since the last tick kept the address (frozen, or starved
		// of CPU): as after a stalled tick, the address is set aside and
		// the witness read afresh before anything is decided. Found by the
		// matrix's frozen leader: frozen at the end of a tick, it put the
		// address back at its first tick after the thaw, beside the new
		// leader's, for 0.7 s.
		a.stalled(a.lastKept, idle)
		a.rereadWitness()
	}
	obs := a.observe(ctx, cmd)

	a.mu.Lock()
	m := a.m
	a.mu.Unlock()
	next, d := fsm.Step(m, obs.o, a.fcfg)
	// d.Hold carries this tick's probe counters whatever the transition.
	switch {
	case d.Hold.Fails == 0:
		a.failStart, a.failWall, a.peerOKAt = time.Time{}, time.Time{}, obs.at
	case d.Hold.Fails == 1 || a.failStart.IsZero():
		a.failStart, a.failWall = obs.o.Now, obs.at
	}

	var err error
	if d.Changed {
		if now := obs.o.Now; a.retry.holds(d, now) {
			next, err = d.Hold, fmt.Errorf("waiting %s before retrying: %s", a.retry.at.Sub(now).Round(time.Millisecond), a.lastErr)
		} else {
			a.tl = newTimeline(d, a.peerOKAt, a.failWall, obs.at)
			if err = a.executeWatched(ctx, d, obs); err != nil {
				next = d.Hold
				a.failed(d, err)
			} else {
				a.succeeded(d, obs.o.Now)
				a.tl.report(a.log, a.met, a.st.Term)
			}
			a.tl = nil
		}
	}
	a.mu.Lock()
	a.m = next
	a.last = obs
	if d.Waiting != "" && d.Waiting != a.waiting {
		a.log.Warn(d.Waiting, "waits_for", d.WaitsFor, "peer_reachable", obs.o.Peer.AgentUp, "replayed_lsn", obs.pg.ReplayLSN)
	}
	a.waiting, a.waitsFor = d.Waiting, d.WaitsFor
	a.mu.Unlock()

	if err := a.d.Kine.Ensure(ctx); err != nil {
		a.log.Warn("kine restart failed", "err", err)
	}
	// A tick that outlasted the address's lifetime renews nothing (stalled
	// says why). Found by the matrix's frozen leader: the tick the freeze
	// cut in half finished after the thaw and put the address back beside
	// the new leader's.
	if took := a.d.Now().Sub(started); took > a.cfg.AddressLifetime() {
		a.stalled(started, took)
		a.rereadWitness()
	} else if err == nil {
		a.keepAddress(ctx, next, obs.o)
	}
	a.tendWatchdog(a.d.Now())
	// What follows (the slot, the metrics, the reply) and the wait for
	// the next tick count as idle: measured, a freeze during EnsureSlot
	// went unnoticed when idle counted from the end of the tick.
	a.lastKept = a.d.Now()
	if next.State.IsLeader() && obs.pg.Up && !obs.pg.InRecovery {
		// The peer's slot may be missing after a rewind or a new follower.
		if err := a.d.DB.EnsureSlot(ctx, slotName(a.cfg.Peer.Name)); err != nil {
			a.log.Debug("ensure slot", "err", err)
		}
	}
	a.met.update(a, obs)
	a.lastTickAt.Store(time.Now().UnixNano())
	if req != nil {
		req.reply <- cmdResult{cmd: cmd.Kind, consumed: d.Consumed && err == nil, err: err, d: d}
	}
}

// executeWatched runs the decision's actions with the watchdog petted
// meanwhile where that is safe (petWhileActing).
func (a *Agent) executeWatched(ctx context.Context, d fsm.Decision, obs observed) error {
	stop := a.petWhileActing()
	defer stop()
	return a.executeMarked(ctx, d, obs)
}

func slotName(node string) string { return postgres.SlotName(node) }

// retryWait is the back-off after a failed transition: until at, the
// transition row (transitionKey) waits. Only that one: another decision,
// taken on what a tick observed, runs at once. Found by the matrix's frozen
// leader with a witness: thawed, the leader tried to go on alone, the
// witness refused (the follower had taken over), and the back-off then held
// the next tick's "the peer has newer state" for 1.2 s while its Kine
// answered reads from the history the pair had set aside.
type retryWait struct {
	at  time.Time
	row string
}

// holds reports whether d must wait: it retries the failed row too soon.
func (r retryWait) holds(d fsm.Decision, now time.Time) bool {
	return now.Before(r.at) && transitionKey(d) == r.row
}

// transitionKey names a row of the table: from, to and reason.
func transitionKey(d fsm.Decision) string {
	return string(d.From) + "|" + string(d.To) + "|" + d.Reason
}

// failed logs a failed transition once per distinct error and backs off,
// so that an impossible base backup does not run twice a second.
func (a *Agent) failed(d fsm.Decision, err error) {
	msg := err.Error()
	if msg != a.lastErr {
		a.log.Error(fmt.Sprintf("%s → %s failed, will retry: %s", d.From, d.To, d.Reason), "err", err)
	}
	a.lastErr = msg
	if key := transitionKey(d); key != a.retry.row {
		a.retry.row, a.backoff = key, 0 // another transition's failure starts afresh
	}
	switch {
	case a.backoff == 0:
		a.backoff = time.Second
	case a.backoff < 30*time.Second:
		a.backoff *= 2
	}
	a.retry.at = a.d.Now().Add(a.backoff)
	a.met.failedTransitions.Inc()
}

func (a *Agent) succeeded(d fsm.Decision, now time.Time) {
	line := fmt.Sprintf("%s → %s: %s", d.From, d.To, d.Reason)
	// from and to as fields too: whoever counts transitions (the tests,
	// a log pipeline) reads states, not the row's words.
	if d.Detail != "" {
		a.log.Info(line, "from", d.From, "to", d.To, "detail", d.Detail)
	} else {
		a.log.Info(line, "from", d.From, "to", d.To)
	}
	a.backoff, a.retry, a.lastErr = 0, retryWait{}, ""
	a.mu.Lock()
	a.lastTrans, a.lastAt = line, now
	if d.From == fsm.Follower && d.To == fsm.LeaderAlone && !a.failStart.IsZero() {
		a.failover = now.Sub(a.failStart)
	}
	a.mu.Unlock()
	a.met.transitions.WithLabelValues(string(d.From), string(d.To)).Inc()
}

// executeMarked runs a decision's actions between its intent's record and
// its clearing: a process killed in between finds the intent on start.
func (a *Agent) executeMarked(ctx context.Context, d fsm.Decision, obs observed) error {
	a.acting.Store(true)
	defer a.acting.Store(false)
	in := d.Intent()
	if in != nil {
		a.setIntent(in)
	}
	if err := a.execute(ctx, d, obs); err != nil {
		return err
	}
	if in != nil {
		a.setIntent(nil)
	}
	return nil
}

// setIntent records the transition under way (nil: none). A full disk
// (the hand-over of a leader whose disk filled, a split's loser whose
// disk is full) must not stop the transition: the intent is then kept in
// memory, and what a crash would need is either read back from
// PostgreSQL's real role (a promotion) or decided again (a concession).
// Replacing the data needs the durable record first (markIntent), and
// room anyway. Found by the leader-disk-full scenario.
func (a *Agent) setIntent(in *fsm.Intent) {
	a.updateOrKeep("the intent", func(p *Persisted) { p.Intent = in })
}

// updateOrKeep changes the state, in memory only if the state file cannot
// be written (a full disk): for records whose loss on a restart costs
// less than stopping the step that makes them.
func (a *Agent) updateOrKeep(what string, change func(*Persisted)) {
	if err := a.updateState(change); err != nil {
		a.log.Warn(what+" is kept in memory only (the state file could not be written)", "err", err)
		a.mu.Lock()
		change(&a.st)
		a.mu.Unlock()
	}
}

// Alive reports whether the loop completed a tick recently: the systemd
// watchdog is fed only then, so a wedged loop gets the agent restarted
// (PostgreSQL and Kine keep serving meanwhile).
func (a *Agent) Alive() bool {
	last := a.lastTickAt.Load()
	return a.acting.Load() || last != 0 && time.Since(time.Unix(0, last)) < time.Minute
}

// do submits an operator's or the peer's command to the loop and waits
// for the tick that handled it.
func (a *Agent) do(ctx context.Context, c fsm.Command) (cmdResult, error) {
	req := cmdReq{cmd: c, reply: make(chan cmdResult, 1)}
	select {
	case a.cmds <- req:
	case <-ctx.Done():
		return cmdResult{}, ctx.Err()
	}
	select {
	case r := <-req.reply:
		return r, nil
	case <-ctx.Done():
		return cmdResult{}, ctx.Err()
	}
}

// snapshot returns copies for status answers.
func (a *Agent) snapshot() (fsm.Machine, observed, Persisted) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.st
	st.Archives = append([]localapi.Archive(nil), a.st.Archives...)
	return a.m, a.last, st
}
