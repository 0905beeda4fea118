package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
	"github.com/twonode-edge/twonode/e2e/results"
)

// floodFor is how long the LAN floods the leader's peer API (issue 13).
const floodFor = 60 * time.Second

// floodWorkers send unauthenticated requests back to back, each over a
// kept-alive TLS connection; floodSlow connections each make the TLS
// handshake, send half a request header and hold it, dialled again a
// second after the server closes them.
const (
	floodWorkers = 16
	floodSlow    = 2000
)

// The leader's peer API is on the LAN: anyone there can send it anything.
// For a minute the client's namespace floods it (challenges, forged
// requests, thousands of slow connections) while the pair takes writes:
// the follower's probes must keep being answered, no role may change, and
// the agent's memory must stay bounded.
func TestPeerAPIFlood(t *testing.T) {
	c := newCluster(t, harness.NetPeerAPIFlood)
	ts := targets(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := harness.NewWriter("peer-api-flood", ts...)
	go w.Run(ctx, 20)

	pid := c.AgentPID("a")
	if pid == 0 {
		t.Fatal("a's agent is not running")
	}
	idle := peakRSS(t, pid, 3*time.Second, nil)
	before := probeCounts(t, c, "b")

	fctx, stop := context.WithTimeout(ctx, floodFor)
	defer stop()
	target := net.JoinHostPort(c.Nodes["a"].Addr, strconv.Itoa(config.Default().API.PeerPort))
	f := &flood{ns: c.Net.NS("client"), target: target}
	var wg sync.WaitGroup
	f.start(fctx, &wg)
	var peak int64
	done := make(chan struct{})
	go func() { defer close(done); peak = peakRSS(t, pid, floodFor, fctx.Done()) }()
	changed := holds(c, floodFor, map[string]fsm.State{"a": fsm.Leader, "b": fsm.Follower})
	stop()
	wg.Wait()
	<-done
	after := probeCounts(t, c, "b")
	cancel()

	probes, failed := after[0]-before[0], after[1]-before[1]
	okPct := 0.0
	if probes > 0 {
		okPct = 100 * (probes - failed) / probes
	}
	lost := verify(t, ts, "a", w.Acked())
	r := floodResult{RequestsPerS: math.Round(float64(f.sent.Load())/floodFor.Seconds()*10) / 10, Answered: f.answered.Load(),
		Refused429: f.limited.Load(), SlowHeld: f.held.Load(), SlowPeak: f.heldPeak.Load(),
		IdleRSSMiB: mib(idle), PeakRSSMiB: mib(peak), FollowerProbes: int64(probes), FollowerProbesOKPct: okPct,
		RoleChanged: changed != "", Acked: len(w.Acked()), Lost: len(lost)}
	if err := results.Write(os.Stdout, results.PeerAPIFlood, "", r); err != nil {
		t.Fatal(err)
	}
	t.Logf("flood: %.0f requests/s sent (%d answered, %d of them 429), up to %d slow connections held at once; a's agent %.1f MiB idle, %.1f MiB at most; b's probes of a: %.0f, %.2f%% answered",
		r.RequestsPerS, r.Answered, r.Refused429, r.SlowPeak, r.IdleRSSMiB, r.PeakRSSMiB, probes, okPct)
	switch {
	case changed != "":
		t.Errorf("a role changed under the flood: %s", changed)
	case probes < 60:
		t.Errorf("b probed a only %.0f times in %s", probes, floodFor)
	case okPct < 99:
		t.Errorf("b's probes of a: %.2f%% answered under the flood, want at least 99%%", okPct)
	}
	if peak > 2*idle {
		t.Errorf("a's agent grew from %.1f MiB to %.1f MiB under the flood, want at most twice", mib(idle), mib(peak))
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged writes lost", len(lost))
	}
	if f.sent.Load() == 0 {
		t.Error("the flood sent nothing")
	}
}

type floodResult struct {
	RequestsPerS        float64 `json:"requests_per_s"`
	Answered            int64   `json:"answered"`
	Refused429          int64   `json:"refused_429"`
	SlowHeld            int64   `json:"slow_held_at_end"`
	SlowPeak            int64   `json:"slow_held_peak"`
	IdleRSSMiB          float64 `json:"agent_rss_idle_mib"`
	PeakRSSMiB          float64 `json:"agent_rss_peak_mib"`
	FollowerProbes      int64   `json:"follower_probes"`
	FollowerProbesOKPct float64 `json:"follower_probes_ok_pct"`
	RoleChanged         bool    `json:"role_changed"`
	Acked               int     `json:"acked"`
	Lost                int     `json:"lost"`
}

// flood is the LAN's side: what it sent and what it got.
type flood struct {
	ns, target              string
	sent, answered, limited atomic.Int64
	held, heldPeak          atomic.Int64
}

func (f *flood) start(ctx context.Context, wg *sync.WaitGroup) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return harness.DialInNetns(ctx, f.ns, network, addr)
		},
		MaxIdleConnsPerHost: floodWorkers,
		// The LAN has no CA of the pair's: it takes whatever certificate
		// it is shown, as an attacker would, to reach the HTTP layer.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	forged := http.Header{"X-Twonode-Challenge": {strings.Repeat("ab", 32)}, "X-Twonode-Signature": {strings.Repeat("cd", 32)}}
	kinds := []func() (*http.Request, error){
		func() (*http.Request, error) {
			return http.NewRequest(http.MethodGet, "https://"+f.target+"/v1/challenge", nil)
		},
		func() (*http.Request, error) {
			r, err := http.NewRequest(http.MethodGet, "https://"+f.target+"/v1/status", nil)
			if err == nil {
				r.Header = forged.Clone()
			}
			return r, err
		},
		func() (*http.Request, error) {
			r, err := http.NewRequest(http.MethodPost, "https://"+f.target+"/v1/handover", strings.NewReader(`{"term":99,"lsn":1,"by":"x"}`))
			if err == nil {
				r.Header = forged.Clone()
			}
			return r, err
		},
	}
	for i := range floodWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; ctx.Err() == nil; n++ {
				req, err := kinds[n%len(kinds)]()
				if err != nil {
					return
				}
				f.sent.Add(1)
				resp, err := hc.Do(req.WithContext(ctx))
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				f.answered.Add(1)
				if resp.StatusCode == http.StatusTooManyRequests {
					f.limited.Add(1)
				}
			}
		}()
	}
	for range floodSlow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				f.slow(ctx)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
}

// slow holds one connection with half a request header sent, until the
// server closes it or the flood ends.
func (f *flood) slow(ctx context.Context) {
	raw, err := harness.DialInNetns(ctx, f.ns, "tcp", f.target)
	if err != nil {
		return
	}
	defer raw.Close()
	// The handshake first (the server spends its most on that), then half
	// a request.
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		return
	}
	if _, err := conn.Write([]byte("GET /v1/status HTTP/1.1\r\nHost: a\r\nX-Slow: ")); err != nil {
		return
	}
	if n := f.held.Add(1); n > f.heldPeak.Load() {
		f.heldPeak.Store(n) // racy maximum: a figure, not a check
	}
	defer f.held.Add(-1)
	go func() { <-ctx.Done(); raw.Close() }()
	_, _ = io.Copy(io.Discard, conn) // returns when the server closes it
}

// peakRSS samples the process's resident memory every 100 ms for d (or
// until stop closes) and returns the largest, in bytes.
func peakRSS(t *testing.T, pid int, d time.Duration, stop <-chan struct{}) int64 {
	t.Helper()
	var peak int64
	for end := time.Now().Add(d); time.Now().Before(end); {
		if kib, err := statusKiB(pid, "VmRSS"); err == nil && kib*1024 > peak {
			peak = kib * 1024
		}
		select {
		case <-stop:
			return peak
		case <-time.After(100 * time.Millisecond):
		}
	}
	return peak
}

// statusKiB reads one "Name:   N kB" line of /proc/<pid>/status.
func statusKiB(pid int, name string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), name+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, name)
}

// probeCounts reads a node's agent's probe counters from its metrics
// (twonode_peer_probes_total, twonode_peer_probe_failures_total).
func probeCounts(t *testing.T, c *cluster.Cluster, node string) [2]float64 {
	t.Helper()
	resp, err := harness.HTTPClient(c.Net.NS(node), 5*time.Second).Get("http://" + config.Default().API.Metrics + "/metrics")
	if err != nil {
		t.Fatalf("%s's metrics: %v", node, err)
	}
	defer resp.Body.Close()
	var out [2]float64
	var seen [2]bool
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		for i, name := range []string{"twonode_peer_probes_total ", "twonode_peer_probe_failures_total "} {
			if v, ok := strings.CutPrefix(s.Text(), name); ok {
				out[i], err = strconv.ParseFloat(strings.TrimSpace(v), 64)
				seen[i] = err == nil
			}
		}
	}
	if !seen[0] || !seen[1] {
		t.Fatalf("%s's metrics lack the probe counters", node)
	}
	return out
}

func mib(b int64) float64 { return float64(b*10/(1<<20)) / 10 }
