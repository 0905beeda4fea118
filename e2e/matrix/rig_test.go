package matrix

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	archivefile "github.com/twonode-edge/twonode/bootstrap/archive"
	"github.com/twonode-edge/twonode/e2e/apiserver"
	"github.com/twonode-edge/twonode/e2e/check"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
	"github.com/twonode-edge/twonode/e2e/results"
	"github.com/twonode-edge/twonode/e2e/workload"
)

// rig is one scenario: a pair, an API server per node, the workload, the
// watch checker and the state monitor.
type rig struct {
	t          *testing.T
	name       string
	c          *cluster.Cluster
	api        map[string]*apiserver.Supervisor[*apiserver.Server]
	comps      map[string][]*apiserver.Supervisor[*apiserver.Component] // the node's controller manager and scheduler
	eps        []*rest.Config                                           // a, b
	addr       *workload.AddressWriter                                  // a client of the pair's address, as a kubeconfig naming it
	w          *workload.Workload
	wc         *workload.WatchChecker
	mon        *monitor
	cancel     context.CancelFunc
	finished   bool
	multiFault bool
	cutOff     string
	// archives: the split-brain archives the nodes wrote (set by check);
	// their writers lost a split (see check.Losers).
	archives []check.ArchiveFile
	split    *check.Split    // set by check when the whole history was not linearizable
	res      workload.Result // set by finish
	wire     *wire           // the link's capture (options.capture)
}

// options of a rig beyond the defaults.
type options struct {
	clockOffset map[string]time.Duration
	dataSize    string
	slowDisk    bool // the nodes' PostgreSQL can be slowed (cluster.SlowDisk)
	rate        float64
	noWorkload  bool // the scenario drives its own clients
	multiFault  bool // several faults in a row: a lost lease is reported, not failed
	// noBetter: the fault leaves neither node able to do better (both
	// disks slow: every write waits for both): a lost lease is reported,
	// not failed.
	noBetter bool
	// cutOff: a node the fault keeps from any datastore for longer than
	// the renew deadline (the follower of a long partition, a witness
	// deciding for the leader): its components cannot renew, and lose
	// their leases as they would on any Kubernetes; only losses elsewhere
	// fail the scenario.
	cutOff  string
	witness bool // the pair decides with a witness (a three-member etcd cluster)
	capture bool // record the pair's link and check nothing crossed it in clear (wire)
}

// newRig forms the pair (a leads), starts both API servers, the watch and
// the workload, and lets the workload run for 2 s before it returns.
func newRig(t *testing.T, name string, net harness.Net, o options) *rig {
	t.Helper()
	bin, err := apiserver.APIServerBinary()
	if err != nil {
		t.Fatal(err)
	}
	copts, err := cluster.FromEnv(cluster.Options{
		Prefix: net.Prefix, Subnet: net.Subnet,
		Dir:         filepath.Join("/var/tmp/twonode-e2e", "matrix-"+name),
		ClockOffset: o.clockOffset, DataSize: o.dataSize, Witness: o.witness, SlowDisk: o.slowDisk,
		VIP: true, // every scenario measures how the address follows the leader
	})
	if err != nil {
		t.Fatal(err)
	}
	c := cluster.ForTestWith(t, copts)
	r := &rig{t: t, name: name, c: c, multiFault: o.multiFault || o.noBetter, cutOff: o.cutOff, api: map[string]*apiserver.Supervisor[*apiserver.Server]{},
		comps: map[string][]*apiserver.Supervisor[*apiserver.Component]{}}

	// Both API servers start together (each takes seconds on a busy
	// machine), with the cluster's credentials shared and listening on the
	// pair's address too while their node holds it, as k3s's servers.
	pki, err := apiserver.NewPKI(filepath.Join(copts.Dir, "pki"), c.Nodes["a"].Addr, c.Nodes["b"].Addr, c.VIPAddr())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, n := range []string{"a", "b"} {
		node := c.Nodes[n]
		s, err := apiserver.Start(apiserver.Options{
			Bin: bin, NS: node.NS, Addr: node.Addr, Bind: "0.0.0.0", PKI: pki,
			Dir: filepath.Join(node.Dir, "kube-apiserver"), ClientNS: c.Net.NS("c"),
		})
		if err != nil {
			t.Fatal(err)
		}
		sup := apiserver.Supervise(s)
		r.api[n] = sup
		t.Cleanup(func() {
			if err := sup.Stop(); err != nil {
				t.Logf("stopping kube-apiserver on %s: %v", n, err)
			}
		})
		harness.DumpLogsOnFailure(t, 30, s.LogPath)
		r.eps = append(r.eps, s.RestConfig())
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.WaitReady(context.Background(), apiserver.DefaultReadyTimeout)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	r.startControlPlane()
	if r.mon, err = startMonitor(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.mon.Stop)
	if o.capture {
		r.startWire()
	}

	rate := o.rate
	if rate == 0 {
		rate = 40
	}
	r.w, err = workload.New(workload.Config{Name: name, Endpoints: r.eps, Clients: 4, Keys: 8, Rate: rate, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	t.Cleanup(cancel)
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	r.wc, err = workload.StartWatch(wctx, r.eps, workload.WatchOptions{
		LabelSelector: r.w.LabelSelector(), StallTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.wc.Stop() }) // a test that failed early must not leave its watch running
	if r.addr, err = workload.NewAddressWriter(r.api["a"].S.RestConfigAt(c.VIPAddr(), time.Second), "through-the-pairs-address"); err != nil {
		t.Fatal(err)
	}
	go r.addr.Run(ctx)
	if !o.noWorkload {
		go r.w.Run(ctx)
		time.Sleep(2 * time.Second)
	}
	return r
}

// startControlPlane starts each node's controller manager and scheduler
// against its API server, as k3s does, and the watch of their Leases.
func (r *rig) startControlPlane() {
	t := r.t
	t.Helper()
	for _, name := range []string{apiserver.ControllerManager, apiserver.Scheduler} {
		bin, err := apiserver.ComponentBinary(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"a", "b"} {
			c, err := apiserver.StartComponent(name, bin, r.api[n].S)
			if err != nil {
				t.Fatal(err)
			}
			sup := apiserver.Supervise(c)
			r.comps[n] = append(r.comps[n], sup)
			t.Cleanup(func() {
				if err := sup.Stop(); err != nil {
					t.Logf("stopping %s on %s: %v", name, n, err)
				}
			})
			harness.DumpLogsOnFailure(t, 20, c.LogPath)
		}
	}
}

// powerOff cuts a node's power: every process, its API server included.
func (r *rig) powerOff(n string) {
	r.t.Helper()
	r.api[n].Down()
	for _, c := range r.comps[n] {
		c.Down()
	}
	if err := r.c.PowerOff(n); err != nil {
		r.t.Fatal(err)
	}
}

// powerOn boots the node: its agent and its API server start.
func (r *rig) powerOn(n string) {
	r.t.Helper()
	if err := r.c.Start(n); err != nil {
		r.t.Fatal(err)
	}
	r.api[n].Up()
	for _, c := range r.comps[n] {
		c.Up()
	}
}

// kill sends SIGKILL to the node's processes whose name starts with comm.
func (r *rig) kill(n, comm string) {
	r.t.Helper()
	pids, err := harness.PidsInNetns(r.c.Nodes[n].NS)
	if err != nil {
		r.t.Fatal(err)
	}
	killed := 0
	for _, pid := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.HasPrefix(strings.TrimSpace(string(b)), comm) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	if killed == 0 {
		r.t.Fatalf("no %s process on %s", comm, n)
	}
}

// settle waits until the pair has been a synchronous leader and follower
// for settledFor, and returns the leader.
func (r *rig) settle(d time.Duration) string {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if r.mon.Settled() {
			return r.mon.Leader()
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.t.Fatalf("the pair did not settle into a synchronous leader and follower within %s", d)
	return ""
}

// finish settles the pair, stops the workload and checks and reports the
// outcome; fault is when the fault began.
func (r *rig) finish(fault time.Time) workload.Result {
	r.t.Helper()
	r.settle(3 * time.Minute)
	if r.wire != nil {
		r.checkWire()
	}
	time.Sleep(time.Second)
	r.cancel()
	ops := r.w.Wait()
	r.res = r.check(fault, ops)
	r.report(r.res)
	return r.res
}

// whereNow says, in one line for a failure's message, what each agent
// reports and whether each node's API server answers its health check:
// what the log of a CI run needs to tell a stuck server from a stuck pair.
func (r *rig) whereNow() string {
	var parts []string
	for i, n := range []string{"a", "b"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := r.c.Status(ctx, n)
		agent := fmt.Sprintf("%s %s term %d replication %s pg_up %v kine %s", st.State, st.Role, st.Term, st.Replication, st.PGUp, st.KineEndpoint)
		if err != nil {
			agent = "agent: " + err.Error()
		}
		health := "ok"
		if cs, err := kubernetes.NewForConfig(r.eps[i]); err != nil {
			health = err.Error()
		} else if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
			health = err.Error()
		}
		cancel()
		parts = append(parts, fmt.Sprintf("%s: %s; API server /readyz: %s", n, agent, health))
	}
	return strings.Join(parts, " | ")
}

// check reads the final state and judges the history.
func (r *rig) check(fault time.Time, ops []workload.Op) workload.Result {
	t := r.t
	t.Helper()
	r.finished = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var final map[string]string
	var err error
	for i := 0; i < 60; i++ { // an API server may be restarting still
		if final, err = r.w.ReadFinal(ctx); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatalf("reading the final state: %v; %s", err, r.whereNow())
	}
	h := check.History{Scenario: r.name, Fault: fault, Final: final, Samples: r.mon.snapshot()}
	h.Archive, h.ArchivedRows, h.Archives = r.readArchives()
	r.archives = h.Archives
	h.Ops = r.w.Ops() // with the final reads
	ops = h.Ops
	lost := h.Lost()
	for _, op := range lost.Unexplained {
		t.Errorf("acknowledged write lost and not archived: %s %s=%q (client %d via %s, acked at %s)",
			op.Kind, op.Key, op.Value, op.Client, check.NodeOf(op.Endpoint), op.Return.Format("15:04:05.000"))
	}
	dir := harness.ArtifactDir(t)
	v, err := h.Linearizability(workload.CheckOptions{Timeout: 2 * time.Minute, VisualizePath: filepath.Join(dir, "linearizability.html")})
	if err != nil {
		t.Log(err)
	}
	lin := v.Whole
	if !lin.Linearizable() {
		_ = workload.WriteHistory(filepath.Join(dir, "history.jsonl"), ops)
		if v.Split == nil {
			t.Errorf("the history of %d operations is not linearizable (%v); history and picture in %s", lin.Ops, lin.Result, dir)
		} else {
			// A split brain, or a deposed leader (see check.Deposed): the
			// loser acknowledged writes the pair then set aside. Without
			// the loser's branch the rest must hold.
			r.split = v.Split
			t.Logf("split brain or deposed leader: the whole history is not linearizable (%d archived rows, %d branches); without the %d operations of the losers' branches: %v",
				h.ArchivedRows, len(v.Branches), v.Split.SetAside, v.Split.Result.Result)
			if !v.Split.Linearizable {
				for _, b := range v.Branches {
					t.Logf("branch of %s: %s to %s", b.Node, b.From.Format("15:04:05.000"), b.To.Format("15:04:05.000"))
				}
				_ = workload.WriteHistory(filepath.Join(dir, "history-without-branches.jsonl"), v.Split.Kept)
				t.Errorf("even without the losers' archived branches the history is not linearizable; histories in %s", dir)
			}
		}
	}
	// client-go's reflector backs off between failed attempts up to 30 s,
	// with a jitter that can double it, once a run of failovers has failed
	// several in a row: the wait allows one whole back-off and a request.
	wctx, wcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer wcancel()
	caught := time.Now()
	catchErr := r.wc.WaitForRV(wctx, workload.MaxAckedRV(ops))
	rep := r.wc.Stop()
	h.Watch = rep.Steps
	if err := h.Save(filepath.Join(dir, "check.json")); err != nil { // what e2e/check's tests can be fed
		t.Log(err)
	}
	if catchErr != nil {
		t.Errorf("the watch did not catch up with the last acknowledged write (rv %d) by itself: %v", workload.MaxAckedRV(ops), catchErr)
		logWatchHistory(t, rep)
	} else if took := time.Since(caught); took > 5*time.Second {
		t.Logf("the watch caught up with the last acknowledged write only %s after the checks began waiting for it (the history checks ran first)", took.Round(time.Millisecond))
	}
	if !rep.Clean() {
		t.Errorf("the watch went backwards: %d regressions, %d duplicates, %d lists behind: %v",
			rep.Regressions, rep.Duplicates, rep.ListBehind, rep.Details)
	}
	t.Logf("watch: %d streams, %d resumes, %d relists, %d stalls, %d endpoint switches, %d events, max rv %d",
		rep.Streams, rep.Resumes, rep.Relists, rep.Stalls, rep.EndpointSwitches, rep.Events, rep.MaxRV)
	t.Logf("operations: %d ok, %d failed, %d unknown; %d acknowledged writes; linearizability checked in %s",
		workload.Count(ops, workload.OK), workload.Count(ops, workload.Failed), workload.Count(ops, workload.Unknown),
		len(workload.Acked(ops)), lin.Elapsed.Round(time.Millisecond))
	res := workload.NewResult(r.name, ops, fault, lost, lin)
	res.DualLeaderMs = r.mon.DualLeader().Milliseconds()
	res.HARestoredMs = r.mon.HARestored(fault)
	res.DualVIPms, res.VIPMoveMs = r.mon.DualVIP(), r.mon.VIPMove(fault)
	if ack, ok := r.addr.FirstAckAfter(fault); ok {
		res.VIPRTOms = workload.Ms(ack.Sub(fault))
	}
	if stray := r.mon.StrayAddress(); len(stray) > 0 {
		t.Errorf("the pair's address was on a node whose Kine did not serve its own database, in %d samples: %v", len(stray), stray)
	}
	if both := r.mon.DualAddressAlone(); len(both) > 0 {
		t.Errorf("the pair's address was on both nodes while not both led alone, in %d samples: %v", len(both), both)
	}
	if res.Lost != res.Archived {
		t.Errorf("lost %d acknowledged writes, archived %d", res.Lost, res.Archived)
	}
	r.checkControlPlane(fault, &res)
	return res
}

// checkControlPlane adds the control plane's figures to res: the longest
// time each Lease went unrenewed from the fault on, how often a component
// lost its Lease (a k3s restart; none may in a single fault), and how long
// the controllers and the scheduler took to act on a Deployment created
// once the pair had settled.
func (r *rig) checkControlPlane(fault time.Time, res *workload.Result) {
	t := r.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	took, err := controllersProgress(ctx, r.eps, "progress-"+r.name)
	if err != nil {
		t.Errorf("the controllers made no progress after the fault: %v", err)
	} else {
		res.ControllersMs = workload.Ms(took)
	}
	end := time.Now()
	losers := check.Losers(r.archives, r.mon.snapshot())
	losses, counted := 0, 0
	var leaders []string
	renewals := map[string][]time.Time{}
	for _, n := range []string{"a", "b"} {
		for _, s := range r.comps[n] {
			rs, err := s.S.Renewals()
			if err != nil {
				t.Error(err)
			}
			renewals[s.S.Name] = append(renewals[s.S.Name], rs...)
			k, err := s.S.LeaseLosses()
			if err != nil {
				t.Error(err)
			}
			if k > 0 {
				t.Logf("%s on %s lost its lease %d times (log %s)", s.S.Name, n, k, s.S.LogPath)
			}
			losses += k
			switch {
			case n == r.cutOff:
			case losers[n] && k > 0:
				// Without a witness a split's loser stops its datastore,
				// archives what it wrote since the split (its components'
				// renewals too) and rewinds: a leadership held on that data
				// is gone with it, and losing it is right. Measured in the
				// one-way scenarios: cut off from the leader's database
				// before it took over, then stopped for the split, the
				// loser's controller manager went 10 to 18 s unrenewed.
				t.Logf("%s on %s lost its lease on the split's losing side: not counted", s.S.Name, n)
			default:
				counted += k
			}
			if won, _ := s.S.LeasesAcquired(); won > 0 {
				leaders = append(leaders, fmt.Sprintf("%s on %s %d×", s.S.Name, n, won))
			}
		}
	}
	res.LeaseLosses = &losses
	res.CMRenewGapMs = renewGap(renewals[apiserver.ControllerManager], fault, end)
	res.SchedRenewGapMs = renewGap(renewals[apiserver.Scheduler], fault, end)
	t.Logf("control plane: leases taken by %s; renewal gaps from the fault %v ms (controller manager), %v ms (scheduler)",
		strings.Join(leaders, ", "), fmtMs(res.CMRenewGapMs), fmtMs(res.SchedRenewGapMs))
	if counted > 0 && !r.multiFault {
		t.Errorf("a component lost its lease %d times in a single fault, on a node that kept a datastore (a k3s restart on a real node)", counted)
	}
}

func fmtMs(v *int64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprint(*v)
}

// report prints the RESULT line, in the exact format, and for a
// history that held only without the losers' branches a RESULT line of
// table fault-matrix-split that says so (scripts/results.sh puts it next
// to the first line's linearizable, which is the whole history's).
func (r *rig) report(res workload.Result) {
	_ = workload.PrintResult(os.Stdout, res)
	if r.split != nil {
		if err := results.Write(os.Stdout, results.FaultMatrixSplit, res.Scenario, r.split); err != nil {
			r.t.Error(err)
		}
	}
	for n, s := range r.api {
		if k := s.Restarts(); k > 0 {
			r.t.Logf("kube-apiserver on %s was started again %d times", n, k)
		}
	}
}

// readArchives reads both nodes' split-brain archives: the ConfigMap
// writes in them, how many rows they hold in all, and each file's node and
// modification time (the kernel's, right under clock skew too).
func (r *rig) readArchives() (kvs []workload.KV, rows int, files []check.ArchiveFile) {
	r.t.Helper()
	for _, n := range []string{"a", "b"} {
		paths, _ := archivefile.Files(filepath.Join(r.c.Nodes[n].DataDir(), "archive"))
		for _, f := range paths {
			fi, err := os.Stat(f)
			if err != nil {
				r.t.Fatal(err)
			}
			files = append(files, check.ArchiveFile{Node: n, Written: fi.ModTime()})
		}
		got, err := r.c.Archives(n)
		if err != nil && !os.IsNotExist(err) {
			r.t.Fatal(err)
		}
		for _, row := range got {
			kv, ok, err := workload.DecodeStored(row.Name, row.Value, row.Deleted, row.PrevRevision)
			if err != nil {
				r.t.Errorf("archived row %s of %s: %v", row.Name, n, err)
			}
			if ok {
				kvs = append(kvs, kv)
			}
		}
		rows += len(got)
	}
	return kvs, rows, files
}

// logWatchHistory shows how a watch that fell behind got there: its last
// failed requests and its last streams.
func logWatchHistory(t *testing.T, rep workload.WatchReport) {
	t.Helper()
	errs := rep.Errors[max(0, len(rep.Errors)-15):]
	t.Logf("the watch's last %d failed requests and streams:\n%s", len(errs), strings.Join(errs, "\n"))
	for _, s := range rep.Streamed[max(0, len(rep.Streamed)-6):] {
		last := int64(0)
		if len(s.RVs) > 0 {
			last = s.RVs[len(s.RVs)-1]
		}
		t.Logf("stream on endpoint %d from rv %q: %s to %s (%s), %d events, last rv %d",
			s.Endpoint, s.StartRV, s.Start.Format("15:04:05.000"), s.End.Format("15:04:05.000"), s.EndReason, len(s.RVs), last)
	}
}
