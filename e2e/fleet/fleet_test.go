package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/e2e/results"
)

// The sizes. The defaults are the short variant the test suite runs
// (about a minute); `make fleet` (scripts/fleet.sh) passes the full ones.
var (
	pairsFlag   = flag.Int("fleet.pairs", 1000, "healthy pairs, each two nodes reading the witness every 30 s (witness.SteadyRead)")
	forFlag     = flag.Duration("fleet.for", 30*time.Second, "how long the healthy fleet is measured")
	sweepFlag   = flag.String("fleet.sweep", "10,50,100,200", "numbers of pairs whose link fails at one moment, one race each, in this order")
	poolFlag    = flag.Int("fleet.pool", 200, "real TLS connections (clientv3 clients) the simulated nodes share")
	membersFlag = flag.Int("fleet.members", 3, "etcd members of the witness")
	svgFlag     = flag.String("fleet.svg", "", "where to draw the decision latency picture (make fleet: images/fleet-latency.svg)")
	redrawFlag  = flag.String("fleet.redraw", "", "instead of running, draw -fleet.svg from the RESULT lines of a run's log (make fleet keeps /tmp/twonode-fleet.log)")
)

// TestFleet measures a fleet on one witness and checks what could go
// wrong for a real reason, never how fast (speed is printed in RESULT
// lines, for docs/results.md):
//   - a healthy fleet writes nothing, and every read answers its pair's
//     own record;
//   - when pairs fail at once, every pair decides, and decides right:
//     exactly one winner, answered with its term, the loser answered with
//     the winner's, the witness recording that (Judge).
//
// The healthy fleet keeps reading during the races, so that they are
// decided under the load of the rest of the fleet.
func TestFleet(t *testing.T) {
	if *redrawFlag != "" {
		if err := redraw(*redrawFlag, *svgFlag); err != nil {
			t.Fatal(err)
		}
		return
	}
	sweep, err := parseSweep(*sweepFlag)
	if err != nil {
		t.Fatal(err)
	}
	w, err := StartWitness(t.TempDir(), *membersFlag)
	if err != nil {
		t.Fatal(err) // a missing etcd binary fails the suite, as any missing prerequisite does
	}
	defer w.Close()
	defer func() {
		if t.Failed() {
			t.Log(w.Logs())
		}
	}()
	ctx := context.Background()
	pool, err := OpenPool(ctx, w.Config, *poolFlag)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	// --- the healthy fleet ----------------------------------------------
	healthy := Pairs("healthy", *pairsFlag)
	if err := Seed(ctx, pool[0], healthy); err != nil {
		t.Fatal(err)
	}
	before := appliedScrape(t, w)
	sim0, t0 := simCPU(), time.Now()
	rctx, stop := context.WithCancel(ctx)
	readers := StartReaders(rctx, pool, w.Config, healthy)
	defer func() { stop(); readers.Wait() }()
	time.Sleep(*forFlag)
	h := readers.Cut()
	after, window, sim := scrape(t, w), time.Since(t0), simCPU()-sim0
	writes, entries, grants, etcdCPU := 0.0, 0.0, 0.0, 0.0
	for i := range after {
		writes = max(writes, delta(before[i], after[i], mPuts)+delta(before[i], after[i], mDeletes))
		entries = max(entries, delta(before[i], after[i], mProposals))
		grants = max(grants, delta(before[i], after[i], mGrants))
		etcdCPU += delta(before[i], after[i], mCPU)
	}
	reads := len(h.Latencies) + h.Errors + h.Wrong
	write(results.FleetHealthy, "pairs", len(healthy), "nodes", 2*len(healthy), "pool", len(pool), "members", len(w.Members),
		"seconds", round(window.Seconds(), 1), "reads", reads, "reads_per_s", round(float64(reads)/window.Seconds(), 1),
		"read_errors", h.Errors, "wrong_reads", h.Wrong, "read_p50_ms", ms(h.Latencies.Quantile(0.5)), "read_p99_ms", ms(h.Latencies.Quantile(0.99)),
		"writes", writes, "writes_per_s", round(writes/window.Seconds(), 1), "raft_entries", entries, "lease_grants", grants,
		"etcd_cpu_s", round(etcdCPU, 2), "sim_cpu_s", round(sim.Seconds(), 2))
	lead := leader(after)
	for i, m := range w.Members {
		cpu := delta(before[i], after[i], mCPU)
		write(results.FleetEtcdMember, "member", m.Name, "leader", i == lead, "pairs", len(healthy), "pool", len(pool),
			"cpu_s", round(cpu, 2), "cpu_pct", round(100*cpu/window.Seconds(), 1), "rss_mib", round(after[i][mRSS]/(1<<20), 1),
			"ranges_per_s", round(delta(before[i], after[i], mRanges)/window.Seconds(), 1))
	}
	if writes != 0 {
		t.Errorf("the healthy fleet wrote %v keys to the witness in %v: a steady pair must write nothing", writes, window.Round(time.Second))
	}
	if h.Wrong != 0 {
		t.Errorf("%d of %d reads answered another record than the pair's own, first: %s", h.Wrong, reads, h.FirstBad)
	}
	if h.Errors > 0 {
		t.Logf("%d reads failed (not asserted: a slow answer is a speed), first: %s", h.Errors, h.FirstBad)
	}

	// --- the races ------------------------------------------------------
	var points []Point
	for i, k := range sweep {
		group := fmt.Sprintf("race-%d-%d", i, k) // a size may come again
		ps := Pairs(group, k)
		if err := Seed(ctx, pool[0], ps); err != nil {
			t.Fatal(err)
		}
		before, sim0 := scrape(t, w), simCPU()
		run := Race(ctx, pool, w.Config, ps)
		after, sim := scrape(t, w), simCPU()-sim0
		run.Release()
		v, err := Judge(ctx, pool[0], group, run)
		if err != nil {
			t.Fatal(err)
		}
		Revoke(ctx, pool, run)
		var writes, etcdCPU float64
		for i := range after {
			writes = max(writes, delta(before[i], after[i], mPuts)+delta(before[i], after[i], mDeletes))
			etcdCPU += delta(before[i], after[i], mCPU)
		}
		p := Point{Failures: k, P50: v.Decision.Quantile(0.5), P99: v.Decision.Quantile(0.99)}
		points = append(points, p)
		write(results.FleetRace, "failures", k, "background_pairs", len(healthy), "pool", len(pool),
			"decided", v.Decided, "winners", v.Winners, "failed_swaps", v.FailedSwaps, "conceded_on_read", v.ConcededOnRead, "after_lapse", v.AfterLapse, "wrong", v.Wrong,
			"retried", v.Retried, "decision_p50_ms", ms(p.P50), "decision_p99_ms", ms(p.P99), "decision_max_ms", ms(v.Decision.Quantile(1)),
			"delay_p50_ms", ms(v.Delay.Quantile(0.5)), "delay_p99_ms", ms(v.Delay.Quantile(0.99)),
			"read_p50_ms", ms(v.Read.Quantile(0.5)), "read_p99_ms", ms(v.Read.Quantile(0.99)),
			"grant_p50_ms", ms(v.Grant.Quantile(0.5)), "grant_p99_ms", ms(v.Grant.Quantile(0.99)),
			"claim_p50_ms", ms(v.Claim.Quantile(0.5)), "claim_p99_ms", ms(v.Claim.Quantile(0.99)),
			"all_decided_ms", ms(run.Took), "writes", writes, "etcd_cpu_s", round(etcdCPU, 2), "sim_cpu_s", round(sim.Seconds(), 2))
		if v.Wrong != 0 {
			t.Errorf("%d simultaneous failures: %d of %d pairs decided wrongly: %s", k, v.Wrong, k, strings.Join(v.WrongWhy, "; "))
		}
		if v.Retried > 0 {
			t.Logf("%d simultaneous failures: %d requests failed and were tried again a tick later (not asserted), first: %v", k, v.Retried, v.FirstErr)
		}
		if v.Decided != k {
			t.Errorf("%d simultaneous failures: only %d pairs decided within %v", k, v.Decided, giveUp)
		}
		time.Sleep(time.Second) // the revocations' deletions applied before the next race
	}

	stop()
	readers.Wait()
	if rest := readers.Cut(); rest.Wrong != 0 {
		t.Errorf("during the races, %d reads of healthy pairs answered another record than their own, first: %s", rest.Wrong, rest.FirstBad)
	}
	if *svgFlag != "" {
		if err := draw(*svgFlag, points, len(w.Members), len(healthy), len(pool)); err != nil {
			t.Fatal(err)
		}
	}
}

// draw writes the picture of a run to path.
func draw(path string, points []Point, members, pairs, pool int) error {
	caption := fmt.Sprintf("%d-member etcd on loopback (TLS, client certificates), %d other pairs reading meanwhile, %d shared connections, %d cores",
		members, pairs, pool, runtime.NumCPU())
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteSVG(f, points, caption); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// redraw draws the picture from the RESULT lines of a run's log, as that
// run drew it (a change to the drawing needs no new run).
func redraw(log, path string) error {
	data, err := os.ReadFile(log)
	if err != nil {
		return err
	}
	var healthy struct{ Members int }
	if rows, err := results.Read(bytes.NewReader(data), results.FleetHealthy); err != nil {
		return err
	} else if len(rows) > 0 {
		if err := json.Unmarshal(rows[len(rows)-1], &healthy); err != nil {
			return err
		}
	}
	races, err := results.Read(bytes.NewReader(data), results.FleetRace)
	if err != nil {
		return err
	}
	if len(races) == 0 {
		return fmt.Errorf("%s: no fleet-race RESULT line", log)
	}
	var points []Point
	var pairs, pool int
	for _, line := range races {
		var r struct {
			Failures        int
			BackgroundPairs int `json:"background_pairs"`
			Pool            int
			P50             float64 `json:"decision_p50_ms"`
			P99             float64 `json:"decision_p99_ms"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		points = append(points, Point{Failures: r.Failures, P50: time.Duration(r.P50 * float64(time.Millisecond)), P99: time.Duration(r.P99 * float64(time.Millisecond))})
		pairs, pool = r.BackgroundPairs, r.Pool
	}
	return draw(path, points, healthy.Members, pairs, pool)
}

// write prints a RESULT line of table (results.Write) from the key-value
// pairs kv.
func write(table string, kv ...any) {
	figures := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		figures[kv[i].(string)] = kv[i+1]
	}
	if err := results.Write(os.Stdout, table, "", figures); err != nil {
		panic(err) // only numbers, strings and bools: a programming error
	}
}

func scrape(t *testing.T, w *Witness) []map[string]float64 {
	t.Helper()
	got, err := w.Scrape(context.Background(), allMetrics...)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// appliedScrape scrapes once every member has applied the same writes:
// a follower applies the seed's last entries after the leader
// acknowledged them, and counting those as the healthy fleet's writes
// failed CI once (100 puts, 0 raft proposals, in the window).
func appliedScrape(t *testing.T, w *Witness) []map[string]float64 {
	t.Helper()
	written := func(m map[string]float64) float64 { return m[mPuts] + m[mDeletes] }
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := scrape(t, w)
		lo, hi := written(got[0]), written(got[0])
		for _, m := range got[1:] {
			lo, hi = min(lo, written(m)), max(hi, written(m))
		}
		if lo == hi || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// simCPU is the CPU time this process (the simulated fleet) has used: it
// shares the machine's cores with the witness.
func simCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func parseSweep(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, err := strconv.Atoi(f)
		if err != nil || k < 1 {
			return nil, fmt.Errorf("-fleet.sweep: %q is not a number of pairs", f)
		}
		out = append(out, k)
	}
	return out, nil
}
