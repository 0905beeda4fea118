// Package matrix is the fault matrix (issue 3) driven through a real
// kube-apiserver on each node, as k3s runs one on top of the node's Kine.
//
// Each scenario forms a pair, starts an API server per node (restarted
// like a system service whenever its node is up), runs the scoring
// workload (client-go; creates, conditional updates and deletes, reads)
// through whichever API server answers, and a client-go Reflector that
// watches the same objects. A fault is injected; the pair must settle by
// itself into a synchronous leader and follower. Then:
//
//   - every acknowledged write is in the final state, or in the losing
//     node's split-brain archive (lost = archived);
//   - the history is linearizable (porcupine); a history in which a split
//     brain archived writes cannot be, so there the check is made again
//     with the losers' own branches set aside, and that must pass;
//   - the watch never delivered a resourceVersion lower than one before,
//     and caught up with the last acknowledged write by itself.
//
// The RESULT line of each scenario feeds docs/results.md
// (scripts/results.sh).
package matrix
