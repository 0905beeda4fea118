package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The agent's "failover timeline" line, as slog's text handler writes it,
// read back into times on one clock, summarized and drawn.
func TestPhasesFromAnAgentLog(t *testing.T) {
	log := `time=2026-12-04T21:30:48.100Z level=INFO msg="kine ready" node=b
time=2026-12-04T21:30:48.267Z level=INFO msg="failover timeline" node=b term=2 origin=2026-12-04T21:30:45.676900627Z last_probe_ok=0.0 first_probe_failed=520.9 detected=1480.1 decided=1544.6 kine_stopped=1563.2 promote_requested=1721.1 promoted=1938.8 fenced=1971.7 term_saved=2077.0 slot_ensured=2098.0 kine_ready=2578.4 address_held=2578.4
`
	path := filepath.Join(t.TempDir(), "agent.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := agentTimeline(path)
	if err != nil {
		t.Fatal(err)
	}
	origin := time.Date(2026, 12, 4, 21, 30, 45, 676900627, time.UTC)
	if got := r["promoted"].Sub(origin); got != 1938800*time.Microsecond {
		t.Fatalf("promoted %s after the origin, want 1938.8ms", got)
	}
	r["fault"] = origin.Add(100 * time.Millisecond)
	r["first_write_kine"] = r["kine_ready"].Add(50 * time.Millisecond)
	late := map[string]time.Time{}
	for k, v := range r {
		late[k] = v.Add(time.Second)
	}
	late["fault"] = r["fault"] // the second run's phases all a second later
	stats := summarize([]map[string]time.Time{r, late})
	if len(stats) != 13 || stats[0].mark != "last_probe_ok" || stats[12].mark != "first_write_kine" {
		t.Fatalf("phases %+v", stats)
	}
	for _, s := range stats {
		if s.runs != 2 || s.p95 != s.median+time.Second {
			t.Fatalf("%s: %+v", s.mark, s)
		}
	}
	if d := between([]map[string]time.Time{r}, "detected", "first_write_kine"); len(d) != 1 || d[0] != 1148300*time.Microsecond {
		t.Fatalf("detection to the first write %v", d)
	}
	svg := string(drawPhases(stats, 2))
	for _, want := range []string{"<svg", "pg_promote returned", "first write through Kine", "</svg>"} {
		if !strings.Contains(svg, want) {
			t.Fatalf("the picture lacks %q", want)
		}
	}
}

func TestNoTimelineIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.log")
	if err := os.WriteFile(path, []byte(`level=INFO msg="kine ready"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := agentTimeline(path); err == nil {
		t.Fatal("a log without a timeline was read as one")
	}
}
