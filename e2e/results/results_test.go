package results

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The line is the table, the scenario, then the figures in their
// writer's order; the scenario is left out when there is none, and a
// Fixed figure keeps its trailing zero.
func TestWrite(t *testing.T) {
	var b bytes.Buffer
	type figs struct {
		RTOms *int64 `json:"rto_ms"`
		Acked int    `json:"acked"`
	}
	for _, c := range []struct {
		table, scenario string
		figures         any
	}{
		{AgentScenarios, `leader "power" loss`, figs{Acked: 3}},
		{ImageSize, "", map[string]any{"mib": 1.5, "item": "agent"}},
		{PairAtRest, "", struct{}{}},
		{UnitSecurity, "", map[string]any{"exposure": Fixed(12, 1)}},
	} {
		if err := Write(&b, c.table, c.scenario, c.figures); err != nil {
			t.Fatal(err)
		}
	}
	want := `RESULT {"table":"agent-scenarios","scenario":"leader \"power\" loss","rto_ms":null,"acked":3}
RESULT {"table":"image-size","item":"agent","mib":1.5}
RESULT {"table":"pair-at-rest"}
RESULT {"table":"unit-security","exposure":12.0}
`
	if b.String() != want {
		t.Fatalf("got\n%swant\n%s", b.String(), want)
	}
}

// Write refuses what would make a line results.sh cannot place.
func TestWriteRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		table   string
		figures any
	}{
		"unknown table":      {"no-such-table", map[string]int{"x": 1}},
		"figures not object": {Scaling, []int{1, 2}},
		"nil figures":        {Scaling, nil},
		"table in figures":   {Scaling, map[string]string{"table": "other"}},
		"scenario in figures": {FaultMatrix, struct {
			S string `json:"scenario"`
		}{"x"}},
		"unencodable": {Scaling, map[string]any{"f": func() {}}},
	} {
		var b bytes.Buffer
		if err := Write(&b, c.table, "", c.figures); err == nil {
			t.Errorf("%s: no error, wrote %q", name, b.String())
		} else if b.Len() != 0 {
			t.Errorf("%s: wrote %q with the error", name, b.String())
		}
	}
}

// Read returns the table's lines as written, skipping other lines and
// other tables, and fails on a RESULT line that is not JSON.
func TestRead(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("=== RUN TestX\nRESULT {\"table\":\"scaling\",\"curve\":\"watches\"}\n")
	_ = Write(&b, FleetRace, "", map[string]int{"failures": 10})
	b.WriteString("RESULTS are in\n")
	_ = Write(&b, FleetRace, "", map[string]int{"failures": 100})
	rows, err := Read(bytes.NewReader(b.Bytes()), FleetRace)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || string(rows[0]) != `{"table":"fleet-race","failures":10}` || string(rows[1]) != `{"table":"fleet-race","failures":100}` {
		t.Fatalf("read %q", rows)
	}
	if _, err := Read(strings.NewReader("RESULT {\"table\":\n"), FleetRace); err == nil {
		t.Error("a broken RESULT line read without error")
	}
}

// Every table scripts/results.sh reads (`rows NAME "$log"` or `objects NAME "$log"`) is
// one a writer can name, so a renamed table cannot silently empty a
// section of docs/results.md.
func TestResultsShReadsDeclaredTables(t *testing.T) {
	sh, err := os.ReadFile("../../scripts/results.sh")
	if err != nil {
		t.Fatal(err)
	}
	read := regexp.MustCompile(`\b(?:rows|objects) ([a-z][a-z0-9-]*) "\$`).FindAllStringSubmatch(string(sh), -1)
	if len(read) < 10 {
		t.Fatalf("found only %d tables read in results.sh: has its helpers' name changed?", len(read))
	}
	seen := map[string]bool{}
	for _, m := range read {
		if !slices.Contains(Tables, m[1]) {
			t.Errorf("results.sh reads table %q, which no writer declares (results.Tables)", m[1])
		}
		seen[m[1]] = true
	}
	for _, name := range Tables {
		if !seen[name] && name != ApplianceRootFS {
			t.Errorf("table %q is written but results.sh does not read it", name)
		}
	}
}
