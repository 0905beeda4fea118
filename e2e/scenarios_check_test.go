package e2e

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twonode-edge/twonode/e2e/harness"
)

var update = flag.Bool("update", false, "rewrite docs/agent-scenarios.md from the scenario table")

const agentScenariosDoc = "../docs/agent-scenarios.md"

// notScenarios are the package's Test functions that form no pair, each
// with the reason it has no row in the table.
var notScenarios = map[string]string{
	"TestScenarioTable":       "checks the table itself (no root)",
	"TestScenariosDocIsFresh": "checks docs/agent-scenarios.md against the table (no root)",
}

// pairFormers are the calls that form a pair: every scenario reaches one
// of them, through the package's own helpers (newCluster, newClusterWith,
// witnessCluster, crashAfterPromote, ...) or directly.
var pairFormers = map[string]bool{"cluster.ForTest": true, "cluster.ForTestWith": true}

// The rule TestScenarioTable enforces: a Test function of this package is
// a scenario when its body, or a package-level function it calls
// (transitively), calls cluster.ForTest or cluster.ForTestWith. Every
// scenario has exactly one row naming it and the harness.Net values its
// body names; every other Test function is in notScenarios; every row
// names a scenario. So a new test that forms a pair without a row fails.
func TestScenarioTable(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	fset := token.NewFileSet()
	funcs := map[string]*ast.FuncDecl{}
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	prefixOf := harnessNets(t)

	rows := map[string]scenario{}
	usedNet := map[string]string{}
	for _, s := range scenarios {
		if _, dup := rows[s.test]; dup {
			t.Errorf("%s has two rows", s.test)
		}
		rows[s.test] = s
		if s.fault == "" || s.holds == "" || len(s.nets) == 0 {
			t.Errorf("%s's row lacks its fault, what holds, or its nets", s.test)
		}
		for _, n := range s.nets {
			if other, ok := usedNet[n.Prefix]; ok {
				t.Errorf("%s and %s both use the net %q", other, s.test, n.Prefix)
			}
			usedNet[n.Prefix] = s.test
		}
	}

	memo := map[string]bool{}
	var formsPair func(name string, seen map[string]bool) bool
	formsPair = func(name string, seen map[string]bool) bool {
		if v, ok := memo[name]; ok {
			return v
		}
		if seen[name] || funcs[name] == nil {
			return false
		}
		seen[name] = true
		found := false
		ast.Inspect(funcs[name].Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || found {
				return !found
			}
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				if x, ok := fn.X.(*ast.Ident); ok && pairFormers[x.Name+"."+fn.Sel.Name] {
					found = true
				}
			case *ast.Ident:
				found = formsPair(fn.Name, seen)
			}
			return !found
		})
		memo[name] = found
		return found
	}

	names := slices.Sorted(maps.Keys(funcs)) // errors in a stable order
	tests := 0
	for _, name := range names {
		fd := funcs[name]
		if !isTest(fd) {
			continue
		}
		tests++
		row, hasRow := rows[name]
		why, excluded := notScenarios[name]
		switch pair := formsPair(name, map[string]bool{}); {
		case pair && !hasRow:
			t.Errorf("%s forms a pair and has no row in scenarios (scenarios_table_test.go)", name)
		case pair && excluded:
			t.Errorf("%s forms a pair but is in notScenarios (%s)", name, why)
		case !pair && hasRow:
			t.Errorf("%s has a row but forms no pair", name)
		case !pair && !excluded:
			t.Errorf("%s forms no pair and is not in notScenarios: add it there with a reason", name)
		}
		if !hasRow {
			continue
		}
		var want, got []string
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "harness" && prefixOf[sel.Sel.Name] != "" {
					want = append(want, prefixOf[sel.Sel.Name])
				}
			}
			return true
		})
		for _, n := range row.nets {
			got = append(got, n.Prefix)
		}
		slices.Sort(want)
		want = slices.Compact(want) // a body may name a net twice (.Prefix, .Subnet)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Errorf("%s's body names the nets %v, its row %v", name, want, got)
		}
	}
	for name := range rows {
		if fd := funcs[name]; fd == nil || !isTest(fd) {
			t.Errorf("the row %s names no Test function of this package", name)
		}
	}
	for name := range notScenarios {
		if fd := funcs[name]; fd == nil || !isTest(fd) {
			t.Errorf("notScenarios names %s, no Test function of this package", name)
		}
	}
	t.Logf("%d Test functions: %d scenarios in the table, %d without a pair", tests, len(rows), len(notScenarios))
}

// isTest: func TestXxx(t *testing.T), as go test runs it.
func isTest(fd *ast.FuncDecl) bool {
	p := fd.Type.Params.List
	if !strings.HasPrefix(fd.Name.Name, "Test") || len(p) != 1 || len(p[0].Names) > 1 {
		return false
	}
	star, ok := p[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "testing" && sel.Sel.Name == "T"
}

// harnessNets maps the name of each harness.Net of e2e/harness/subnets.go
// to its prefix, read from its reserve or reserveBlock call, so a row's
// nets can be compared with the names its test's body uses.
func harnessNets(t *testing.T) map[string]string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "harness/subnets.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	nets := map[string]string{}
	ast.Inspect(file, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 {
			return true
		}
		if call, ok := vs.Values[0].(*ast.CallExpr); ok && len(call.Args) > 0 {
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				nets[vs.Names[0].Name], _ = strconv.Unquote(lit.Value)
			}
		}
		return true
	})
	if len(nets) < len(scenarios) {
		t.Fatalf("read %d nets from harness/subnets.go: has its form changed?", len(nets))
	}
	return nets
}

// agentScenarioList is docs/agent-scenarios.md, generated from the table.
func agentScenarioList() string {
	var b strings.Builder
	b.WriteString(`# The agent's own scenarios

<!-- Generated from the table in e2e/scenarios_table_test.go by
     go test ./e2e -run TestScenariosDocIsFresh -update
     Do not edit by hand. -->

Each test of the package ` + "`e2e`" + ` forms its own pair of real PostgreSQL, Kine
and agents (a real three-member etcd witness where it says so), in network
namespaces on a subnet reserved for it in ` + "`e2e/harness/subnets.go`" + `, writes
through Kine with etcd clients that record every acknowledged write, and
injects its fault. Every test that prints a RESULT line also fails if an
acknowledged write is neither in the live data nor in the loser's split-brain
archive. The fault matrix through a Kubernetes control plane is
listed in [scenarios.md](scenarios.md).

Run one by name (needs root and the binaries, see README.md):
` + "`go test -count=1 -v -run 'TestLeaderCrashThenReturn$' ./e2e`" + `.
Adding one is its Test function plus its row in the table;
` + "`go test -run TestScenarioTable ./e2e`" + ` (no root) fails until both exist.

| Test | Namespaces, subnet | Fault | What must hold |
|---|---|---|---|
`)
	for _, s := range scenarios {
		var where []string
		for _, n := range s.nets {
			where = append(where, fmt.Sprintf("`%s-*` 10.%d.0.0/24", n.Prefix, n.Subnet))
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", s.test, strings.Join(where, ", "), s.fault, s.holds)
	}
	return b.String()
}

// TestScenariosDocIsFresh: docs/agent-scenarios.md is the table as it is;
// with -update it rewrites it.
func TestScenariosDocIsFresh(t *testing.T) {
	harness.GeneratedFile(t, agentScenariosDoc, agentScenarioList(), *update, "go test ./e2e -run TestScenariosDocIsFresh -update")
}
