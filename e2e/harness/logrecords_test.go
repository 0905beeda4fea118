package harness

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestLogRecords reads back what slog's text handler wrote, quoting and
// all, and passes over what is not a record.
func TestLogRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(f, nil)).With("node", "b")
	log.Info("new term", "term", 2, "kind", "promote", "fork_revision", 1000068)
	log.Info("transition", "from", "follower", "to", "leader_alone", "reason", `leader unreachable: "promoting" a=b`)
	f.WriteString("a line of PostgreSQL's own\n")
	log.Info("new term", "term", 3, "kind", "alone")
	f.Close()
	recs, err := LogRecords(path, "new term")
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	if r := recs[0]; r["node"] != "b" || r["term"] != "2" || r["kind"] != "promote" || r["level"] != "INFO" {
		t.Fatalf("record %v", r)
	}
	tr, _ := LogRecords(path, "transition")
	if len(tr) != 1 || tr[0]["reason"] != `leader unreachable: "promoting" a=b` || tr[0]["to"] != "leader_alone" {
		t.Fatalf("transition %v", tr)
	}
}
