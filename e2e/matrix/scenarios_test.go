package matrix

import (
	"testing"
	"time"

	"github.com/twonode-edge/twonode/e2e/harness"
)

// scenario is one row of the fault matrix. Adding a fault is one row here
// plus its fault function (func(*rig): inject the fault, then r.finish or
// r.check and r.report, then the row's own assertions). The row's pair
// gets the subnet and namespace prefix of its position in the matrix's
// block (harness.NetMatrix): never one written by hand.
type scenario struct {
	name  string // the subtest's name, the RESULT's scenario, the pair's directory
	fault string // what is done, one line (docs/scenarios.md)
	holds string // what must hold beyond the checks every scenario makes
	run   func(*rig)
	opts  options
}

var skewA = map[string]time.Duration{"a": 10 * time.Minute} // a's wall clock ten minutes ahead

// scenarios is the fault matrix, run in this order by TestMatrix and listed
// in docs/scenarios.md (go test ./e2e/matrix -run TestScenariosDoc -update).
var scenarios = []scenario{
	{name: "one-way-leader-to-follower", run: oneWay("a", "b"),
		fault: "The leader's packets to the follower dropped for 6 s, the follower's still reaching the leader.",
		holds: "The common checks."},
	{name: "one-way-follower-to-leader", run: oneWay("b", "a"),
		fault: "The follower's packets to the leader dropped for 6 s, the leader's still reaching the follower.",
		holds: "The common checks."},
	{name: "flapping-link", run: flapping, opts: options{multiFault: true},
		fault: "The link cut and healed at random every 0.5-3 s for 60 s.",
		holds: "The common checks; a lost lease is reported, not failed (dozens of faults in a row)."},
	{name: "frozen-leader", run: frozenLeader, opts: options{cutOff: "a"},
		fault: "Every process of the leader stopped (SIGSTOP) for 5 s, then resumed.",
		holds: "The common checks; a lost lease on the frozen node is reported, one on the other fails."},
	{name: "postgres-killed-on-leader", run: killedOnLeader("postgres"),
		fault: "PostgreSQL killed alone on the leader.",
		holds: "The common checks."},
	{name: "kine-killed-on-leader", run: killedOnLeader("kine"),
		fault: "Kine killed alone on the leader; its agent starts it again.",
		holds: "The common checks."},
	{name: "agent-killed-on-leader", run: agentKilledOnLeader,
		fault: "The leader's agent killed for 4 s (longer than the detection window), then started.",
		holds: "Writes go on within 2 s of the kill; the follower never leads."},
	{name: "follower-disk-full", run: followerDiskFull, opts: options{dataSize: "320m"},
		fault: "The follower's data filesystem filled for 8 s, then freed.",
		holds: "The common checks."},
	{name: "leader-disk-full", run: leaderDiskFull, opts: options{dataSize: "320m"},
		fault: "The leader's data filesystem filled for 8 s, then freed.",
		holds: "The follower takes over while the leader's disk is still full."},
	{name: "switchover", run: switchoverUnderLoad,
		fault: "`twonode switchover` on the leader under the client-go load.",
		holds: "Nothing lost and nothing archived; the two nodes never both lead alone."},
	{name: "leader-power-loss", run: leaderPowerLoss, opts: options{rate: 100, capture: true},
		fault: "The leader loses power during a burst of writes, and comes back 3 s after the follower leads alone.",
		holds: "Nothing Kine or the peer API carries crosses the recorded link in clear."},
	{name: "follower-power-loss", run: followerPowerLoss,
		fault: "The follower loses power, and comes back 3 s after the leader goes on alone.",
		holds: "A write is acknowledged after the fault."},
	{name: "node-replaced", run: nodeReplaced,
		fault: "The follower loses power and comes back as a new machine with an empty disk.",
		holds: "It joins from a base backup with no human step."},
	{name: "both-powered-off", run: bothPoweredOff, opts: options{multiFault: true},
		fault: "Both nodes lose power and start again, three rounds: a first, b first, both at once.",
		holds: "The pair settles after each round; one RESULT per round."},
	{name: "repeated-failovers", run: repeatedFailovers, opts: options{multiFault: true},
		fault: "Whichever node leads loses power and comes back, four times over.",
		holds: "The other node leads alone each time."},
	{name: "clock-skew-split", run: clockSkewSplit, opts: options{clockOffset: skewA, noWorkload: true},
		fault: "a's wall clock ten minutes ahead; the link cut, writes on both sides, b writing last.",
		holds: "b, which wrote last in real time, leads after the split; a's writes of the split are in its archive."},
	{name: "follower-disk-slow", run: followerDiskSlow, opts: options{slowDisk: true},
		fault: "Every fsync of the follower's PostgreSQL takes 1.5 s for 30 s.",
		holds: "The follower never leads; the leader leaves it behind (leader_alone); both agents' status says which disk is slow."},
	{name: "leader-disk-slow", run: leaderDiskSlow, opts: options{slowDisk: true},
		fault: "Every fsync of the leader's PostgreSQL takes 3 s for 30 s.",
		holds: "The follower takes over and acknowledges writes while the leader's disk is still slow."},
	{name: "both-disks-slow", run: bothDisksSlow, opts: options{slowDisk: true, noBetter: true},
		fault: "Every fsync of both nodes' PostgreSQL takes 1.5 s for 30 s.",
		holds: "No role changes; both agents' status says why."},
	{name: "witness-one-way-leader-to-follower", run: witnessed(oneWay("a", "b")), opts: options{witness: true},
		fault: "As one-way-leader-to-follower, the pair deciding through a witness.",
		holds: "With a witness: never two writers, nothing archived or lost, the whole history linearizable."},
	{name: "witness-one-way-follower-to-leader", run: witnessed(oneWay("b", "a")), opts: options{witness: true},
		fault: "As one-way-follower-to-leader, with a witness.",
		holds: "As with every witness scenario: never two writers, nothing archived or lost, the whole history linearizable."},
	{name: "witness-full-partition", run: witnessFullPartition, opts: options{witness: true, cutOff: "b"},
		fault: "The link cut for 20 s (two lease lengths), both nodes reaching the witness.",
		holds: "As with every witness scenario; a lost lease on b is reported, not failed."},
	{name: "witness-flapping-link", run: witnessed(flapping), opts: options{witness: true, multiFault: true},
		fault: "As flapping-link, with a witness.",
		holds: "As with every witness scenario."},
	{name: "witness-frozen-leader", run: witnessed(frozenLeader), opts: options{witness: true, cutOff: "a"},
		fault: "As frozen-leader, with a witness.",
		holds: "As with every witness scenario."},
	{name: "witness-clock-skew-split", run: witnessClockSkewSplit, opts: options{clockOffset: skewA, noWorkload: true, witness: true},
		fault: "a's wall clock ten minutes ahead, the link cut, writes tried through both API servers.",
		holds: "The node that won the swap at the witness takes the writes and leads after; the other acknowledges none."},
}

// TestMatrix runs each scenario as a subtest, one after the other:
// go test -run 'TestMatrix/^leader-power-loss$' ./e2e/matrix runs one.
func TestMatrix(t *testing.T) {
	for i, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			s.run(newRig(t, s.name, harness.NetMatrix.Nth(i), s.opts))
		})
	}
}
