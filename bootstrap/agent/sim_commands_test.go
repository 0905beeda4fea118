package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/localapi"
)

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
		if _, rest, ok := strings.Cut(e, " "); ok && (strings.Contains(rest, ": agent crashed") ||
			strings.Contains(rest, "watchdog:") || strings.Contains(rest, "lease expired")) {
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
	if out, ok, err := s.witnessCommand(cmd, pos); ok {
		return out, err
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
			n.crash, n.diskFull = nil, false
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
	case "replace": // replace a: a powered-off node becomes a new, empty machine of the same name
		n, err := nodeArg()
		if err != nil {
			return "", err
		}
		if n.powered {
			return "", fmt.Errorf("replace %s: power it off first", n.name)
		}
		n.pg = simPG{}
		if err := os.RemoveAll(n.cfg.DataDir); err != nil {
			return "", err
		}
		w.eventf("%s: replaced by an empty machine", n.name)
		return s.news(), nil
	case "kill-postgres": // PostgreSQL alone dies (killed, crashed); the agent and Kine go on
		n, err := nodeArg()
		if err != nil {
			return "", err
		}
		if n.powered && n.pg.running {
			n.pg.running, n.pg.dirty = false, true
			w.eventf("%s: postgres killed", n.name)
			w.inv.fault(w)
		}
		return s.news(), nil
	case "kill-kine": // Kine alone dies (killed, crashed); the agent and PostgreSQL go on
		n, err := nodeArg()
		if err != nil {
			return "", err
		}
		if n.powered && n.kine != "" && !n.kineDead {
			n.kineDead = true // the agent's kine.Process restarts it (Ensure)
			w.eventf("%s: kine killed", n.name)
			w.inv.fault(w)
		}
		return s.news(), nil
	case "disk-full": // disk-full a on|off: the data filesystem fills up, or is freed
		n, err := nodeArg()
		if err != nil {
			return "", err
		}
		n.diskFull = slices.Contains(pos, "on")
		w.eventf("%s: disk full %v", n.name, n.diskFull)
		w.inv.fault(w)
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
