// Package lab is what a newcomer runs first: a real pair on this machine
// with a kube-apiserver on each node, writers through Kine and through the
// Kubernetes API, the leader's power pulled, a readable timeline, and the
// old leader rejoining as follower. `make lab` runs it; `make bench`
// repeats the leader crash and prints RTO figures.
package lab

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"k8s.io/client-go/rest"

	"github.com/twonode-edge/twonode/bootstrap/localapi"
	"github.com/twonode-edge/twonode/e2e/apiserver"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
	"github.com/twonode-edge/twonode/e2e/workload"
)

// Dir names where the lab writes, so `make lab-down` finds it; Prefix
// (its namespaces) and subnet are the lab's reservation in harness.NetLab.
const Dir = "/var/tmp/twonode-lab"

var (
	Prefix = harness.NetLab.Prefix
	subnet = harness.NetLab.Subnet
)

// Options of a lab run.
type Options struct {
	Keep bool // leave the pair running for exploring, until ctx ends (Ctrl-C)
	Out  io.Writer
}

// Run is the lab: form, write, crash the leader, show the timeline, rejoin.
func Run(ctx context.Context, o Options) (err error) {
	out := o.Out
	opts, err := cluster.FromEnv(cluster.Options{Prefix: Prefix, Subnet: subnet, Dir: Dir, VIP: true})
	if err != nil {
		return err
	}
	apiBin, err := apiserver.APIServerBinary()
	if err != nil {
		return err
	}
	compBins := map[string]string{}
	for _, name := range []string{apiserver.ControllerManager, apiserver.Scheduler} {
		if compBins[name], err = apiserver.ComponentBinary(name); err != nil {
			return err
		}
	}
	_ = Down()
	c, err := cluster.New(opts)
	if err != nil {
		return err
	}
	defer func() {
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

	step(out, "starting a kube-apiserver on each node, against that node's own Kine (as k3s runs it), with the\n"+
		"    cluster's credentials shared and listening on the pair's address too, "+c.VIPAddr()+", which is on\n"+
		"    the leader's interface only")
	start = time.Now()
	apis, err := startAPIServers(ctx, c, apiBin)
	defer stopAPIServers(apis)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "both API servers ready in %s\n", since(start))
	step(out, "starting kube-controller-manager and kube-scheduler on each node against its API server, with\n"+
		"    leader election (a Lease each, renewed every 2 s, given up after 10 s without a renewal), as k3s does")
	start = time.Now()
	comps, err := startComponents(apis, compBins)
	defer stopComponents(comps)
	if err != nil {
		return err
	}
	if got := waitLeases(ctx, comps, start, time.Minute); len(got) < 2 {
		return fmt.Errorf("the controller manager and the scheduler did not both take their Lease within a minute (logs in %s/{a,b}/kube-apiserver)", Dir)
	}
	fmt.Fprintf(out, "both took their Lease in %s\n", since(start))

	ts, err := c.Net.NodeClients(2 * time.Second)
	if err != nil {
		return err
	}
	defer harness.CloseTargets(ts)
	w := harness.NewWriter("lab", ts...)
	kw, err := workload.New(workload.Config{Name: fmt.Sprintf("lab-%d", time.Now().Unix()),
		Endpoints: []*rest.Config{apis["a"].S.RestConfig(), apis["b"].S.RestConfig()}, Clients: 2, Keys: 8, Rate: 20, Duration: time.Hour})
	if err != nil {
		return err
	}
	vw, err := workload.NewAddressWriter(apis["a"].S.RestConfigAt(c.VIPAddr(), time.Second), "lab-through-the-pairs-address")
	if err != nil {
		return err
	}
	vips, err := c.VIPReader()
	if err != nil {
		return err
	}
	defer vips.Close()
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	go w.Run(wctx, 20)
	go kw.Run(wctx)
	go vw.Run(wctx)
	step(out, "writing 20 keys a second through Kine (etcd clients), 20 ConfigMap operations a second through\n"+
		"    the Kubernetes API (client-go, whichever API server answers), and one ConfigMap update every 50 ms\n"+
		"    through the pair's address as a kubeconfig would; synchronous replication: each acknowledged\n"+
		"    write is on both disks")
	sleep(ctx, 3*time.Second)

	step(out, "pulling the power on the leader, a (every process SIGKILLed, its API server too)")
	apis["a"].Down()
	for _, v := range comps["a"] {
		v.Down()
	}
	if err := c.PowerOff("a"); err != nil {
		return err
	}
	fault := time.Now() // every process of the node is dead now
	moved := watchVIP(ctx, vips, "b")
	st, err := c.WaitState(ctx, "b", 60*time.Second, "leader_alone", "leader")
	if err != nil {
		return err
	}
	// The timeline waits for its three first writes, not a fixed time: on
	// a busy machine the etcd clients' reconnect back-off once put the
	// first write through Kine past a fixed two seconds, while the API
	// server's had already gone through.
	var ack, vipAck time.Time
	var ok, vipOK bool
	for until := time.Now().Add(30 * time.Second); ; sleep(ctx, 100*time.Millisecond) {
		ack, ok = w.FirstAckAfter(fault)
		vipAck, vipOK = vw.FirstAckAfter(fault)
		if ok && vipOK && workload.APIRTO(kw.Ops(), fault) != nil || time.Now().After(until) || ctx.Err() != nil {
			break
		}
	}
	var extra []event
	taken, alone := moved()
	if !taken.IsZero() {
		extra = append(extra, event{taken, "b takes the pair's address " + c.VIPAddr() + " and announces it"})
	}
	if !alone.IsZero() {
		// The lab's a keeps its network namespace (its kernel) without
		// power: its copy lapses with its lifetime, which a machine
		// without power would not wait for.
		extra = append(extra, event{alone, "the pair's address is on b alone (a's copy lapsed: nothing renewed it)"})
	} else {
		extra = append(extra, event{text: "(the pair's address " + c.VIPAddr() + " has not moved to b)"})
	}
	if vipOK {
		extra = append(extra, event{vipAck, "first write accepted through the pair's address (b's kube-apiserver)"})
	} else {
		extra = append(extra, event{text: "(no write accepted through the pair's address yet)"})
	}
	timeline(out, fault, st, ack, ok, workload.APIRTO(kw.Ops(), fault), extra)
	show(ctx, out, c)
	// Before a comes back: its restarted controller manager and scheduler
	// would otherwise race b's for a Lease that a's old instances held
	// (found in CI: a's new scheduler took it first, 21 s after the cut).
	leases(ctx, out, comps, fault)

	step(out, "bringing a back: it finds a newer term on b and rejoins as follower")
	if err := c.Start("a"); err != nil {
		return err
	}
	apis["a"].Up()
	for _, v := range comps["a"] {
		v.Up()
	}
	if _, err := c.WaitState(ctx, "a", 90*time.Second, "follower"); err != nil {
		return err
	}
	if _, err := c.WaitState(ctx, "b", 30*time.Second, "leader"); err != nil {
		return err
	}
	sleep(ctx, time.Second)
	stopWriter()
	ops := kw.Wait()
	show(ctx, out, c)

	acked := w.Acked()
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lost, err := harness.Verify(vctx, ts[0].Client, acked)
	if err != nil {
		return fmt.Errorf("reading back through a: %w", err)
	}
	fmt.Fprintf(out, "\nthrough Kine: %d writes acknowledged, %d lost (read back through a, the returned node)\n", len(acked), len(lost))
	final, err := kw.ReadFinal(vctx)
	if err != nil {
		return fmt.Errorf("reading the ConfigMaps back: %w", err)
	}
	apiLost := workload.Lost(final, ops, workload.Archive{})
	fmt.Fprintf(out, "through the Kubernetes API: %d writes acknowledged, %d lost\n", len(workload.Acked(ops)), len(apiLost.Missing))
	if len(lost) > 0 || len(apiLost.Missing) > 0 {
		return fmt.Errorf("acknowledged writes lost: %d through Kine, %d through the API", len(lost), len(apiLost.Missing))
	}
	if o.Keep {
		// Every process of the lab is a child of this one (they die with
		// it, as a node's die with its power): the pair lives while it runs.
		explore(out, c)
		<-ctx.Done()
	}
	return nil
}

func explore(out io.Writer, c *cluster.Cluster) {
	fmt.Fprintf(out, "\nThe pair keeps running until you press Ctrl-C. Explore it from another terminal:\n"+
		"  TWONODE_SOCKET=%s/a/run/agent.sock bin/twonode status\n"+
		"  TWONODE_SOCKET=%s/b/run/agent.sock bin/twonode status\n"+
		"  ip netns exec %s-a etcdctl --endpoints 127.0.0.1:2379 get --prefix /e2e/lab/ --keys-only --limit 5\n"+
		"  ip netns exec %s-c curl -s --cacert %s/b/kube-apiserver/pki/ca.crt \\\n"+
		"      -H \"Authorization: Bearer $(cut -d, -f1 %s/b/kube-apiserver/pki/tokens.csv)\" \\\n"+
		"      'https://%s:%d/api/v1/namespaces/default/configmaps?labelSelector=%s'\n"+
		"  logs: %s/{a,b}/agent.log, %s/{a,b}/kube-apiserver/kube-{apiserver,controller-manager,scheduler}.log\n",
		Dir, Dir, Prefix, Prefix, Dir, Dir, c.Nodes["b"].Addr, apiserver.Port, workload.LabelKey, Dir, Dir)
}

// startAPIServers starts and supervises a kube-apiserver on each node and
// waits until both are ready.
func startAPIServers(ctx context.Context, c *cluster.Cluster, bin string) (map[string]*apiserver.Supervisor[*apiserver.Server], error) {
	apis := map[string]*apiserver.Supervisor[*apiserver.Server]{}
	pki, err := apiserver.NewPKI(filepath.Join(Dir, "pki"), c.Nodes["a"].Addr, c.Nodes["b"].Addr, c.VIPAddr())
	if err != nil {
		return apis, err
	}
	for _, n := range []string{"a", "b"} {
		node := c.Nodes[n]
		s, err := apiserver.Start(apiserver.Options{Bin: bin, NS: node.NS, Addr: node.Addr, Bind: "0.0.0.0", PKI: pki,
			Dir: filepath.Join(node.Dir, "kube-apiserver"), ClientNS: c.Net.NS("c")})
		if err != nil {
			return apis, err
		}
		apis[n] = apiserver.Supervise(s)
	}
	for n, v := range apis {
		if _, err := v.S.WaitReady(ctx, apiserver.DefaultReadyTimeout); err != nil {
			return apis, fmt.Errorf("kube-apiserver on %s: %w (log %s)", n, err, v.S.LogPath)
		}
	}
	return apis, nil
}

// startComponents starts and supervises each node's controller manager
// and scheduler against its API server.
func startComponents(apis map[string]*apiserver.Supervisor[*apiserver.Server], bins map[string]string) (map[string][]*apiserver.Supervisor[*apiserver.Component], error) {
	comps := map[string][]*apiserver.Supervisor[*apiserver.Component]{}
	for _, n := range []string{"a", "b"} {
		for _, name := range []string{apiserver.ControllerManager, apiserver.Scheduler} {
			cp, err := apiserver.StartComponent(name, bins[name], apis[n].S)
			if err != nil {
				return comps, err
			}
			comps[n] = append(comps[n], apiserver.Supervise(cp))
		}
	}
	return comps, nil
}

func stopComponents(comps map[string][]*apiserver.Supervisor[*apiserver.Component]) {
	for _, vs := range comps {
		for _, v := range vs {
			_ = v.Stop()
		}
	}
}

// firstRenewal is, from the components' own logs, the first time after t
// that name's Lease was taken or renewed, and by which node's instance.
func firstRenewal(comps map[string][]*apiserver.Supervisor[*apiserver.Component], name string, t time.Time) (time.Time, string) {
	var first time.Time
	by := ""
	for _, n := range []string{"a", "b"} {
		for _, v := range comps[n] {
			if v.S.Name != name {
				continue
			}
			rs, _ := v.S.Renewals()
			for _, r := range rs {
				if r.After(t) && (first.IsZero() || r.Before(first)) {
					first, by = r, n
				}
			}
		}
	}
	return first, by
}

// waitLeases waits (at most d) until each component's Lease has been
// taken or renewed after t, and returns when and by which node.
func waitLeases(ctx context.Context, comps map[string][]*apiserver.Supervisor[*apiserver.Component], t time.Time, d time.Duration) map[string]renewal {
	deadline := time.Now().Add(d)
	got := map[string]renewal{}
	for {
		for _, name := range []string{apiserver.ControllerManager, apiserver.Scheduler} {
			if at, by := firstRenewal(comps, name, t); !at.IsZero() {
				got[name] = renewal{at, by}
			}
		}
		if len(got) == 2 || time.Now().After(deadline) || ctx.Err() != nil {
			return got
		}
		sleep(ctx, 250*time.Millisecond)
	}
}

// renewal is when a Lease was taken or renewed, and by which node's
// instance.
type renewal struct {
	at time.Time
	by string
}

// leases says when each Lease was renewed again after the fault, and by
// which node's instance: one held on the powered-off node is taken by the
// other only once it expires.
func leases(ctx context.Context, out io.Writer, comps map[string][]*apiserver.Supervisor[*apiserver.Component], fault time.Time) {
	got := waitLeases(ctx, comps, fault, 30*time.Second)
	for _, name := range []string{apiserver.ControllerManager, apiserver.Scheduler} {
		e, ok := got[name]
		if !ok {
			fmt.Fprintf(out, "%s: its Lease was not renewed within 30 s of the power cut\n", name)
			continue
		}
		held := ""
		if e.at.Sub(fault) > 10*time.Second {
			held = " (a's instance held it: it had to expire first, 15 s after a's last renewal)"
		}
		fmt.Fprintf(out, "%s: Lease renewed again %s after the power cut, by its instance on %s%s\n",
			name, e.at.Sub(fault).Round(time.Millisecond), e.by, held)
	}
}

// stopAPIServers stops them before the pair goes (an API server outlives
// its Kine badly: it retries and logs for seconds).
func stopAPIServers(apis map[string]*apiserver.Supervisor[*apiserver.Server]) {
	for _, v := range apis {
		_ = v.Stop()
	}
}

// event is one line of the timeline; without a time, a line said after
// the timed ones.
type event struct {
	at   time.Time
	text string
}

func timeline(out io.Writer, fault time.Time, st localapi.StatusReport, ack time.Time, ok bool, apiRTO *int64, extra []event) {
	step(out, "timeline")
	evs := []event{{fault, "a loses power"}}
	if st.LastFailover > 0 {
		evs = append(evs, event{st.LastTransitionAt.Add(-st.LastFailover), "b: first failed probe of a"})
	}
	evs = append(evs, event{st.LastTransitionAt, "b: " + st.LastTransition})
	if ok {
		evs = append(evs, event{ack, "first write accepted (through b's Kine)"})
	} else {
		evs = append(evs, event{text: "(no write accepted yet)"})
	}
	if apiRTO != nil {
		evs = append(evs, event{fault.Add(time.Duration(*apiRTO) * time.Millisecond), "first write accepted through the Kubernetes API (b's kube-apiserver)"})
	} else {
		evs = append(evs, event{text: "(no write accepted through the Kubernetes API yet)"})
	}
	evs = append(evs, extra...)
	slices.SortStableFunc(evs, func(x, y event) int {
		switch {
		case x.at.IsZero() || y.at.IsZero():
			return cmp.Compare(btoi(x.at.IsZero()), btoi(y.at.IsZero()))
		}
		return x.at.Compare(y.at)
	})
	for _, e := range evs {
		if e.at.IsZero() {
			fmt.Fprintf(out, "  %s\n", e.text)
			continue
		}
		fmt.Fprintf(out, "  %+7dms  %s\n", e.at.Sub(fault).Milliseconds(), e.text)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
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
