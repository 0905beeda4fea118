package matrix

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/twonode-edge/twonode/e2e/harness"
)

var update = flag.Bool("update", false, "rewrite docs/scenarios.md from the scenario table")

const scenariosDoc = "../../docs/scenarios.md"

// TestScenarioTable checks the table without running it (no root): every
// row named once, described, runnable, and within the matrix's block of
// subnets.
func TestScenarioTable(t *testing.T) {
	if len(scenarios) > harness.NetMatrix.Size {
		t.Errorf("%d scenarios, %d subnets in harness.NetMatrix: widen the block", len(scenarios), harness.NetMatrix.Size)
	}
	seen := map[string]bool{}
	for _, s := range scenarios {
		if seen[s.name] {
			t.Errorf("scenario %q is in the table twice", s.name)
		}
		seen[s.name] = true
		if s.fault == "" || s.holds == "" || s.run == nil {
			t.Errorf("scenario %q lacks its fault, what holds, or its run", s.name)
		}
	}
}

// scenarioList is docs/scenarios.md, generated from the table.
func scenarioList() string {
	var b strings.Builder
	b.WriteString(`# The fault matrix's scenarios

<!-- Generated from the table in e2e/matrix/scenarios_test.go by
     go test ./e2e/matrix -run TestScenariosDocIsFresh -update
     Do not edit by hand. -->

Each scenario forms a pair with a real kube-apiserver, controller manager and
scheduler on each node, runs the client-go workload and a watch through
whichever API server answers, injects its fault, and waits for the pair to
settle into a synchronous leader and follower. Then every scenario checks
(` + "`e2e/matrix/rig_test.go`" + `): every acknowledged write is in the final
state or in the loser's split-brain archive; the history is linearizable (or,
after a split, linearizable without the losers' branches); the watch never went
backwards and caught up by itself; no controller manager or scheduler lost its
Lease on a node that kept a datastore; a Deployment created after the fault
gets its ReplicaSet and a scheduled Pod; the pair's address was only ever on a
node whose Kine served its own database. Those are "the common checks" below.

Run one by name (needs root and the binaries, see README.md):
` + "`go test -count=1 -v -run 'TestMatrix/^leader-power-loss$' ./e2e/matrix`" + `.
Adding a scenario is one row in the table plus its fault function.

| Scenario | Fault | What must hold |
|---|---|---|
`)
	for _, s := range scenarios {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s.name, s.fault, s.holds)
	}
	return b.String()
}

// TestScenariosDocIsFresh: docs/scenarios.md is the table as it is; with
// -update it rewrites it.
func TestScenariosDocIsFresh(t *testing.T) {
	harness.GeneratedFile(t, scenariosDoc, scenarioList(), *update, "go test ./e2e/matrix -run TestScenariosDocIsFresh -update")
}
