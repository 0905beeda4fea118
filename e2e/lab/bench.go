package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/twonode-edge/twonode/e2e/apiserver"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
	"github.com/twonode-edge/twonode/e2e/results"
)

// BenchOptions of `make bench`'s leader crashes.
type BenchOptions struct {
	Runs int
	// SVG is where the stacked bar of the phases is drawn ("": nowhere).
	SVG string
}

// Bench crashes the leader o.Runs times (alternating nodes: the crashed
// one rejoins before the next crash) with a kube-apiserver on each node,
// and prints when each phase of the take-over ended after the power cut:
// the survivor's agent's own record of its steps ("failover timeline"),
// then the first acknowledged write through the survivor's Kine and
// through its API server, and the first event its Kine's watch delivered
// of a write sent after the cut. Figures are printed, never asserted.
func Bench(ctx context.Context, o BenchOptions, out io.Writer) (err error) {
	opts, err := cluster.FromEnv(cluster.Options{Prefix: Prefix, Subnet: subnet, Dir: Dir})
	if err != nil {
		return err
	}
	apiBin, err := apiserver.APIServerBinary()
	if err != nil {
		return err
	}
	_ = Down()
	c, err := cluster.New(opts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(out, "keeping %s for inspection (logs in {a,b}/agent.log); `make lab-down` removes it\n", Dir)
			_ = c.Close(false)
			return
		}
		_ = c.Close(true)
	}()
	if err := c.Form(ctx, 90*time.Second); err != nil {
		return err
	}
	apis, err := startAPIServers(ctx, c, apiBin)
	defer stopAPIServers(apis)
	if err != nil {
		return err
	}
	ts, err := c.Net.NodeClients(2 * time.Second)
	if err != nil {
		return err
	}
	defer harness.CloseTargets(ts)
	node := map[string]harness.Target{ts[0].Node: ts[0], ts[1].Node: ts[1]}

	var runs []map[string]time.Time
	var rto, kineReady []time.Duration
	leader, follower := "a", "b"
	for i := 0; i < o.Runs; i++ {
		cs, err := kubernetes.NewForConfig(apis[follower].S.RestConfig())
		if err != nil {
			return err
		}
		r, err := crashOnce(ctx, c, i, leader, follower, node[follower], cs, func() { apis[leader].Down() })
		if err != nil {
			return err
		}
		_, k := lastPromoteAndKine(filepath.Join(c.Nodes[follower].Dir, "agent.log"))
		runs, kineReady = append(runs, r), append(kineReady, k)
		rto = append(rto, r["first_write_kine"].Sub(r["fault"]))
		fmt.Fprintf(out, "run %d: %s crashed: %s\n", i+1, leader, oneRun(r))
		if err := c.Start(leader); err != nil {
			return err
		}
		apis[leader].Up()
		if _, err := c.WaitState(ctx, leader, 90*time.Second, "follower"); err != nil {
			return err
		}
		if _, err := c.WaitState(ctx, follower, 30*time.Second, "leader"); err != nil {
			return err
		}
		leader, follower = follower, leader
	}
	return benchReport(out, o, runs, rto, kineReady)
}

// crashOnce writes through the follower's Kine and API server and watches
// its Kine, powers the leader off, waits for the take-over and for all
// three to go through again, and returns every phase's time.
func crashOnce(ctx context.Context, c *cluster.Cluster, i int, leader, follower string, kine harness.Target, cs *kubernetes.Clientset, apiDown func()) (map[string]time.Time, error) {
	prefix := fmt.Sprintf("/bench/%d/", i)
	key := func(n int) string { return fmt.Sprintf("%s%08d", prefix, n) }
	kw := &prober{every: 20 * time.Millisecond, timeout: 2 * time.Second, write: func(ctx context.Context, n int) error {
		_, err := kine.Client.Put(ctx, key(n), "x")
		return err
	}}
	cms := cs.CoreV1().ConfigMaps("default")
	name := func(n int) string { return fmt.Sprintf("bench-%d-%08d", i, n) }
	aw := &prober{every: 20 * time.Millisecond, timeout: 2 * time.Second, write: func(ctx context.Context, n int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name(n)}, Data: map[string]string{"n": fmt.Sprint(n)}}
		_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // an earlier try's create went through: acknowledged now
		}
		return err
	}}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	watch := watchConfigMaps(wctx, cms)
	go kw.run(wctx)
	go aw.run(wctx)
	time.Sleep(time.Second)
	before := time.Now().Add(-time.Second)
	if _, ok := watch.firstAfter(aw, name, before); !ok {
		return nil, fmt.Errorf("run %d: no write through %s's Kine seen by its watch before the crash", i, follower)
	}
	if _, ok := aw.firstAckAfter(before); !ok {
		return nil, fmt.Errorf("run %d: no write through %s's API server before the crash", i, follower)
	}
	apiDown()
	if err := c.PowerOff(leader); err != nil {
		return nil, err
	}
	fault := time.Now() // every process of the node is dead now
	if _, err := c.WaitState(ctx, follower, 60*time.Second, "leader_alone"); err != nil {
		return nil, err
	}
	r, err := agentTimeline(filepath.Join(c.Nodes[follower].Dir, "agent.log"))
	if err != nil {
		return nil, err
	}
	r["fault"] = fault
	diagnosed := false
	for until := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		k, ok1 := kw.firstAckAfter(fault)
		a, ok2 := aw.firstAckAfter(fault)
		w, ok3 := watch.firstAfter(aw, name, fault)
		if ok1 && ok2 && (ok3 || time.Since(fault) > 30*time.Second) {
			r["first_write_kine"], r["first_write_api"] = k, a
			if ok3 {
				r["watch_resumed"] = w
			} else {
				fmt.Printf("run %d: the watch through %s's API server learnt nothing written after the crash within 30 s (%s)\n", i, follower, watch.describe(fault))
			}
			return r, nil
		}
		if !diagnosed && time.Since(fault) > 10*time.Second {
			diagnosed = true
			fmt.Printf("run %d: 10 s after the crash: Kine %v, API server %v, watch %v; %s's PostgreSQL:%s\n", i, ok1, ok2, ok3, follower, activity(ctx, c, follower))
		}
		if time.Now().After(until) || ctx.Err() != nil {
			return nil, fmt.Errorf("run %d: within 60 s of the crash: a write through Kine %v, through the API server %v, a watch event %v (%s)", i, ok1, ok2, ok3, watch.describe(fault))
		}
	}
}

func oneRun(r map[string]time.Time) string {
	ms := func(m string) string {
		if at, ok := r[m]; ok {
			return fmt.Sprint(at.Sub(r["fault"]).Milliseconds())
		}
		return "?"
	}
	return fmt.Sprintf("detected %s, promoted %s, Kine ready %s, first write through Kine %s, through the API server %s, watch %s ms",
		ms("detected"), ms("promoted"), ms("kine_ready"), ms("first_write_kine"), ms("first_write_api"), ms("watch_resumed"))
}

// benchReport prints the phases' table and the RESULT lines, and draws
// the stacked bar.
func benchReport(out io.Writer, o BenchOptions, runs []map[string]time.Time, rto, kineReady []time.Duration) error {
	write := func(table string, v map[string]any) { _ = results.Write(out, table, "", v) }
	stats := summarize(runs)
	fmt.Fprintf(out, "\nphase ends after the power cut, over %d runs:\n", len(runs))
	for _, s := range stats {
		fmt.Fprintf(out, "  %-40s median %5d ms   p95 %5d ms\n", s.label, s.median.Milliseconds(), s.p95.Milliseconds())
		write(results.FailoverPhases, map[string]any{"phase": s.mark, "label": s.label, "runs": s.runs,
			"median_ms": s.median.Milliseconds(), "p95_ms": s.p95.Milliseconds()})
	}
	promote := between(runs, "promote_requested", "promoted")
	detToWrite := between(runs, "detected", "first_write_kine")
	apiGap := between(runs, "first_write_kine", "first_write_api")
	for _, s := range []struct {
		name string
		d    []time.Duration
	}{{"leader_crash_rto", rto}, {"pg_promote", promote}, {"kine_ready", kineReady},
		{"detection_to_first_write", detToWrite}, {"api_after_kine", apiGap},
		{"detection_to_api_write", between(runs, "detected", "first_write_api")}} {
		write(results.LeaderCrash, map[string]any{"metric": s.name, "runs": len(s.d),
			"median_ms": pct(s.d, 50).Milliseconds(), "p95_ms": pct(s.d, 95).Milliseconds()})
	}
	limit := 2 * (pct(promote, 50) + pct(kineReady, 50))
	fmt.Fprintf(out, "detection to the first write through Kine: median %d ms, p95 %d ms; twice (pg_promote + Kine ready) %d ms\n",
		pct(detToWrite, 50).Milliseconds(), pct(detToWrite, 95).Milliseconds(), limit.Milliseconds())
	fmt.Fprintf(out, "the first write through the API server after the first through Kine: median %d ms, p95 %d ms\n",
		pct(apiGap, 50).Milliseconds(), pct(apiGap, 95).Milliseconds())
	resumed := 0
	for _, r := range runs {
		if _, ok := r["watch_resumed"]; ok {
			resumed++
		}
	}
	fmt.Fprintf(out, "the watch through the survivor's API server resumed within 30 s in %d of %d runs\n", resumed, len(runs))
	write(results.WatchResumed, map[string]any{"metric": "watch_resumed_within_30s", "runs": len(runs), "resumed": resumed})
	if o.SVG != "" {
		return os.WriteFile(o.SVG, drawPhases(stats, len(runs)), 0o644)
	}
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

var (
	promoteRe = regexp.MustCompile(`msg="postgresql promoted".*pg_promote=(\S+)`)
	kineRe    = regexp.MustCompile(`msg="kine ready".*took=(\S+)`)
)

// lastPromoteAndKine reads the latest pg_promote and Kine ready durations
// the agent logged.
func lastPromoteAndKine(path string) (time.Duration, time.Duration) {
	b, _ := os.ReadFile(path)
	last := func(re *regexp.Regexp) time.Duration {
		m := re.FindAllSubmatch(b, -1)
		if len(m) == 0 {
			return 0
		}
		d, _ := time.ParseDuration(string(m[len(m)-1][1]))
		return d
	}
	return last(promoteRe), last(kineRe)
}
