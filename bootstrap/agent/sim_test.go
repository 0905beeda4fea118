package agent

// A deterministic two-node simulation of the agents' decision loops (the
// world is in sim_world_test.go): scripted scenarios in testdata/sim, a
// crash after every effectful call of every reachable row of fsm.Table,
// and random fault schedules, all checked against four invariants after
// every round:
//
//	I1  at most one node's Kine serves writes from its own primary in any
//	    one term, unless a partition lay between the two (without a
//	    witness, a partition makes two writers by design: both sides lead
//	    the same term and the split is decided afterwards). I1b: never two
//	    serving nodes at once once both have been up and connected for more
//	    than 2*failure_threshold+2 rounds (a split must be stopped as soon
//	    as the nodes see each other).
//	I2  an acknowledged write is never missing from the live data (the
//	    leader's, checked each time the pair converges) unless it is in
//	    the archive of a node that lost a same-term split.
//	I3  both nodes powered, the link up, no fault and no pause for K
//	    rounds: exactly one leader (state leader, Kine local, PostgreSQL a
//	    synchronous primary) and one follower (state follower, standby
//	    streaming from the leader, Kine pointing at the leader).
//	I4  nothing waits for a human: a member that cannot see its peer (off,
//	    or the link down) for K rounds, and is not paused, serves writes.
//
// Runs:
//
//	go test ./bootstrap/agent -run 'TestSim'                  # all three
//	go test ./bootstrap/agent -run TestSimScripts -rewrite    # regenerate testdata/sim outputs
//	go test ./bootstrap/agent -run TestRandomSchedules -sim.schedules=10000
//	go test ./bootstrap/agent -run TestRandomSchedules -sim.seed=S -sim.v  # one schedule, with its trail

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/localapi"
)

var (
	simRewrite   = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/sim/*.txt")
	simSchedules = flag.Int("sim.schedules", 300, "random fault schedules TestRandomSchedules runs")
	simSeed      = flag.Uint64("sim.seed", 0, "run only this random schedule (its seed)")
	simFirstSeed = flag.Uint64("sim.first", 1, "seed of the first random schedule")
	simVerbose   = flag.Bool("sim.v", false, "print every schedule's commands and event trail")
	simK         = flag.Int("sim.k", 300, "rounds (of 500 ms) of quiet after which the pair must have converged (I3, I4)")
	simCrashRows = flag.Int("sim.rowfirings", 2, "TestEveryRowCrashAfterEachAction: firings per row to crash in")
)

// simBase is where the worlds keep their data directories: tmpfs when
// there is one (the agent fsyncs its state file).
func simBase(t testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "twonode-sim-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// ---------------------------------------------------------------- invariants

type simViolation struct {
	Inv, Key, Msg string
	Round         int
}

func (v simViolation) String() string { return fmt.Sprintf("%s round %d: %s", v.Inv, v.Round, v.Msg) }

type simInvariants struct {
	k, grace     int
	violations   []simViolation
	reported     map[string]bool
	cumPart      []int // partitioned rounds up to round i
	lastPart     int   // last round the link was partitioned (or one-way)
	conn         string
	lastConn     int // last round the nodes' connectivity (link, power) changed
	termServe    map[string]map[string]int
	quietStart   int
	wasConverged bool
	i3Reported   bool
	isoStart     map[string]int
	i4Reported   map[string]bool
	convergedIn  []int // rounds from the start of a quiet spell to convergence
}

func (v *simInvariants) init(w *simWorld) {
	v.k, v.grace = *simK, 2*w.nodes[0].cfg.Timers.FailureThreshold+2
	v.reported = map[string]bool{}
	v.cumPart = []int{0}
	v.termServe = map[string]map[string]int{}
	v.isoStart = map[string]int{}
	v.i4Reported = map[string]bool{}
}

// fault: something was injected; quiet spells and isolation start over.
func (v *simInvariants) fault(w *simWorld) {
	v.quietStart, v.i3Reported = 0, false
	v.wasConverged = false
	clear(v.isoStart)
	clear(v.i4Reported)
}

func (v *simInvariants) violate(w *simWorld, inv, key, format string, args ...any) {
	if v.reported[inv+"|"+key] {
		return
	}
	v.reported[inv+"|"+key] = true
	msg := fmt.Sprintf(format, args...) + " [" + w.brief() + "]"
	v.violations = append(v.violations, simViolation{Inv: inv, Key: key, Msg: msg, Round: w.round})
	w.eventf("VIOLATION %s: %s", inv, msg)
}

func (w *simWorld) serving(n *simNode) bool {
	return n.powered && n.kine == n.addr && n.pg.running && !n.pg.standby
}

func (w *simWorld) state(n *simNode) fsm.State {
	if n.agent == nil {
		return ""
	}
	m, _, _ := n.agent.snapshot()
	return m.State
}

func (w *simWorld) paused() bool {
	for _, n := range w.nodes {
		if w.persisted(n).PausedUntil.After(w.now) {
			return true
		}
	}
	return false
}

// leaderOf: the converged pair's leader, nil when the pair has not converged.
func (w *simWorld) leaderOf() *simNode {
	for _, l := range w.nodes {
		f := w.peerOf(l)
		if l.agent != nil && f.agent != nil && w.state(l) == fsm.Leader && w.state(f) == fsm.Follower &&
			l.kine == l.addr && f.kine == l.addr && l.pg.running && !l.pg.standby && l.pg.sync && w.streamingFrom(f, l) {
			return l
		}
	}
	return nil
}

// lostAcked: acknowledged writes missing from live's data; with exempt,
// not counting those archived by the loser of a same-term split. other:
// how many of the lost ones are in an archive written when the loser's
// term differed from the winner's.
func (w *simWorld) lostAcked(live *simNode, exempt bool) (lost []int, other int) {
	have := make(map[int]bool, len(live.pg.wal))
	for _, e := range live.pg.wal {
		have[e.ID] = true
	}
	var archived map[int]bool
	for _, wr := range w.writes {
		if !wr.Acked || have[wr.ID] {
			continue
		}
		if archived == nil {
			archived = map[int]bool{}
			for _, n := range w.nodes {
				ids, err := archivedWrites(n)
				if err != nil {
					w.inv.violate(w, "archive", n.name, "reading the archives: %v", err)
				}
				for id, same := range ids {
					archived[id] = archived[id] || same
				}
			}
		}
		same, in := archived[wr.ID]
		if exempt && same {
			continue
		}
		if in && !same {
			other++
		}
		lost = append(lost, wr.ID)
	}
	return lost, other
}

func (w *simWorld) describeWrites(ids []int) string {
	byID := map[int]simWrite{}
	for _, wr := range w.writes {
		byID[wr.ID] = wr
	}
	var parts []string
	for i, id := range ids {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("... %d more", len(ids)-4))
			break
		}
		wr := byID[id]
		parts = append(parts, fmt.Sprintf("write %d (rev %d, term %d, on %s via %s, round %d)", id, wr.Rev, wr.Term, wr.Writer, wr.Via, wr.Round))
	}
	return strings.Join(parts, ", ")
}

func (v *simInvariants) check(w *simWorld) {
	r := w.round
	part := !w.linkUp || w.blocked != ""
	c := v.cumPart[len(v.cumPart)-1]
	if part {
		c++
		v.lastPart = r
	}
	v.cumPart = append(v.cumPart, c) // index r
	if conn := fmt.Sprint(w.linkUp, w.blocked, w.nodes[0].powered, w.nodes[1].powered); conn != v.conn {
		v.conn, v.lastConn = conn, r
	}

	// I1: one writer per term.
	var serving []*simNode
	for _, n := range w.nodes {
		if !w.serving(n) {
			continue
		}
		serving = append(serving, n)
		// A term is (number, who began it): see Persisted.TermBy.
		term := fmt.Sprintf("%d/%s", w.persisted(n).Term, w.persisted(n).TermBy)
		m := v.termServe[term]
		if m == nil {
			m = map[string]int{}
			v.termServe[term] = m
		}
		if m[n.name] == 0 {
			m[n.name] = r
		}
		if len(m) == 2 {
			r1, r2 := min(m["a"], m["b"]), max(m["a"], m["b"])
			if v.cumPart[r2]-v.cumPart[r1-1] == 0 {
				v.violate(w, "I1", fmt.Sprint("term ", term), "term %s served by a (from round %d) and by b (from round %d), with no partition between",
					term, m["a"], m["b"])
			}
		}
	}
	if len(serving) == 2 && r-max(v.lastPart, v.lastConn) > v.grace {
		v.violate(w, "I1b", "two writers", "both nodes serve writes from their own primaries while both have been up and connected for %d rounds", r-max(v.lastPart, v.lastConn))
	}

	// I2, at the start of every converged spell.
	leader := w.leaderOf()
	if leader != nil && !v.wasConverged {
		if lost, other := w.lostAcked(leader, true); len(lost) > 0 {
			v.violate(w, "I2", fmt.Sprint(lost[0]), "%d acknowledged writes missing from the leader %s's data and not archived by a same-term split's loser (%d of them archived by a loser of another term): %s",
				len(lost), leader.name, other, w.describeWrites(lost))
		}
	}
	v.wasConverged = leader != nil

	// I3: quiet spells converge.
	quiet := !part
	for _, n := range w.nodes {
		quiet = quiet && n.powered && n.agent != nil
	}
	quiet = quiet && !w.paused()
	switch {
	case !quiet:
		v.quietStart, v.i3Reported = 0, false
	case v.quietStart == 0:
		v.quietStart = r
	}
	if quiet && leader != nil && v.quietStart > 0 && !v.i3Reported {
		v.convergedIn = append(v.convergedIn, r-v.quietStart)
		v.quietStart = -1 << 30 // converged in this spell: recorded once
	}
	if quiet && leader == nil && v.quietStart > 0 && r-v.quietStart >= v.k && !v.i3Reported {
		v.i3Reported = true
		v.violate(w, "I3", "not converged", "both nodes up, the link up and no fault for %d rounds, and the pair has not converged", r-v.quietStart)
	}
	if quiet && leader == nil && v.quietStart < 0 {
		v.quietStart = r // it converged and fell apart without a fault: count again
	}

	// I4: an isolated member serves.
	for _, n := range w.nodes {
		p := w.peerOf(n)
		st := w.persisted(n)
		iso := n.powered && (!p.powered || !w.linkUp) && st.Member && n.pg.data && !w.paused()
		if !iso {
			delete(v.isoStart, n.name)
			delete(v.i4Reported, n.name)
			continue
		}
		if v.isoStart[n.name] == 0 {
			v.isoStart[n.name] = r
		}
		if r-v.isoStart[n.name] >= v.k && !w.serving(n) && !v.i4Reported[n.name] {
			v.i4Reported[n.name] = true
			v.violate(w, "I4", n.name, "%s cannot see its peer for %d rounds and does not serve writes", n.name, r-v.isoStart[n.name])
		}
	}
}

// ---------------------------------------------------------------- status

func (w *simWorld) pgString(n *simNode) string {
	pg := n.pg
	switch {
	case !pg.data:
		return "none"
	case !pg.running:
		return "stopped"
	case pg.standby:
		if w.streamingFrom(n, w.peerOf(n)) {
			return "standby,streaming"
		}
		return "standby"
	case pg.sync:
		return "primary,sync"
	}
	return "primary"
}

func (w *simWorld) kineString(n *simNode) string {
	if t := w.byAddr(n.kine); t != nil {
		return t.name
	}
	return "stopped"
}

// brief is a one-line picture of the world, for violations and traces.
func (w *simWorld) brief() string {
	var parts []string
	for _, n := range w.nodes {
		st := w.persisted(n)
		s := string(w.state(n))
		switch {
		case !n.powered:
			s = "off"
		case n.agent == nil:
			s = "agent-down"
		}
		parts = append(parts, fmt.Sprintf("%s:%s t%d/%s pg=%s kine=%s rows=%d", n.name, s, st.Term, roleString(st.TermRole), w.pgString(n), w.kineString(n), n.pg.rows()))
	}
	link := "up"
	switch {
	case !w.linkUp:
		link = "down"
	case w.blocked != "":
		link = "one-way(" + w.blocked + " cannot connect)"
	}
	return strings.Join(parts, " ") + " link=" + link
}

func roleString(r fsm.Role) string {
	if r == fsm.RoleNone {
		return "none"
	}
	return string(r)
}

// status is the scripts' picture of the world. Row counts only with rows.
func (w *simWorld) status(rows bool) string {
	var b strings.Builder
	for _, n := range w.nodes {
		st := w.persisted(n)
		state := string(w.state(n))
		switch {
		case !n.powered:
			state = "(power off)"
		case n.agent == nil:
			state = "(agent down)"
		}
		fmt.Fprintf(&b, "%s: %-12s term=%d role=%-8s pg=%-17s kine=%-7s lost-splits=%d archives=%d", n.name, state, st.Term, roleString(st.TermRole),
			w.pgString(n), w.kineString(n), len(st.LostSplits), len(st.Archives))
		if rows {
			fmt.Fprintf(&b, " rows=%d", n.pg.rows())
		}
		b.WriteString("\n")
	}
	var live []*simNode
	for _, n := range w.nodes {
		if w.serving(n) {
			live = append(live, n)
		}
	}
	switch len(live) {
	case 0:
		b.WriteString("live: none\n")
	case 1:
		lost, _ := w.lostAcked(live[0], false)
		fmt.Fprintf(&b, "live: %s acked-lost=%d\n", live[0].name, len(lost))
	default:
		b.WriteString("live: a and b (two writers)\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// ---------------------------------------------------------------- commands

type simRunner struct {
	t      testing.TB
	w      *simWorld
	ctx    context.Context
	nViol  int // violations already printed
	nEvent int // events already looked at
}

func newSimRunner(t testing.TB, base string) *simRunner {
	w, err := newSimWorld(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &simRunner{t: t, w: w, ctx: context.Background()}
}

// news: what happened since the last command worth printing (crashes and
// violations), or "ok".
func (s *simRunner) news(extra ...string) string {
	var lines []string
	lines = append(lines, extra...)
	for _, e := range s.w.events[s.nEvent:] {
		if _, rest, ok := strings.Cut(e, " "); ok && strings.Contains(rest, ": agent crashed") {
			lines = append(lines, rest)
		}
	}
	s.nEvent = len(s.w.events)
	for _, v := range s.w.inv.violations[s.nViol:] {
		lines = append(lines, "violation "+v.Inv+": "+v.Msg)
	}
	s.nViol = len(s.w.inv.violations)
	if len(lines) == 0 {
		return "ok"
	}
	return strings.Join(lines, "\n")
}

func (s *simRunner) rounds(n int) {
	for range n {
		s.w.step(s.ctx)
	}
}

// converge runs until the pair has been converged for settle rounds, or
// until it cannot be expected to any more (I3 then fires).
func (s *simRunner) converge(settle int) bool {
	w := s.w
	ok := 0
	limit := w.round + 2**simK + 400
	for w.round < limit {
		w.step(s.ctx)
		if w.leaderOf() != nil {
			ok++
			if ok >= settle {
				return true
			}
		} else {
			ok = 0
		}
		if w.inv.i3Reported {
			return false
		}
	}
	return false
}

func simArgs(fields []string) (pos []string, kv map[string]string) {
	kv = map[string]string{}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		} else {
			pos = append(pos, f)
		}
	}
	return pos, kv
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

// run executes one command line and returns its output.
func (s *simRunner) run(line string) (string, error) {
	w := s.w
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return "", fmt.Errorf("empty command")
	}
	cmd := fields[0]
	pos, kv := simArgs(fields[1:])
	nodeArg := func() (*simNode, error) {
		if len(pos) == 0 || w.node(pos[0]) == nil {
			return nil, fmt.Errorf("%s: want a node (a or b)", cmd)
		}
		return w.node(pos[0]), nil
	}
	switch cmd {
	case "form", "converge":
		if s.converge(10) {
			if slices.Contains(pos, "anyleader") {
				return s.news("converged"), nil
			}
			return s.news("converged: leader " + w.leaderOf().name), nil
		}
		return s.news("NOT converged"), nil
	case "tick":
		n := 1
		if len(pos) > 0 {
			n = atoiOr(pos[0], 1)
		}
		start := len(w.events)
		s.rounds(n)
		if _, ok := kv["trace"]; ok || slices.Contains(pos, "trace") {
			return strings.Join(w.events[start:], "\n") + "\n" + s.news(), nil
		}
		return s.news(), nil
	case "restart-delay": // rounds before a crashed agent restarts (default 1)
		if len(pos) == 0 {
			return "", fmt.Errorf("restart-delay: want a number of rounds")
		}
		w.restart = max(atoiOr(pos[0], 1), 1)
		return "ok", nil
	case "clients":
		w.clients = len(pos) == 0 || pos[0] != "off"
		return "ok", nil
	case "write":
		n := 1
		if len(pos) > 0 {
			n = atoiOr(pos[0], 1)
		}
		for range n {
			for _, nd := range w.nodes {
				w.clientWrite(nd)
			}
		}
		return s.news(), nil
	case "crash-agent":
		n, err := nodeArg()
		if err != nil {
			return "", err
		}
		if _, ok := kv["now"]; ok || slices.Contains(pos, "now") {
			if n.agent == nil {
				return "", fmt.Errorf("crash-agent %s: no agent runs", n.name)
			}
			w.kill(n, "(killed between ticks)")
			return s.news(), nil
		}
		plan := &crashPlan{nth: 1}
		spec := ""
		if v, ok := kv["after"]; ok {
			plan.after, spec = true, v
		} else if v, ok := kv["before"]; ok {
			spec = v
		} else {
			return "", fmt.Errorf("crash-agent: want now, after=CALL[#N] or before=CALL[#N]")
		}
		if name, nth, ok := strings.Cut(spec, "#"); ok {
			spec, plan.nth = name, atoiOr(nth, 1)
		}
		if k, err := strconv.Atoi(spec); err == nil {
			plan.at = n.calls + k // the k-th effectful call from now
		} else {
			plan.call = spec
		}
		n.crash = plan
		return "ok", nil
	case "disarm":
		for _, n := range w.nodes {
			n.crash = nil
		}
		return "ok", nil
	case "power-off":
		n, err := nodeArg()
		if err != nil {
			return "", err
		}
		if n.powered {
			if _, ok := kv["inflight"]; ok || slices.Contains(pos, "inflight") {
				w.inflight(n)
			}
			w.powerOff(n)
		}
		return s.news(), nil
	case "power-on":
		n, err := nodeArg()
		if err != nil {
			return "", err
		}
		if err := w.powerOn(n); err != nil {
			return "", err
		}
		return s.news(), nil
	case "partition":
		if len(pos) > 0 { // partition X: only connections X opens fail
			n, err := nodeArg()
			if err != nil {
				return "", err
			}
			w.setLink(true, n.name)
		} else {
			w.setLink(false, "")
		}
		return "ok", nil
	case "heal":
		if !w.linkUp || w.blocked != "" {
			w.setLink(true, "")
		}
		return "ok", nil
	case "flap":
		n, down, up := 1, atoiOr(kv["down"], 4), atoiOr(kv["up"], 2)
		if len(pos) > 0 {
			n = atoiOr(pos[0], 1)
		}
		for range n {
			w.setLink(false, "")
			s.rounds(down)
			w.setLink(true, "")
			s.rounds(up)
		}
		return s.news(), nil
	case "pause", "resume", "switchover", "promote":
		n, err := nodeArg()
		if err != nil {
			return "", err
		}
		if n.agent == nil {
			return "", fmt.Errorf("%s %s: no agent runs", cmd, n.name)
		}
		_, lh := n.agent.Handlers()
		var msg string
		var herr error
		switch cmd {
		case "pause":
			d := time.Duration(0)
			if v, ok := kv["for"]; ok {
				if d, err = time.ParseDuration(v); err != nil {
					return "", err
				}
			}
			msg, herr = lh.Pause(s.ctx, d)
		case "resume":
			msg, herr = lh.Resume(s.ctx)
		case "switchover":
			w.withLoop(n, func(ctx context.Context) { msg, herr = lh.Switchover(ctx) })
		case "promote":
			_, force := kv["force"]
			force = force || slices.Contains(pos, "force")
			w.withLoop(n, func(ctx context.Context) { msg, herr = lh.Promote(ctx, force) })
		}
		w.inv.fault(w)
		w.eventf("%s %s: %q %v", cmd, n.name, msg, herr)
		if errors.Is(herr, localapi.ErrPartial) {
			return s.news(cmd + " " + n.name + " (on this node only): " + simDropTimes(msg)), nil
		}
		if herr != nil {
			return s.news(cmd + " " + n.name + ": error: " + herr.Error()), nil
		}
		return s.news(cmd + " " + n.name + ": " + simDropTimes(msg)), nil
	case "status":
		out := w.status(slices.Contains(pos, "rows"))
		if slices.Contains(pos, "noterms") {
			out = simNoTerms.ReplaceAllString(out, "")
		}
		return s.news(out), nil
	case "summary": // role- and term-agnostic: for scripts whose leader a fix may change
		st := []Persisted{w.persisted(w.nodes[0]), w.persisted(w.nodes[1])}
		conv := "no"
		var lost []int
		if l := w.leaderOf(); l != nil {
			conv = "yes"
			lost, _ = w.lostAcked(l, false)
		}
		return s.news(fmt.Sprintf("converged=%s equal-terms=%v lost-splits=%d acked-lost=%d", conv, st[0].Term == st[1].Term,
			len(st[0].LostSplits)+len(st[1].LostSplits), len(lost))), nil
	case "assert-acked-live":
		var live []*simNode
		for _, n := range w.nodes {
			if w.serving(n) {
				live = append(live, n)
			}
		}
		if len(live) != 1 {
			return s.news(fmt.Sprintf("acked: %d nodes serve, want one", len(live))), nil
		}
		lost, _ := w.lostAcked(live[0], false)
		if len(lost) > 0 {
			return s.news(fmt.Sprintf("acked: %d acknowledged writes missing from %s's data: %s", len(lost), live[0].name, w.describeWrites(lost))), nil
		}
		return s.news("acked: all in " + live[0].name + "'s data"), nil
	case "events":
		return strings.Join(w.events, "\n"), nil
	}
	return "", fmt.Errorf("unknown command %q", cmd)
}

var simNoTerms = regexp.MustCompile(` term=\d+`)

// simDropTimes removes the clock from handler messages (pause until ...).
func simDropTimes(s string) string {
	if i := strings.Index(s, " until "); i >= 0 {
		if j := strings.Index(s[i:], " UTC"); j >= 0 {
			return s[:i] + s[i+j+4:]
		}
	}
	return s
}

// ---------------------------------------------------------------- scripts

// simCase is one command of a script and its expected output, in the style
// of cockroachdb/datadriven: the command line, "----", the output, a blank line.
type simCase struct {
	cmd      string
	line     int // of the command, 1-based
	out0     int // first output line index (0-based) in the file
	out1     int // one past the last
	expected string
}

func parseSimScript(path string) ([]string, []simCase, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var cases []simCase
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		c := simCase{cmd: l, line: i + 1}
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "----" {
			return nil, nil, fmt.Errorf("%s:%d: %q is not followed by ----", path, i+1, l)
		}
		j := i + 2
		for j < len(lines) && strings.TrimSpace(lines[j]) != "" {
			j++
		}
		c.out0, c.out1 = i+2, j
		c.expected = strings.Join(lines[i+2:j], "\n")
		cases = append(cases, c)
		i = j
	}
	return lines, cases, nil
}

func simScripts(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join("testdata", "sim", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata/sim: %v", err)
	}
	sort.Strings(files)
	return files
}

// TestSimScripts runs testdata/sim/*.txt and compares every command's
// output; -rewrite writes the actual outputs back.
func TestSimScripts(t *testing.T) {
	for _, path := range simScripts(t) {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			lines, cases, err := parseSimScript(path)
			if err != nil {
				t.Fatal(err)
			}
			s := newSimRunner(t, simBase(t))
			outs := make([]string, len(cases))
			failed := false
			for i, c := range cases {
				out, err := s.run(c.cmd)
				if err != nil {
					t.Fatalf("%s:%d: %s: %v", path, c.line, c.cmd, err)
				}
				outs[i] = out
				if out != c.expected && !*simRewrite {
					failed = true
					t.Errorf("%s:%d: %s\n--- want\n%s\n--- got\n%s", path, c.line, c.cmd, c.expected, out)
				}
			}
			if failed {
				t.Logf("event trail:\n%s", strings.Join(s.w.events, "\n"))
			}
			if *simRewrite {
				var b strings.Builder
				last := 0
				for i, c := range cases {
					for _, l := range lines[last:c.out0] {
						b.WriteString(l + "\n")
					}
					b.WriteString(outs[i] + "\n")
					last = c.out1
				}
				for _, l := range lines[last:] {
					b.WriteString(l + "\n")
				}
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// simCommands is a script's commands without the expected outputs.
func simCommands(t testing.TB, path string) []string {
	_, cases, err := parseSimScript(path)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, c := range cases {
		cmds = append(cmds, c.cmd)
	}
	return cmds
}

// simFinish: every fault undone, then the pair must converge.
var simFinish = []string{"heal", "disarm", "power-on a", "power-on b", "converge"}

// runSim runs commands in a fresh world (record: keep firings and call
// names); plan, if set, is installed on its node before the first command.
func runSim(t testing.TB, base string, cmds []string, record bool, plan func(w *simWorld)) (*simWorld, error) {
	s := newSimRunner(t, base)
	s.w.record = record
	if plan != nil {
		plan(s.w)
	}
	for _, c := range cmds {
		if _, err := s.run(c); err != nil {
			return s.w, fmt.Errorf("%s: %w", c, err)
		}
	}
	return s.w, nil
}

// ---------------------------------------------------------------- every row

// simRowScenarios are the schedules whose rows TestEveryRowCrashAfterEachAction
// crashes in: every script, and a few more reaching other rows.
func simRowScenarios(t testing.TB) map[string][]string {
	sc := map[string][]string{}
	for _, path := range simScripts(t) {
		sc[strings.TrimSuffix(filepath.Base(path), ".txt")] = simCommands(t, path)
	}
	sc["x-follower-power-cycle"] = []string{"form", "power-off b", "tick 20", "power-on b", "converge"}
	sc["x-leader-agent-killed"] = []string{"form", "crash-agent a now", "tick 30", "converge"}
	sc["x-both-off-b-first"] = []string{"form", "power-off a", "tick 2", "power-off b", "tick 2", "power-on b", "tick 100", "power-on a", "converge"}
	sc["x-both-off-a-first"] = []string{"form", "power-off b", "tick 2", "power-off a", "tick 2", "power-on a", "tick 100", "power-on b", "converge"}
	sc["x-one-way"] = []string{"form", "partition b", "tick 30", "heal", "converge", "partition a", "tick 30", "heal", "converge"}
	sc["x-follower-reboots-leader-agent-down"] = []string{"form", "restart-delay 30", "crash-agent a now", "power-off b", "tick 1", "power-on b", "tick 40", "converge"}
	sc["x-leader-goes-alone-follower-sees-it"] = []string{"form", "partition b", "tick 12", "heal", "converge"}
	sc["x-operator-promote"] = []string{"form", "power-off a", "tick 1", "promote b", "tick 10", "power-on a", "converge"}
	return sc
}

// TestEveryRowCrashAfterEachAction: for each row of fsm.Table that the
// scenarios reach, in its first -sim.rowfirings firings, the agent that
// runs it crashes before its first effectful call and after each one
// (the state file is written between calls, so "after call i" is also
// "before the save that follows it"); it restarts on the same data, the
// faults are undone and the pair must converge with every invariant kept.
func TestEveryRowCrashAfterEachAction(t *testing.T) {
	start := time.Now()
	sc := simRowScenarios(t)
	names := make([]string, 0, len(sc))
	for n := range sc {
		names = append(names, n)
	}
	sort.Strings(names)
	type target struct {
		scenario string
		f        simFiring
		calls    []string
	}
	var targets []target
	perRow := map[string]int{}
	fired := map[string]bool{}
	baseViol := map[string][]simViolation{}
	for _, name := range names {
		cmds := append(slices.Clone(sc[name]), simFinish...)
		w, err := runSim(t, simBase(t), cmds, true, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		baseViol[name] = w.inv.violations
		for _, f := range w.firings {
			fired[f.key] = true
			if f.c1 == f.c0 || perRow[f.key] >= *simCrashRows {
				continue
			}
			perRow[f.key]++
			calls := w.node(f.node).callLog[f.c0:f.c1]
			targets = append(targets, target{scenario: name, f: f, calls: slices.Clone(calls)})
		}
	}
	var unreached, noCalls []string
	for _, r := range fsm.Table {
		k := rowKey(r.From, r.To, r.Reason)
		switch {
		case !fired[k]:
			unreached = append(unreached, fmt.Sprintf("%s → %s: %s", r.From, r.To, r.Reason))
		case perRow[k] == 0:
			noCalls = append(noCalls, fmt.Sprintf("%s → %s: %s", r.From, r.To, r.Reason))
		}
	}
	t.Logf("rows of fsm.Table: %d; crashed in: %d; fired without an effectful call (nothing to crash): %d; never reached by the scenarios: %d\n  %s",
		len(fsm.Table), len(perRow), len(noCalls), len(unreached), strings.Join(unreached, "\n  "))
	for name, vs := range baseViol {
		for _, v := range vs {
			t.Errorf("scenario %s without any crash: %s", name, v)
		}
	}

	type failure struct {
		where string
		v     simViolation
	}
	var failures []failure
	runs := 0
	for _, tg := range targets {
		cmds := append(slices.Clone(sc[tg.scenario]), simFinish...)
		for i := 0; i <= len(tg.calls); i++ {
			// i == 0: before the first call; i > 0: after call i.
			at, after := tg.f.c0+max(i, 1), i > 0
			where := fmt.Sprintf("%s: %s [%s] crash %s %s (call %d of node %s; actions %s)",
				tg.scenario, strings.ReplaceAll(tg.f.key, "|", " | "), tg.f.node, map[bool]string{true: "after", false: "before"}[after],
				tg.calls[max(i, 1)-1], at, tg.f.node, strings.Join(tg.f.actions, ","))
			base := simBase(t)
			w, err := runSim(t, base, cmds, false, func(w *simWorld) {
				w.node(tg.f.node).crash = &crashPlan{at: at, after: after}
			})
			runs++
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			fired := w.node(tg.f.node).crash == nil
			if !fired {
				failures = append(failures, failure{where, simViolation{Inv: "sim", Msg: "the planned crash did not happen (the run diverged from the recording)"}})
			}
			known := map[string]bool{}
			for _, v := range baseViol[tg.scenario] {
				known[v.Inv+v.Key] = true
			}
			for _, v := range w.inv.violations {
				if !known[v.Inv+v.Key] {
					failures = append(failures, failure{where, v})
				}
			}
			os.RemoveAll(base)
		}
	}
	byInv := map[string]int{}
	for _, f := range failures {
		byInv[f.v.Inv]++
	}
	t.Logf("%d rows reached, %d crash points run in %s; violations by invariant: %v", len(perRow), runs, time.Since(start).Round(time.Millisecond), byInv)
	shown := map[string]int{}
	for _, f := range failures {
		k := f.v.Inv + "|" + strings.SplitN(f.where, " crash ", 2)[0]
		shown[k]++
		if shown[k] > 2 {
			continue
		}
		t.Errorf("%s\n    %s", f.where, f.v)
	}
}

// ---------------------------------------------------------------- random

// simKeepEvents drops the events of a schedule that violated nothing
// (memory: thousands of worlds are kept until reported in order).
func simKeepEvents(w *simWorld) []string {
	if len(w.inv.violations) == 0 {
		return nil
	}
	return w.events
}

// simTrail is the events up to v's (at most n of them), and the few after.
func simTrail(events []string, v simViolation, n int) []string {
	at := len(events)
	for i, e := range events {
		if strings.Contains(e, "VIOLATION "+v.Inv+": "+v.Msg) {
			at = i + 1
			break
		}
	}
	out := slices.Clone(events[max(0, at-n):at])
	if rest := events[at:]; len(rest) > 0 {
		out = append(out, fmt.Sprintf("... and %d events after it, the last: %s", len(rest), rest[len(rest)-1]))
	}
	return out
}

// simSchedule draws a random fault schedule: formation, 4-10 faults with
// rounds between them, then every fault undone and convergence.
func simSchedule(seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 0x7770_6e6f_6465))
	node := func() string { return []string{"a", "b"}[r.IntN(2)] }
	calls := []string{"promote", "fence", "kine-local", "kine-stop", "kine-peer", "rewind", "start-standby", "start-primary",
		"archive", "stop", "sync-on", "sync-off", "handover", "max-revision", "record-term", "base-backup"}
	cmds := []string{"form"}
	for range 4 + r.IntN(7) {
		switch k := r.IntN(100); {
		case k < 18:
			when := []string{"after", "before"}[r.IntN(2)]
			if r.IntN(2) == 0 {
				cmds = append(cmds, fmt.Sprintf("crash-agent %s %s=%d", node(), when, 1+r.IntN(6)))
			} else {
				cmds = append(cmds, fmt.Sprintf("crash-agent %s %s=%s", node(), when, calls[r.IntN(len(calls))]))
			}
		case k < 26:
			cmds = append(cmds, fmt.Sprintf("crash-agent %s now", node()))
		case k < 44:
			n := node()
			d := 1 + r.IntN(60)
			if r.IntN(10) == 0 {
				d = *simK + 20 // long enough for I4
			}
			cmds = append(cmds, "power-off "+n+[]string{"", " inflight"}[r.IntN(2)], fmt.Sprintf("tick %d", d), "power-on "+n)
		case k < 52:
			first := node()
			second := map[string]string{"a": "b", "b": "a"}[first]
			cmds = append(cmds, "power-off "+first, fmt.Sprintf("tick %d", r.IntN(20)), "power-off "+second,
				fmt.Sprintf("tick %d", 1+r.IntN(5)), "power-on "+[]string{first, second}[r.IntN(2)], fmt.Sprintf("tick %d", r.IntN(120)),
				"power-on a", "power-on b")
		case k < 66:
			d := 1 + r.IntN(60)
			if r.IntN(10) == 0 {
				d = *simK + 20
			}
			cmds = append(cmds, "partition", fmt.Sprintf("tick %d", d), "heal")
		case k < 72:
			cmds = append(cmds, "partition "+node(), fmt.Sprintf("tick %d", 1+r.IntN(40)), "heal")
		case k < 80:
			cmds = append(cmds, fmt.Sprintf("flap %d down=%d up=%d", 2+r.IntN(6), 1+r.IntN(8), 1+r.IntN(6)))
		case k < 88:
			cmds = append(cmds, "switchover "+node())
		case k < 92:
			cmds = append(cmds, "promote "+node())
		case k < 96:
			cmds = append(cmds, fmt.Sprintf("pause %s for=%ds", node(), 5+r.IntN(55)))
		default:
			cmds = append(cmds, "clients "+[]string{"on", "off"}[r.IntN(2)])
		}
		cmds = append(cmds, fmt.Sprintf("tick %d", r.IntN(40)))
	}
	return append(append(cmds, "clients on"), simFinish...)
}

// runSchedule runs one schedule; commands that cannot apply (a switchover
// on a node whose agent is down) are skipped.
func runSchedule(t testing.TB, base string, cmds []string) *simWorld {
	s := newSimRunner(t, base)
	for _, c := range cmds {
		if _, err := s.run(c); err != nil && !strings.Contains(err.Error(), "no agent runs") {
			s.w.inv.violate(s.w, "script", c, "%s: %v", c, err) // t.Fatal is not for workers
		}
	}
	return s.w
}

// TestRandomSchedules runs -sim.schedules random fault schedules (seeds
// -sim.first onwards), or only -sim.seed. A failure prints the seed, the
// schedule (as a script) and the end of its event trail.
func TestRandomSchedules(t *testing.T) {
	start := time.Now()
	first, n := *simFirstSeed, *simSchedules
	if *simSeed != 0 {
		first, n = *simSeed, 1
	}
	base := simBase(t)
	byInv := map[string]int{}
	firstSeed := map[string]uint64{}
	failedSeeds := 0
	rounds, maxConv := 0, 0
	// Schedules are independent worlds: run them on every core, report
	// in seed order.
	type result struct {
		cmds []string
		w    *simWorld
	}
	results := make([]chan result, n)
	for i := range results {
		results[i] = make(chan result, 1)
	}
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range max(1, runtime.GOMAXPROCS(0)) {
		go func() {
			for i := range next {
				seed := first + uint64(i)
				cmds := simSchedule(seed)
				dir := filepath.Join(base, strconv.FormatUint(seed, 10))
				w := runSchedule(t, dir, cmds)
				os.RemoveAll(dir)
				if !*simVerbose {
					w.events = simKeepEvents(w)
				}
				results[i] <- result{cmds, w}
			}
		}()
	}
	for i := range n {
		seed := first + uint64(i)
		res := <-results[i]
		results[i] = nil
		cmds, w := res.cmds, res.w
		rounds += w.round
		for _, c := range w.inv.convergedIn {
			maxConv = max(maxConv, c)
		}
		if *simVerbose {
			t.Logf("seed %d:\n  %s\nevents:\n%s", seed, strings.Join(cmds, "\n  "), strings.Join(w.events, "\n"))
		}
		if len(w.inv.violations) == 0 {
			continue
		}
		failedSeeds++
		invs := map[string]bool{}
		for _, v := range w.inv.violations {
			invs[v.Inv] = true
		}
		for _, inv := range slices.Sorted(maps.Keys(invs)) {
			byInv[inv]++
			if _, ok := firstSeed[inv]; ok {
				continue
			}
			firstSeed[inv] = seed
			var v simViolation
			for _, x := range w.inv.violations {
				if x.Inv == inv {
					v = x
					break
				}
			}
			t.Errorf("seed %d (reproduce: go test ./bootstrap/agent -run TestRandomSchedules -sim.seed=%d -sim.v): %s\nschedule:\n  %s\nevents up to it:\n  %s",
				seed, seed, v, strings.Join(cmds, "\n  "), strings.Join(simTrail(w.events, v, 50), "\n  "))
		}
	}
	t.Logf("%d schedules (seeds %d..%d), %d rounds, in %s; %d schedules violated an invariant, by invariant %v (first seeds %v); slowest convergence %d rounds",
		n, first, first+uint64(n)-1, rounds, time.Since(start).Round(time.Millisecond), failedSeeds, byInv, firstSeed, maxConv)
}
