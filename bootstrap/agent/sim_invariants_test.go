package agent

import (
	"fmt"
	"strings"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

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
	dualAddr     int   // consecutive rounds with the address on both nodes, not both acknowledging
	addrAbsent   int   // consecutive converged rounds with the address on no node
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

// addrHolders names the nodes that hold the pair's address.
func (w *simWorld) addrHolders() string {
	var held []string
	for _, n := range w.nodes {
		if w.holdsAddr(n) {
			held = append(held, n.name)
		}
	}
	if len(held) == 0 {
		return "no node"
	}
	return strings.Join(held, " and ")
}

// holdsAddr: the pair's address is on n's interface: put there, and
// renewed within its lifetime.
func (w *simWorld) holdsAddr(n *simNode) bool { return n.addrHeld && w.now.Before(n.addrUntil) }

func (w *simWorld) serving(n *simNode) bool {
	return n.powered && n.kine == n.addr && !n.kineDead && n.pg.running && !n.pg.standby
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
// With a witness, a pair whose witness records a newer term than its
// leader's has not: that leader fences itself at its next read (seed 8090
// of the witness schedules: the follower claimed a term, its agent died
// before it acted on it, and it streamed again from the old leader).
func (w *simWorld) leaderOf() *simNode {
	for _, l := range w.nodes {
		f := w.peerOf(l)
		if l.agent != nil && f.agent != nil && w.state(l) == fsm.Leader && w.state(f) == fsm.Follower &&
			l.kine == l.addr && f.kine == l.addr && !l.kineDead && !f.kineDead && l.pg.running && !l.pg.standby && l.pg.sync && w.streamingFrom(f, l) &&
			(w.wit == nil || w.wit.term.Term <= w.persisted(l).Term) {
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
		if exempt && in && w.wit != nil && w.wit.leaseLost[fmt.Sprintf("%d/%s", wr.Term, wr.Writer)] {
			continue // its leader alone was cut off from the witness and the peer: see I2
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
	// I7: the pair's address is on a node only while that node's Kine
	// serves its own database, so on both only while both do (a split).
	for _, n := range w.nodes {
		if w.holdsAddr(n) && n.kine != n.addr {
			v.violate(w, "I7", n.name, "%s holds the pair's address while its Kine writes to %q", n.name, n.kine)
		}
	}
	// I7c: on both nodes only while both acknowledge writes on their own
	// (a split): never while one of them is a synchronous leader waiting
	// for a follower that left, or an agent that stopped (its address
	// lapses by its lifetime). After a round's grace: a leader sets it
	// aside one probe before the detection window ends, at its own pace.
	a, b := w.nodes[0], w.nodes[1]
	if w.holdsAddr(a) && w.holdsAddr(b) && !(w.acking(a) && w.acking(b)) {
		v.dualAddr++
		if v.dualAddr > 1 {
			v.violate(w, "I7c", "address on both", "the pair's address is on both nodes for %d rounds while %s acknowledges writes (states %s and %s)",
				v.dualAddr, map[bool]string{true: "only one node", false: "neither node"}[w.acking(a) || w.acking(b)], w.state(a), w.state(b))
		}
	} else {
		v.dualAddr = 0
	}
	if w.wit != nil && w.wit.policy == "wait" && w.acking(w.nodes[0]) && w.acking(w.nodes[1]) {
		v.violate(w, "I1w", "two writers", "with a witness, both nodes acknowledge writes at once")
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
	// I7b: a converged pair's address is on its leader, and only there.
	// After a detection window's grace for the leader: one that set its
	// address aside while its follower was quiet takes it back once the
	// follower has looked healthy for a whole window and says it follows
	// (fsm.Machine.HoldsAddress), or, its agent out of reach, for longer
	// than replication's sign of life counts (seed 1750); and the follower
	// may stream again in the round before (seed 8090 of the witness
	// schedules).
	switch {
	case leader == nil || w.holdsAddr(leader):
		v.addrAbsent = 0
	default:
		v.addrAbsent++
	}
	if leader != nil && (v.addrAbsent > addrGrace(leader) || w.holdsAddr(w.peerOf(leader))) {
		v.violate(w, "I7b", leader.name, "the pair converged on leader %s, and its address is on %s (for %d rounds)", leader.name, w.addrHolders(), v.addrAbsent)
	}

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

	if w.wit != nil {
		return // with a witness a node may wait for its peer by design: I3 checks the pair comes back
	}
	// I4: an isolated member serves, unless it has conceded to its peer
	// (a lost split, a hand-over: fsm.Intent.Discards) and not finished
	// copying: its data may be half-rewound, and is older than the peer's
	// in any case, so serving it would only make writes that lose.
	for _, n := range w.nodes {
		p := w.peerOf(n)
		st := w.persisted(n)
		conceded := st.Intent != nil && st.Intent.Discards && !st.Intent.Copied
		iso := n.powered && (!p.powered || !w.linkUp) && st.Member && n.pg.data && !w.paused() && !conceded
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
	if n.kineDead {
		return "dead"
	}
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

// addrGrace is how many rounds a converged pair's leader may be without
// its address: the longest run of good probes it may need to take a
// set-aside one back, and a round.
func addrGrace(leader *simNode) int {
	t := leader.cfg.Timers
	return max(t.FailureThreshold, ticks(heardFor(leader.cfg), t.ProbeInterval)+1) + 2
}
