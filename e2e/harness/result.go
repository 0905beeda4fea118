package harness

import (
	"io"
	"time"

	"github.com/twonode-edge/twonode/e2e/results"
)

// Result is the one-line summary a scenario prints for the report tooling.
type Result struct {
	Scenario string
	RTOms    *int64 // nil: no recovery measured (printed as null)
	Acked    int
	Lost     int
	Archived int
}

// PrintResult prints exactly
// RESULT {"table":"agent-scenarios","scenario":"<name>","rto_ms":<n or null>,"acked":<n>,"lost":<n>,"archived":<n>}
// on one line (results.Write). Field order is fixed by the struct below
// (encoding/json keeps declaration order); the scenario name is JSON-escaped.
func PrintResult(w io.Writer, r Result) error {
	return results.Write(w, results.AgentScenarios, r.Scenario, struct {
		RTOms    *int64 `json:"rto_ms"`
		Acked    int    `json:"acked"`
		Lost     int    `json:"lost"`
		Archived int    `json:"archived"`
	}{r.RTOms, r.Acked, r.Lost, r.Archived})
}

// RTO converts a fault time and the first acknowledgement after it (as from
// Writer.FirstAckAfter) into milliseconds for Result.RTOms; nil if !ok.
func RTO(fault, ack time.Time, ok bool) *int64 {
	if !ok {
		return nil
	}
	ms := ack.Sub(fault).Milliseconds()
	return &ms
}
