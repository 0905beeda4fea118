package e2e

import "github.com/twonode-edge/twonode/e2e/harness"

// scenario is one row of the package's table: a Test function that forms a
// pair, what it does to it and what it asserts. The tests stay functions of
// their own (CI and the docs select them by name); the table lists them so
// that docs/agent-scenarios.md is generated from it, and TestScenarioTable
// (scenarios_check_test.go) fails when a test that forms a pair has no row,
// or a row names no such test or nets other than the test's own.
type scenario struct {
	test  string        // the Test function: go test -run 'Name$' ./e2e
	nets  []harness.Net // the namespace prefixes and subnets its pairs use (e2e/harness/subnets.go)
	fault string        // what is done, one line
	holds string        // what must hold
}

func nets(n ...harness.Net) []harness.Net { return n }

// scenarios, in the order README.md describes them: the crashes, the split
// and the pause; the agent killed inside a step and the other decisions;
// the witness; then the load, the long outage and the cost at rest.
var scenarios = []scenario{
	{test: "TestLeaderCrashThenReturn", nets: nets(harness.NetLeaderCrash),
		fault: "The leader loses power under writes and a watch; later it is started again.",
		holds: "The follower leads alone and takes writes; nothing acknowledged is lost; the watch never goes backwards; the old leader rejoins as a synchronous follower; no secret in the logs."},
	{test: "TestFollowerCrashThenNewNode", nets: nets(harness.NetFollowerCrash),
		fault: "The follower loses power under writes, then comes back as an empty machine of the same name.",
		holds: "The leader goes on alone and acknowledges writes; the new machine joins as follower; nothing lost."},
	{test: "TestSplitBrain", nets: nets(harness.NetSplitBrain),
		fault: "The link cut; writes on both sides, b writing last; the link healed.",
		holds: "b wins and a follows; only a's writes are lost, each in a's archive, which `twonode status` shows."},
	{test: "TestPauseRestartsAndBlip", nets: nets(harness.NetPartitionBoth),
		fault: "`twonode pause`, each node powered off and started in turn, `twonode resume`; then the link cut for 750 ms.",
		holds: "Both nodes paused; b never promoted, paused or by the blip; a leads and b follows after each restart and after the blip; nothing lost."},

	{test: "TestCrashAfterPromoteOldLeaderDead", nets: nets(harness.NetPromoteLeaderDead),
		fault: "The leader loses power; the follower's agent dies right after `pg_promote`, before saving its term, and is started again.",
		holds: "It finishes the promotion (term 2 or more) and takes writes; nothing acknowledged lost."},
	{test: "TestCrashAfterPromoteOldLeaderReturns", nets: nets(harness.NetPromoteLeaderReturns),
		fault: "As above, but the old leader is started before the follower's agent returns.",
		holds: "The promoted node leads and the old leader follows; nothing acknowledged lost."},
	{test: "TestCrashDuringRewind", nets: nets(harness.NetCrashDuringRewind),
		fault: "The old leader returns and its agent dies during `pg_rewind`; then its peer is away while it restarts.",
		holds: "Its half-rewound data never leads; it rejoins as follower; every lost write is in its archive."},
	{test: "TestCrashDuringBaseBackup", nets: nets(harness.NetCrashDuringBackup),
		fault: "An empty machine replaces the follower and its agent dies during the base backup.",
		holds: "Restarted, it copies again and follows, never promoted and never leading; lost writes archived."},
	{test: "TestRebootedLeaderThatWroteLast", nets: nets(harness.NetRestartLoop),
		fault: "b off, a leads alone and writes; a off, b boots and leads alone writing nothing; a returns.",
		holds: "a, which wrote last, leads and b follows; none of a's writes leaves the live data."},
	{test: "TestSplitWithOnlyPostgresBlocked", nets: nets(harness.NetPostgresGone),
		fault: "Only PostgreSQL's port cut between the nodes for 40 s under writes; the agents still talk.",
		holds: "A write is acknowledged after the split is decided (25 s in) while the port stays cut; the pair converges; lost writes archived."},
	{test: "TestImplausiblePeer", nets: nets(harness.NetInterruptedPromote),
		fault: "The follower powered off; a process with the secret answers on its address with impossible values for 30 s.",
		holds: "The leader stays leading alone, serving, and acknowledges at least 90% of writes; nothing lost."},
	{test: "TestStarvedFollower", nets: nets(harness.NetStarvedFollower),
		fault: "The follower's agent held to 2 ms of CPU a second for 20 s while WAL flows.",
		holds: "It never takes over and the leader does not change; lost writes archived."},
	{test: "TestSkewedLeaderHearsItsFollower", nets: nets(harness.NetSkewedLeader),
		fault: "The leader's clock ten minutes ahead; its connections to the follower's agent and database refused for 20 s.",
		holds: "The leader stays a synchronous leader (replication is its sign of life); lost writes archived."},
	{test: "TestPlainCrashesAreNotSplits", nets: nets(harness.NetAgentCrash),
		fault: "Whichever node leads loses power and returns, four times, under writes.",
		holds: "Each crash is followed by an acknowledged write; neither node counts a lost split."},
	{test: "TestSplitWhoseLosersDiskIsFull", nets: nets(harness.NetSplitDiskFull),
		fault: "A split with writes on both sides, b last; a's disk filled, then the link healed; later a's disk freed.",
		holds: "b takes at least 50 writes in 20 s while a's disk is full; a then archives and follows; only a's writes lost, all archived."},

	{test: "TestWitnessPartition", nets: nets(harness.NetWitnessPartition),
		fault: "With a witness, the link cut for 20 s under writes through both nodes.",
		holds: "Never two writers; nothing lost or archived."},
	{test: "TestWitnessLeaderCutOff", nets: nets(harness.NetWitnessCrash),
		fault: "With a witness, the link cut; the node leading alone then cut from the witness.",
		holds: "It stops serving before the other node serves; never two writers; lost writes archived."},
	{test: "TestWitnessFrozenAgent", nets: nets(harness.NetWitnessWatchdog),
		fault: "With a witness and the test watchdog, the link cut; the agent of the node leading alone frozen.",
		holds: "The watchdog resets that node once; the other serves, if at all, only after the reset; never two writers; the pair converges."},
	{test: "TestWitnessDownWhileHealthy", nets: nets(harness.NetWitnessDown),
		fault: "The witness down for 20 s under a healthy pair and writes.",
		holds: "Roles unchanged and no write fails; the follower reports the witness unreachable."},
	{test: "TestWitnessDownThenLeaderCrash", nets: nets(harness.NetWitnessDownWait, harness.NetWitnessDownPromote),
		fault: "The witness down, then the leader's power cut; policy `wait` and policy `promote` (subtests).",
		holds: "wait: the follower waits, naming the witness, and takes over once it answers; promote: it takes over at once."},
	{test: "TestWitnessFromOneNodeOnly", nets: nets(harness.NetWitnessOnly),
		fault: "The leader cut from the witness, then from its follower.",
		holds: "The follower takes over; never two writers; nothing lost or archived."},
	{test: "TestWitnessStaleNodeStartsAlone", nets: nets(harness.NetWitnessSlow),
		fault: "With a witness: b off, a leads alone and writes, a off, b boots alone; then a returns.",
		holds: "b waits in starting, naming the witness's newer term; a leads after it returns; nothing archived or lost."},
	{test: "TestManualFailover", nets: nets(harness.NetManualFailover),
		fault: "`failover: manual`; the leader's power cut under writes; later `twonode promote` on the follower.",
		holds: "The follower waits 8 s, saying it awaits an operator; after `promote` it leads and writes resume; nothing lost."},

	{test: "TestManyConcurrentWrites", nets: nets(harness.NetConcurrentWrites),
		fault: "64 concurrent writers, 10 writes each, four times Kine's 16 connections.",
		holds: "Every write is answered within its 10 s timeout."},
	{test: "TestPeerAPIFlood", nets: nets(harness.NetPeerAPIFlood),
		fault: "For a minute the LAN floods the leader's peer API (challenges, forged requests, slow connections) under writes.",
		holds: "No role changes; at least 99% of the follower's probes answered; the agent's memory at most doubles; nothing lost."},
	{test: "TestLongOutageRejoinsByCopy", nets: nets(harness.NetLongOutage),
		fault: "The follower off while the leader writes WAL past `max_slot_wal_keep_size` and drops it; the follower started.",
		holds: "It follows again by a fresh copy of the leader's data, without waiting out a join timeout."},
	{test: "TestPairAtRest", nets: nets(harness.NetCost),
		fault: "None: a formed pair at rest for 30 s.",
		holds: "Both agents' and both Kines' CPU and memory sampled (figures in a RESULT line, not assertions)."},
}
