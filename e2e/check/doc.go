// Package check holds the end-to-end suite's judges of a recorded run, as
// library code with tests of their own: which writes a split's loser set
// aside (its branches, from the agents' states as the suite sampled them
// and the archives the losers wrote), whether the history holds without
// them, and who lost a split. e2e/workload keeps the judges that need no
// knowledge of the pair (lost-write accounting, the linearizability model,
// the watch checker); this package adds what the pair's faults need.
//
// A run is recorded as a History (Save, Load): the operations, the final
// state, the archived writes, the archives' files and the agents' states.
// The fault matrix (e2e/matrix) saves one in each scenario's artifacts;
// one that judged wrong becomes a file in testdata/ with the verdict it
// should have had, and the unit tests hold it to that.
package check
