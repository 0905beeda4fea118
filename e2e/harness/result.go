package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
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
// RESULT {"scenario":"<name>","rto_ms":<n or null>,"acked":<n>,"lost":<n>,"archived":<n>}
// on one line. Field order is fixed by the struct below (encoding/json keeps
// declaration order); the scenario name is JSON-escaped.
func PrintResult(w io.Writer, r Result) error {
	b, err := json.Marshal(struct {
		Scenario string `json:"scenario"`
		RTOms    *int64 `json:"rto_ms"`
		Acked    int    `json:"acked"`
		Lost     int    `json:"lost"`
		Archived int    `json:"archived"`
	}{r.Scenario, r.RTOms, r.Acked, r.Lost, r.Archived})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "RESULT %s\n", b)
	return err
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
