// Package results writes and reads the RESULT lines every measuring test
// and benchmark prints, one schema for all of them:
//
//	RESULT {"table":"<table>","scenario":"<scenario>",<figures>...}
//
// "table" names the table of docs/results.md the line belongs to (one of
// Tables; scripts/results.sh selects rows by it and nothing else),
// "scenario" the fault scenario the row measured, left out in tables
// whose rows are not scenarios, and the figures follow as their writer
// orders them (a struct's fields in declaration order, a map's keys
// sorted).
package results

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// The tables. A writer names one of these; results.sh reads them by
// name (TestResultsShReadsDeclaredTables checks that every name it reads
// is here).
const (
	AgentScenarios = "agent-scenarios" // e2e: agents on Kine, etcd clients (harness.Result)
	PeerAPIFlood   = "peer-api-flood"  // e2e: TestPeerAPIFlood
	PairAtRest     = "pair-at-rest"    // e2e: TestPairAtRest
	FaultMatrix    = "fault-matrix"    // e2e/matrix: through kube-apiservers (workload.Result)
	// FaultMatrixSplit: for a matrix scenario whose history held only
	// without the losers' branches, that check (check.Split).
	FaultMatrixSplit   = "fault-matrix-split"
	Appliance          = "appliance"              // e2e/appliance: TestAppliance
	ApplianceFirstBoot = "appliance-firstboot"    // e2e/appliance: first boot, upgrades, reset
	ApplianceRootFS    = "appliance-rootfs-build" // e2e/appliance: the root filesystem's build (not published)
	ImageSize          = "image-size"             // e2e/appliance: what TWO_NODE adds to the image
	UnitSecurity       = "unit-security"          // e2e/appliance: systemd-analyze security
	LeaderCrash        = "leader-crash"           // e2e/lab bench: one row per measure
	FailoverPhases     = "failover-phases"        // e2e/lab bench: one row per phase
	WatchResumed       = "watch-resumed"          // e2e/lab bench: watches resumed within 30 s
	DatastoreVsEtcd    = "datastore-vs-etcd"      // e2e/compare
	Scaling            = "scaling"                // e2e/scale
	FleetHealthy       = "fleet-healthy"          // e2e/fleet: the healthy fleet
	FleetEtcdMember    = "fleet-etcd-member"      // e2e/fleet: each witness member
	FleetRace          = "fleet-race"             // e2e/fleet: pairs failing at once
)

// Tables lists every table a writer may name.
var Tables = []string{AgentScenarios, PeerAPIFlood, PairAtRest, FaultMatrix, FaultMatrixSplit,
	Appliance, ApplianceFirstBoot, ApplianceRootFS, ImageSize, UnitSecurity,
	LeaderCrash, FailoverPhases, WatchResumed, DatastoreVsEtcd, Scaling,
	FleetHealthy, FleetEtcdMember, FleetRace}

const prefix = "RESULT "

// Write writes one RESULT line to w: table (one of Tables), scenario
// (empty: none) and figures, a struct or map that encodes as a JSON
// object without keys "table" or "scenario". It is the only writer of
// RESULT lines.
func Write(w io.Writer, table, scenario string, figures any) error {
	if !slices.Contains(Tables, table) {
		return fmt.Errorf("results: table %q is not one of results.Tables", table)
	}
	body, err := json.Marshal(figures)
	if err != nil {
		return fmt.Errorf("results: %s: %w", table, err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil || keys == nil {
		return fmt.Errorf("results: %s: figures are not a JSON object: %s", table, body)
	}
	for _, k := range []string{"table", "scenario"} {
		if _, ok := keys[k]; ok {
			return fmt.Errorf("results: %s: figures hold %q, which Write adds", table, k)
		}
	}
	var b bytes.Buffer
	b.WriteString(prefix + `{"table":`)
	name, _ := json.Marshal(table) // strings always encode
	b.Write(name)
	if scenario != "" {
		s, _ := json.Marshal(scenario)
		b.WriteString(`,"scenario":`)
		b.Write(s)
	}
	if rest := bytes.TrimSpace(body[1:]); len(rest) > 1 { // not "{}": its keys follow
		b.WriteByte(',')
		b.Write(rest)
	} else {
		b.WriteByte('}')
	}
	b.WriteByte('\n')
	_, err = w.Write(b.Bytes())
	return err
}

// Fixed is v with decimals places, as printf's %.*f writes it, for a
// figure whose line keeps its trailing zeros (12.0, where a float64
// would be written 12).
func Fixed(v float64, decimals int) json.Number {
	return json.Number(strconv.FormatFloat(v, 'f', decimals, 64))
}

// Read returns the JSON objects of table's RESULT lines in r, in their
// order; other lines are skipped. A RESULT line that is not a JSON
// object is an error.
func Read(r io.Reader, table string) ([]json.RawMessage, error) {
	var rows []json.RawMessage
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		body, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		var head struct{ Table string }
		if err := json.Unmarshal([]byte(body), &head); err != nil {
			return nil, fmt.Errorf("results: %q: %w", body, err)
		}
		if head.Table == table {
			rows = append(rows, json.RawMessage(body))
		}
	}
	return rows, sc.Err()
}
