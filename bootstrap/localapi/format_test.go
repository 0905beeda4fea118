package localapi

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestFormatStatus(t *testing.T) {
	now := time.Date(2025, 6, 1, 13, 5, 0, 0, time.UTC)
	r := StatusReport{
		Node: "a", Peer: "b", State: "leader", Role: "leader", Term: 7,
		PeerReachable: true, PeerState: "follower", PeerTerm: 7,
		Replication: "sync", LagBytes: 3 << 20, PGUp: true, KineEndpoint: "10.99.0.1",
		Paused: true, PausedUntil: time.Date(2025, 6, 1, 14, 3, 5, 0, time.UTC),
		LastTransition: "leader_alone → leader: follower caught up", LastTransitionAt: now.Add(-5 * time.Minute),
		LastFailover: 1234567 * time.Microsecond, ClockOffset: 10 * time.Minute,
		Archives: []Archive{{Path: "/var/lib/twonode/archive/split-term6-1748000000.jsonl", Rows: 12, Term: 6, Winner: "b",
			Created: time.Date(2025, 5, 23, 11, 33, 20, 0, time.UTC)}},
		Version: "v0.1.0", CommitLatency: 3 * time.Millisecond, PeerFlushLag: 2500 * time.Microsecond,
		DiskSlow: "flushes on b are slow",
	}
	var buf bytes.Buffer
	formatStatus(&buf, r, now)
	out := buf.String()
	for _, want := range []string{
		line("Role", "leader (term 7)"),
		line("Peer", "b: follower, term 7"),
		line("Replication", "sync, lag 3.0 MiB"),
		line("Kine writes to", "10.99.0.1"),
		line("Failover", "PAUSED until 2025-06-01 14:03:05 UTC (58m5s left)"),
		line("Last transition", "leader_alone → leader: follower caught up (2025-06-01 13:00:00 UTC, 5m0s ago)"),
		line("Last failover", "1.235s from detection to serving"),
		line("Peer clock", "10m0s ahead of this node"),
		line("Split-brain archives", "1"),
		line("Disk latency", "commit here 3ms, flush on b 3ms"),
		line("Disk", "SLOW: flushes on b are slow"),
		"  PATH                                                   ROWS  TERM  WINNER  CREATED\n",
		"  /var/lib/twonode/archive/split-term6-1748000000.jsonl  12    6     b       2025-05-23 11:33:20 UTC\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}

	// The bad day: everything down.
	buf.Reset()
	formatStatus(&buf, StatusReport{Node: "a", Peer: "b", State: "starting"}, now)
	out = buf.String()
	for _, want := range []string{"b: UNREACHABLE", line("PostgreSQL", "DOWN"), "nowhere (Kine stopped)",
		line("Failover", "automatic"), "none since the agent started", line("Replication", "none")} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "PATH") || strings.Contains(out, "Last failover") || strings.Contains(out, "Disk latency") {
		t.Errorf("empty sections shown:\n%s", out)
	}
	// An answer refused over TLS says why on the Peer line.
	buf.Reset()
	why := "the peer's TLS certificate is not from this pair's CA (its issuer: \"twonode pair CA 1a2b3c4d\"): the nodes' cluster secrets differ"
	formatStatus(&buf, StatusReport{Node: "a", Peer: "b", State: "starting", PeerProblem: why}, now)
	if out = buf.String(); !strings.Contains(out, "b: UNREACHABLE: "+why) {
		t.Errorf("the peer's problem is not on its line:\n%s", out)
	}
}

func TestBytesText(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := bytesText(n); got != want {
			t.Errorf("%d: %q, want %q", n, got, want)
		}
	}
}

// line is one row of the key table: keys padded to the longest one
// ("Split-brain archives:") plus two spaces.
func line(k, v string) string { return fmt.Sprintf("%-23s%s\n", k+":", v) }
