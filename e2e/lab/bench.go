package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// Bench crashes the leader runs times (alternating nodes: the crashed one
// rejoins before the next crash) and prints the RTO, fault to the first
// acknowledged write through the survivor's Kine, with the same run's
// pg_promote and Kine ready times from the survivor's log.
func Bench(ctx context.Context, runs int, out io.Writer) (err error) {
	opts, err := cluster.FromEnv(cluster.Options{Prefix: Prefix, Subnet: subnet, Dir: Dir})
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
	ts, err := c.Net.NodeClients(2 * time.Second)
	if err != nil {
		return err
	}
	defer harness.CloseTargets(ts)

	var rto, promote, kineReady []time.Duration
	leader, follower := "a", "b"
	for i := 0; i < runs; i++ {
		w := harness.NewWriter(fmt.Sprintf("bench-%d", i), ts...)
		wctx, stop := context.WithCancel(ctx)
		go w.Run(wctx, 50)
		time.Sleep(time.Second)
		if err := c.PowerOff(leader); err != nil {
			stop()
			return err
		}
		fault := time.Now() // every process of the node is dead now
		if _, err := c.WaitState(ctx, follower, 60*time.Second, "leader_alone"); err != nil {
			stop()
			return err
		}
		time.Sleep(time.Second)
		stop()
		ack, ok := w.FirstAckAfter(fault)
		if !ok {
			return fmt.Errorf("run %d: no write acknowledged after the crash", i)
		}
		p, k := lastPromoteAndKine(filepath.Join(c.Nodes[follower].Dir, "agent.log"))
		rto, promote, kineReady = append(rto, ack.Sub(fault)), append(promote, p), append(kineReady, k)
		fmt.Fprintf(out, "run %d: %s crashed, RTO %s (pg_promote %s, kine ready %s)\n", i+1, leader, ack.Sub(fault).Round(time.Millisecond), p, k)
		if err := c.Start(leader); err != nil {
			return err
		}
		if _, err := c.WaitState(ctx, leader, 90*time.Second, "follower"); err != nil {
			return err
		}
		if _, err := c.WaitState(ctx, follower, 30*time.Second, "leader"); err != nil {
			return err
		}
		leader, follower = follower, leader
	}
	for _, s := range []struct {
		name string
		d    []time.Duration
	}{{"leader_crash_rto", rto}, {"pg_promote", promote}, {"kine_ready", kineReady}} {
		b, _ := json.Marshal(map[string]any{"metric": s.name, "runs": len(s.d),
			"median_ms": pct(s.d, 50).Milliseconds(), "p95_ms": pct(s.d, 95).Milliseconds()})
		fmt.Fprintf(out, "RESULT %s\n", b)
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
