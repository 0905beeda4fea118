package agent

// A deterministic two-node simulation of the agents' decision loops: the
// world in sim_world_test.go, the fakes of its actors in
// sim_actors_test.go, the invariants in sim_invariants_test.go, the script
// commands in sim_commands_test.go, the crash-after-every-call and random
// runs in sim_random_test.go. Scripted scenarios in testdata/sim, a
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
//	I1w with a witness (policy wait): never two nodes that acknowledge
//	    writes at once, partition or not.
//	I2 with a witness: a write may also be archived when its leader led
//	    alone and lost the witness's lease (cut off from both the peer and
//	    the witness, it stopped; the follower took over after the lease
//	    expired): the one case the witness trades for availability.
//	    (I4 does not apply with a witness: a node may wait for its peer by
//	    design; I3 checks that the pair comes back once the faults end.)
//	I4  nothing waits for a human: a member that cannot see its peer (off,
//	    or the link down) for K rounds, and is not paused, serves writes,
//	    unless it had conceded to that peer (a lost split, a hand-over)
//	    and not finished copying its data: that data may be half rewound
//	    and is older than the peer's, and it waits to see the peer again.
//
// Runs:
//
//	go test ./bootstrap/agent -run 'TestSim'                  # all three
//	go test ./bootstrap/agent -run TestSimScripts -rewrite    # regenerate testdata/sim outputs
//	go test ./bootstrap/agent -run TestRandomSchedules -sim.schedules=10000
//	go test ./bootstrap/agent -run TestRandomSchedules -sim.seed=S -sim.v  # one schedule, with its trail

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var (
	simRewrite   = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/sim/*.txt")
	simSchedules = flag.Int("sim.schedules", 300, "random fault schedules TestRandomSchedules runs")
	simSeed      = flag.Uint64("sim.seed", 0, "run only this random schedule (its seed)")
	simFirstSeed = flag.Uint64("sim.first", 1, "seed of the first random schedule")
	simVerbose   = flag.Bool("sim.v", false, "print every schedule's commands and event trail")
	simK         = flag.Int("sim.k", 300, "rounds (of 500 ms) of quiet after which the pair must have converged (I3, I4)")
	simCrashRows = flag.Int("sim.rowfirings", 2, "TestEveryRowCrashAfterEachAction: firings per row to crash in")
	simRowSeeds  = flag.Uint64("sim.rowseeds", 800, "TestEveryRowCrashAfterEachAction: random schedules searched for rows no scenario reaches")
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
