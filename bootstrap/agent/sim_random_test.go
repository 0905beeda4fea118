package agent

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

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
	sc["x-postgres-killed-on-leader"] = []string{"form", "kill-postgres a", "tick 20", "converge"}
	sc["x-postgres-killed-on-follower"] = []string{"form", "kill-postgres b", "tick 20", "converge"}
	sc["x-postgres-killed-alone"] = []string{"form", "power-off b", "tick 10", "kill-postgres a", "tick 20", "power-on b", "converge"}
	sc["x-leader-replaced-while-both-off"] = []string{"form", "power-off a", "tick 2", "power-off b", "tick 2", "replace a", "power-on b", "tick 1", "power-on a", "converge"}
	sc["x-leader-disk-full"] = []string{"form", "disk-full a on", "tick 10", "disk-full a off", "converge"}
	// Random schedule 3022: a link up for one instant lets the follower
	// stream the alone leader's newest term record unseen; it then
	// promotes one term higher, and the leader meets a newer term.
	sc["x-link-up-for-an-instant"] = []string{"form", "switchover b", "tick 26", "power-off b", "tick 320", "power-on b", "tick 26",
		"partition b", "tick 33", "heal", "tick 2", "promote b", "tick 18", "partition a", "tick 5", "heal", "tick 0", "partition", "tick 39", "heal", "converge"}
	sc["x-kine-killed-on-leader"] = []string{"form", "kill-kine a", "tick 5", "converge"}
	sc["x-operator-promotes-a-starting-node"] = []string{"form", "power-off a", "tick 1", "power-off b", "tick 1", "power-on b", "promote b", "tick 5", "power-on a", "converge"}
	// The old leader rewound to follow and died before it started as a
	// standby (the second start-standby: the rewind starts one of its own):
	// its copy is done (Intent.Copied), so it follows on restart.
	sc["x-rewound-then-killed"] = []string{"form", "power-off a", "tick 20", "power-on a", "crash-agent a before=start-standby#2", "tick 30", "converge"}
	sc["x-joining-postgres-killed"] = []string{"form", "power-off b", "tick 10", "power-on b", "tick 1", "partition", "kill-postgres b", "tick 5", "heal", "converge"}
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
	// Rows no scenario reaches are looked for in random schedules that
	// keep every invariant: the first that runs such a row with an
	// effectful call becomes a scenario too.
	want := map[string]bool{}
	for _, r := range fsm.Table {
		if k := rowKey(r.From, r.To, r.Reason); !fired[k] {
			want[k] = true
		}
	}
	type gen struct {
		name     string
		schedule func(uint64) []string
	}
	for i := uint64(0); i < 2**simRowSeeds && len(want) > 0; i++ {
		// Plain and witness schedules in turn: the witness's rows are
		// reached only with one.
		g := []gen{{"seed", simSchedule}, {"witness-seed", witnessSchedule}}[i%2]
		seed := 1 + i/2
		cmds := g.schedule(seed)
		w, err := runSim(t, simBase(t), cmds, true, nil)
		if err != nil || len(w.inv.violations) > 0 {
			continue
		}
		name := fmt.Sprintf("%s-%d", g.name, seed)
		for _, f := range w.firings {
			if !want[f.key] {
				continue
			}
			fired[f.key] = true
			if f.c1 == f.c0 {
				continue // fired, with nothing to crash in
			}
			if _, ok := sc[name]; !ok {
				sc[name] = cmds[:len(cmds)-len(simFinish)]
				baseViol[name] = nil
			}
			fired[f.key] = true
			delete(want, f.key)
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
		case k < 95:
			cmds = append(cmds, fmt.Sprintf("pause %s for=%ds", node(), 5+r.IntN(55)))
		case k < 96:
			cmds = append(cmds, "kill-postgres "+node())
		case k < 97:
			cmds = append(cmds, "kill-kine "+node())
		case k < 98:
			n := node()
			cmds = append(cmds, "disk-full "+n+" on", fmt.Sprintf("tick %d", 1+r.IntN(30)), "disk-full "+n+" off")
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
func TestRandomSchedules(t *testing.T) { runRandomSchedules(t, "TestRandomSchedules", simSchedule) }

// TestRandomSchedulesWithWitness runs the same schedules with a witness
// (policy wait), its own faults added: down, or cut from one node.
func TestRandomSchedulesWithWitness(t *testing.T) {
	runRandomSchedules(t, "TestRandomSchedulesWithWitness", witnessSchedule)
}

// witnessSchedule is simSchedule(seed) with a witness and its faults.
func witnessSchedule(seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 0x77))
	base := simSchedule(seed)
	out := []string{"witness wait"}
	for i, c := range base {
		out = append(out, c)
		if i == 0 || i >= len(base)-len(simFinish) || r.IntN(4) != 0 {
			continue
		}
		switch r.IntN(3) {
		case 0:
			out = append(out, "witness-down", fmt.Sprintf("tick %d", 1+r.IntN(40)), "witness-up")
		case 1:
			out = append(out, "witness-cut "+[]string{"a", "b"}[r.IntN(2)], fmt.Sprintf("tick %d", 1+r.IntN(60)), "witness-heal")
		default:
			out = append(out, "witness-cut "+[]string{"a", "b"}[r.IntN(2)])
		}
	}
	n := len(out) - len(simFinish)
	return append(out[:n:n], append([]string{"witness-up", "witness-heal"}, simFinish...)...)
}

func runRandomSchedules(t *testing.T, name string, schedule func(uint64) []string) {
	start := time.Now()
	first, n := *simFirstSeed, *simSchedules
	if *simSeed != 0 {
		first, n = *simSeed, 1
	}
	base := simBase(t)
	byInv := map[string]int{}
	firstSeed := map[string]uint64{}
	failedSeeds := 0
	var failed []uint64
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
				cmds := schedule(seed)
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
		failed = append(failed, seed)
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
			t.Errorf("seed %d (reproduce: go test ./bootstrap/agent -run '%s$' -sim.seed=%d -sim.v): %s\nschedule:\n  %s\nevents up to it:\n  %s",
				seed, name, seed, v, strings.Join(cmds, "\n  "), strings.Join(simTrail(w.events, v, 50), "\n  "))
		}
	}
	t.Logf("%d schedules (seeds %d..%d), %d rounds, in %s; %d schedules violated an invariant, by invariant %v (first seeds %v, all %v); slowest convergence %d rounds",
		n, first, first+uint64(n)-1, rounds, time.Since(start).Round(time.Millisecond), failedSeeds, byInv, firstSeed, failed, maxConv)
}
