package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A leader crash's phases, on one clock, in the order they happen: the
// agent's own record (its "failover timeline" log line, bootstrap/agent)
// and what the benchmark's clients saw. Each is the moment the phase ended.
var phases = []struct{ mark, label, color string }{
	{"fault", "leader powered off", ""},
	{"last_probe_ok", "last probe answered", "#bbbbbb"},
	{"first_probe_failed", "first probe failed", "#dddddd"},
	{"detected", "detection window full", "#aaaaaa"},
	{"decided", "decided", "#000000"},
	{"kine_stopped", "Kine (pointed at the old leader) stopped", "#8c564b"},
	{"promote_requested", "pg_promote called", "#9ecae1"},
	{"promoted", "pg_promote returned", "#3182bd"},
	{"fenced", "revisions fenced", "#31a354"},
	{"term_saved", "term saved", "#74c476"},
	{"kine_ready", "Kine (pointed here) ready", "#e6550d"},
	{"address_held", "the pair's address held", "#fdae6b"},
	{"slot_ensured", "the old leader's slot ensured (after Kine)", "#c7e9c0"},
	{"first_write_kine", "first write through Kine", "#756bb1"},
	{"first_write_api", "first write through the API server", "#d62728"},
	{"watch_resumed", "watch resumed", "#e377c2"},
}

var timelineRe = regexp.MustCompile(`msg="failover timeline" (.*)$`)

// agentTimeline reads the last "failover timeline" line of an agent's log:
// each phase's wall-clock time.
func agentTimeline(path string) (map[string]time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := timelineRe.FindStringSubmatch(sc.Text()); m != nil {
			last = m[1]
		}
	}
	if last == "" {
		return nil, fmt.Errorf("no failover timeline in %s", path)
	}
	return parseTimeline(last)
}

// parseTimeline turns `term=4 origin=<RFC 3339> phase=<ms> ...` into times.
func parseTimeline(fields string) (map[string]time.Time, error) {
	kv := map[string]string{}
	for _, f := range strings.Fields(fields) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = strings.Trim(v, `"`)
		}
	}
	origin, err := time.Parse(time.RFC3339Nano, kv["origin"])
	if err != nil {
		return nil, fmt.Errorf("failover timeline: origin: %w", err)
	}
	out := map[string]time.Time{}
	for _, p := range phases {
		v, ok := kv[p.mark]
		if !ok {
			continue
		}
		ms, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("failover timeline: %s=%q: %w", p.mark, v, err)
		}
		out[p.mark] = origin.Add(time.Duration(ms * float64(time.Millisecond)))
	}
	return out, nil
}

// phaseStat is one phase's end over the runs, after the fault.
type phaseStat struct {
	mark, label, color string
	median, p95        time.Duration
	runs               int
}

// summarize takes each phase's offset from the fault over the runs.
func summarize(runs []map[string]time.Time) []phaseStat {
	var out []phaseStat
	for _, p := range phases[1:] {
		var d []time.Duration
		for _, r := range runs {
			if at, ok := r[p.mark]; ok {
				d = append(d, at.Sub(r["fault"]))
			}
		}
		if len(d) > 0 {
			out = append(out, phaseStat{p.mark, p.label, p.color, pct(d, 50), pct(d, 95), len(d)})
		}
	}
	return out
}

// between is, over the runs that have both marks, to minus from.
func between(runs []map[string]time.Time, from, to string) []time.Duration {
	var d []time.Duration
	for _, r := range runs {
		f, ok1 := r[from]
		t, ok2 := r[to]
		if ok1 && ok2 {
			d = append(d, t.Sub(f))
		}
	}
	return d
}
