package e2e

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/e2e/harness"
	"github.com/twonode-edge/twonode/e2e/results"
)

// restFor is how long the pair's own cost is sampled at rest.
const restFor = 30 * time.Second

// What the agent and Kine cost a node while nothing happens: a formed pair,
// no client, both agents probing each other (issue 14, item 5). Figures,
// not assertions: CPU is the share of one core over restFor (user and
// system time from /proc), memory the resident set at the end.
func TestPairAtRest(t *testing.T) {
	c := newCluster(t, harness.NetCost)
	time.Sleep(5 * time.Second) // past forming's own work (the base backup, the first checkpoint)
	type proc struct{ node, what string }
	pids := map[proc]int{}
	for _, n := range []string{"a", "b"} {
		pids[proc{n, "agent"}] = c.AgentPID(n)
		if pid := commPID(t, c.Nodes[n].NS, "kine"); pid != 0 {
			pids[proc{n, "kine"}] = pid
		}
	}
	before := map[proc]int64{}
	for p, pid := range pids {
		before[p] = cpuTicks(t, pid)
	}
	time.Sleep(restFor)
	r := restResult{Seconds: restFor.Seconds()}
	hz := 100.0 // USER_HZ on Linux
	for p, pid := range pids {
		pct := math.Round(float64(cpuTicks(t, pid)-before[p])/hz/restFor.Seconds()*100*100) / 100
		kib, _ := statusKiB(pid, "VmRSS")
		rss := mib(kib * 1024)
		t.Logf("%s's %s: %.2f%% of a core, %.1f MiB resident", p.node, p.what, pct, rss)
		switch {
		case p.what == "agent" && p.node == "a":
			r.LeaderAgentCPU, r.LeaderAgentRSS = pct, rss
		case p.what == "agent":
			r.FollowerAgentCPU, r.FollowerAgentRSS = pct, rss
		case p.node == "a":
			r.LeaderKineCPU, r.LeaderKineRSS = pct, rss
		default:
			r.FollowerKineCPU, r.FollowerKineRSS = pct, rss
		}
	}
	if err := results.Write(os.Stdout, results.PairAtRest, "", r); err != nil {
		t.Fatal(err)
	}
	if len(pids) != 4 || pids[proc{"a", "agent"}] == 0 || pids[proc{"b", "agent"}] == 0 {
		t.Errorf("sampled %d processes (%v), want both agents and both Kines", len(pids), pids)
	}
}

type restResult struct {
	Seconds          float64 `json:"seconds"`
	LeaderAgentCPU   float64 `json:"leader_agent_cpu_pct"`
	LeaderAgentRSS   float64 `json:"leader_agent_rss_mib"`
	FollowerAgentCPU float64 `json:"follower_agent_cpu_pct"`
	FollowerAgentRSS float64 `json:"follower_agent_rss_mib"`
	LeaderKineCPU    float64 `json:"leader_kine_cpu_pct"`
	LeaderKineRSS    float64 `json:"leader_kine_rss_mib"`
	FollowerKineCPU  float64 `json:"follower_kine_cpu_pct"`
	FollowerKineRSS  float64 `json:"follower_kine_rss_mib"`
}

// cpuTicks is a process's user plus system time, in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command may hold spaces: fields count from after its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

// commPID is the first process in namespace ns whose name is comm, or 0.
func commPID(t *testing.T, ns, comm string) int {
	t.Helper()
	pids, err := harness.PidsInNetns(ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(b)) == comm {
			return pid
		}
	}
	return 0
}
