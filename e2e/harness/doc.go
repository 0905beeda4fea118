// Package harness is the end-to-end test harness for twonode.
//
// It builds a three-namespace test site on one machine (two nodes "a" and
// "b" plus a LAN "switch" namespace "c" that also hosts clients), injects
// faults (nftables partitions, link down, power loss, freeze), runs
// processes inside the node namespaces, talks etcd v3 to each node's kine
// (which listens on 127.0.0.1:2379 inside its node only, so the dialer has
// to create its sockets inside that namespace), records writes and watch
// deliveries, and checks the results (lost acknowledged writes, revision
// regressions, split-brain archives).
//
// Everything here is bounded in time: every external command and every etcd
// operation runs under a timeout, so a broken node makes a test fail instead
// of hang. Everything created is removed by Close (registered with
// t.Cleanup by the tests), by a SIGINT/SIGTERM handler, or on the next run
// by CleanupStale.
//
// Requires root, iproute2 (ip) and nftables (nft); ping (iputils-ping) for
// the reachability helpers.
//
// A scenario, in outline:
//
//	n := harness.NewTestNetwork(t, "tnfailover")       // fixed prefix: leftovers are cleaned
//	// start agents: harness.StartInNetns(n.NS("a"), "agent-a", log, env, "twonode", "agent", ...)
//	ts, _ := n.NodeClients(2 * time.Second)           // kine of a and b, through their namespaces
//	defer harness.CloseTargets(ts)
//	wat, _ := harness.StartWatch(ctx, "/e2e/", ts...)
//	w := harness.NewWriter("failover", ts...)
//	go w.Run(wctx, 50)
//	fault := time.Now(); n.PowerOff("a")              // or Isolate, Partition, LinkDown, Freeze
//	... wait for recovery, stop the writer ...
//	ack, ok := w.FirstAckAfter(fault)
//	lost, _ := harness.Verify(ctx, ts[1].Client, w.Acked())
//	rep := wat.Stop()                                  // rep.Regressions, rep.Missing(w.Acked())
//	harness.PrintResult(os.Stdout, harness.Result{Scenario: "failover",
//		RTOms: harness.RTO(fault, ack, ok), Acked: len(w.Acked()), Lost: len(lost)})
package harness
