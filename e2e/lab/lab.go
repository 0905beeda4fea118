// Package lab is what a newcomer runs first: a real pair on this machine,
// a writer, the leader's power pulled, a readable timeline, and the old
// leader rejoining as follower. `make lab` runs it; `make bench` repeats the
// leader crash and prints RTO figures.
package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/localapi"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// Prefix and Dir name what the lab creates, so `make lab-down` finds it.
const (
	Prefix = "tnlab"
	Dir    = "/var/tmp/twonode-lab"
	subnet = 99
)

// Options of a lab run.
type Options struct {
	Keep bool // leave the pair running for exploring
	Out  io.Writer
}

// Run is the lab: form, write, crash the leader, show the timeline, rejoin.
func Run(ctx context.Context, o Options) (err error) {
	out := o.Out
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
		if o.Keep && err == nil {
			fmt.Fprintf(out, "\nThe pair keeps running. Explore it:\n"+
				"  TWONODE_SOCKET=%s/a/run/agent.sock bin/twonode status\n"+
				"  TWONODE_SOCKET=%s/b/run/agent.sock bin/twonode status\n"+
				"  ip netns exec %s-a etcdctl --endpoints 127.0.0.1:2379 get --prefix /lab/ --keys-only\n"+
				"  logs: %s/{a,b}/agent.log\n"+
				"Remove everything with: make lab-down\n", Dir, Dir, Prefix, Dir)
			return
		}
		if cerr := c.Close(true); cerr != nil && err == nil {
			err = cerr
		}
		fmt.Fprintln(out, "\nlab removed (namespaces, processes, data)")
	}()

	step(out, "forming the pair: a leads first (name order), b takes a base backup and streams")
	start := time.Now()
	if err := c.Form(ctx, 90*time.Second); err != nil {
		return fmt.Errorf("forming: %w\n%s", err, c.Logs("b", 20))
	}
	fmt.Fprintf(out, "pair formed in %s\n", since(start))
	show(ctx, out, c)

	ts, err := c.Net.NodeClients(2 * time.Second)
	if err != nil {
		return err
	}
	defer harness.CloseTargets(ts)
	w := harness.NewWriter("lab", ts...)
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	go w.Run(wctx, 20)
	step(out, "writing 20 keys a second through Kine (synchronous replication: each acknowledged write is on both disks)")
	sleep(ctx, 3*time.Second)

	step(out, "pulling the power on the leader, a (every process SIGKILLed)")
	if err := c.PowerOff("a"); err != nil {
		return err
	}
	fault := time.Now() // every process of the node is dead now
	st, err := c.WaitState(ctx, "b", 60*time.Second, "leader_alone", "leader")
	if err != nil {
		return err
	}
	sleep(ctx, 2*time.Second)
	ack, ok := w.FirstAckAfter(fault)
	timeline(out, fault, st, ack, ok)
	show(ctx, out, c)

	step(out, "bringing a back: it finds a newer term on b and rejoins as follower")
	if err := c.Start("a"); err != nil {
		return err
	}
	if _, err := c.WaitState(ctx, "a", 90*time.Second, "follower"); err != nil {
		return err
	}
	if _, err := c.WaitState(ctx, "b", 30*time.Second, "leader"); err != nil {
		return err
	}
	sleep(ctx, time.Second)
	stopWriter()
	show(ctx, out, c)

	acked := w.Acked()
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lost, err := harness.Verify(vctx, ts[0].Client, acked)
	if err != nil {
		return fmt.Errorf("reading back through a: %w", err)
	}
	fmt.Fprintf(out, "\n%d writes acknowledged, %d lost (read back through a, the returned node)\n", len(acked), len(lost))
	if len(lost) > 0 {
		return fmt.Errorf("%d acknowledged writes lost", len(lost))
	}
	return nil
}

func timeline(out io.Writer, fault time.Time, st localapi.StatusReport, ack time.Time, ok bool) {
	step(out, "timeline")
	rel := func(t time.Time) string { return fmt.Sprintf("%+7dms", t.Sub(fault).Milliseconds()) }
	fmt.Fprintf(out, "  %s  a loses power\n", rel(fault))
	if st.LastFailover > 0 {
		fmt.Fprintf(out, "  %s  b: first failed probe of a\n", rel(st.LastTransitionAt.Add(-st.LastFailover)))
	}
	fmt.Fprintf(out, "  %s  b: %s\n", rel(st.LastTransitionAt), st.LastTransition)
	if ok {
		fmt.Fprintf(out, "  %s  first write accepted (through b's Kine)\n", rel(ack))
	} else {
		fmt.Fprintln(out, "  (no write accepted yet)")
	}
}

func show(ctx context.Context, out io.Writer, c *cluster.Cluster) {
	for _, n := range []string{"a", "b"} {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := c.Status(cctx, n)
		cancel()
		fmt.Fprintf(out, "\n-- twonode status on %s\n", n)
		if err != nil {
			fmt.Fprintf(out, "  (no answer: %v)\n", err)
			continue
		}
		localapi.FormatStatus(out, r)
	}
}

func step(out io.Writer, s string) { fmt.Fprintf(out, "\n==> %s\n", s) }

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Down removes a lab left running: processes, namespaces, data.
func Down() error {
	for _, n := range []string{"a", "b", "c"} {
		_ = harness.KillNamespace(Prefix+"-"+n, syscall.SIGKILL)
	}
	if err := harness.CleanupStale(Prefix); err != nil {
		return err
	}
	return os.RemoveAll(Dir)
}
