// Package scale measures how a pair's failover and rejoin cost grow with
// work (issue 14, item 4): at datastores of growing size, the leader
// crash's RTO, the time to restore the synchronous pair after a short
// outage (the crashed leader rejoins with pg_rewind) and after a long one
// (a base backup of the same data), and the leader crash with watches
// open. `twonode-lab scale` (part of `make bench`) runs it and draws
// images/scaling-datastore.svg and images/scaling-watches.svg.
//
// The long outage is forced: the returning node's data directory is
// removed while it is down, so it joins by base backup (pg_basebackup
// through its slot) as a replaced node does. The outage as it happens
// (--long-outage wal-dropped: the leader writes WAL past
// max_slot_wal_keep_size while the follower is down, and a checkpoint
// drops it) reaches a base backup only after one join timeout (2 min):
// the follower starts again as the leader's standby, never streams
// ("requested WAL segment ... has already been removed"), and its next
// join copies afresh (fsm: Machine.FailedJoins; measured 122.5 s at
// 10 MB). Before that row it went from joining to starting and back at
// every join timeout without copying, for good.
package scale

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// Options of a run. Zero values take the defaults.
type Options struct {
	Dir        string // everything the pair writes ("" = /var/tmp/twonode-scale)
	SizesMB    []int  // datastore points (10, 100, 1000)
	Watches    []int  // watch points (0, 100, 1000)
	WatchesAt  int    // the datastore size (MB) the watch curve is measured at (the smallest)
	ImagesDir  string // where the pictures go ("" = images)
	WriteRate  float64
	StateWait  time.Duration // longest wait for a state (10 min: a copy of 1 GB on a busy machine)
	LongOutage string        // how the long outage is made: "data-removed" (the default) or "wal-dropped"
	KeepOnFail bool          // leave the pair for inspection when the run fails
}

var (
	prefix = harness.NetScale.Prefix
	subnet = harness.NetScale.Subnet
)

func (o *Options) defaults() {
	if o.Dir == "" {
		o.Dir = "/var/tmp/twonode-scale"
	}
	if len(o.SizesMB) == 0 {
		o.SizesMB = []int{10, 100, 1000}
	}
	if len(o.Watches) == 0 {
		o.Watches = []int{0, 100, 1000}
	}
	if o.WatchesAt == 0 {
		o.WatchesAt = o.SizesMB[0]
	}
	if o.ImagesDir == "" {
		o.ImagesDir = "images"
	}
	if o.WriteRate == 0 {
		o.WriteRate = 50
	}
	if o.LongOutage == "" {
		o.LongOutage = outageDataRemoved
	}
	if o.StateWait == 0 {
		o.StateWait = 10 * time.Minute
	}
}

// run is one pair under measurement: who leads now.
type run struct {
	c                *cluster.Cluster
	ts               []harness.Target
	leader, follower string
	o                Options
	out              io.Writer
	crashes          int
}

// Run forms a pair, grows its datastore through o.SizesMB, and at each size
// crashes the leader, lets it rejoin (rewind), then takes the returning
// node's data away and lets it rejoin again (base backup); at o.WatchesAt
// it also crashes the leader with each number of watches open. One RESULT
// line per measurement, then the pictures.
func Run(ctx context.Context, o Options, out io.Writer) (err error) {
	o.defaults()
	copts, err := cluster.FromEnv(cluster.Options{Prefix: prefix, Subnet: subnet, Dir: o.Dir})
	if err != nil {
		return err
	}
	// A kept pair of an earlier run holds data made with another secret.
	_ = harness.CleanupStale(prefix)
	if err := os.RemoveAll(o.Dir); err != nil {
		return err
	}
	c, err := cluster.New(copts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && o.KeepOnFail {
			fmt.Fprintf(out, "keeping %s for inspection (logs in {a,b}/agent.log)\n", o.Dir)
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
	r := &run{c: c, ts: ts, leader: "a", follower: "b", o: o, out: out}
	fmt.Fprintf(out, "datastore filled with Kine-shaped rows inserted by SQL on the leader (%s); long outage: %s\n", fillHow, o.LongOutage)

	var rows []Row
	var f filler
	for _, size := range o.SizesMB {
		start := time.Now()
		mb, n, err := f.to(ctx, c, r.leader, size)
		if err != nil {
			return err
		}
		filled := time.Since(start)
		restart, err := restartKines(ctx, c, ts, fmt.Sprintf("/scale/filled/%d", size))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "datastore at %.0f MB (%d rows), filled in %s; Kine restarted on both nodes and serving again in %s\n",
			mb, n, filled.Round(time.Millisecond), restart.Round(time.Millisecond))
		base := Row{SizeMB: size, DataMB: round1(mb), Rows: n, Fill: fillHow}

		row := base
		row.Curve = "datastore"
		if err := r.crash(ctx, 0, &row); err != nil {
			return err
		}
		bb, path, err := r.longOutage(ctx)
		if err != nil {
			return err
		}
		row.BaseBackupRestoreMs, row.BaseBackupPath, row.LongOutage = ms(&bb), path, o.LongOutage
		row.RewindVsBaseBackup = Ratio(time.Duration(row.RewindRestoreMs)*time.Millisecond, &bb)
		if err := row.Print(out); err != nil {
			return err
		}
		rows = append(rows, row)

		if size != o.WatchesAt {
			continue
		}
		for _, nw := range o.Watches {
			row := base
			row.Curve, row.Watches = "watches", nw
			if err := r.crash(ctx, nw, &row); err != nil {
				return err
			}
			if err := row.Print(out); err != nil {
				return err
			}
			rows = append(rows, row)
		}
	}
	caption := fmt.Sprintf("make bench (e2e/scale), %s UTC, %d cores shared with other work: one crash a point, figures are noisy",
		time.Now().UTC().Format("2006-01-02 15:04"), runtime.NumCPU())
	if err := drawCharts(o.ImagesDir, rows, caption); err != nil {
		return err
	}
	fmt.Fprintf(out, "drew %s and %s\n", filepath.Join(o.ImagesDir, "scaling-datastore.svg"), filepath.Join(o.ImagesDir, "scaling-watches.svg"))
	return nil
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

// crash powers the leader off with nw watches open on the survivor's Kine
// and a writer going through both nodes, measures the RTO (and the
// watches' resumption), then starts the crashed node again and measures
// the restore: its start to the survivor in state leader (synchronous,
// its follower streaming) and the returning node following.
func (r *run) crash(ctx context.Context, nw int, row *Row) error {
	// A synchronous pair first: a fill (the follower's flushes slow under
	// it) can have sent the leader to leader_alone, and a leader crashed
	// while alone rejoins as a possible split, not as a plain crash.
	if _, err := r.c.WaitState(ctx, r.leader, 2*time.Minute, "leader"); err != nil {
		return fmt.Errorf("before crash %d: %w", r.crashes+1, err)
	}
	r.crashes++
	scenario := fmt.Sprintf("scale-%d", r.crashes)
	w := harness.NewWriter(scenario, r.ts...)
	var ws *watches
	if nw > 0 {
		cli, err := r.c.Client(r.follower)
		if err != nil {
			return err
		}
		defer cli.Close()
		ws = openWatches(ctx, cli, nw, "/e2e/"+scenario+"/")
		defer ws.close()
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go w.Run(wctx, r.o.WriteRate)
	time.Sleep(2 * time.Second) // writes flowing, watches open
	if err := r.c.PowerOff(r.leader); err != nil {
		return err
	}
	fault := time.Now()
	if ws != nil {
		var past int64
		for _, op := range w.Acked() {
			past = max(past, op.Revision)
		}
		ws.arm(fault, past)
	}
	if _, err := r.c.WaitState(ctx, r.follower, time.Minute, "leader_alone"); err != nil {
		return err
	}
	ack, err := waitAck(ctx, w, fault, time.Minute)
	if err != nil {
		return fmt.Errorf("crash %d (%s): %w", r.crashes, r.leader, err)
	}
	row.LeaderCrashRTOms = ack.Sub(fault).Milliseconds()
	if ws != nil {
		ws.wait(ctx, 30*time.Second)
		n, last, ok := ws.resumed()
		row.WatchesResumed = n
		if ok {
			v := last.Milliseconds()
			row.WatchesResumedMs = &v
		}
	}
	stop()
	fmt.Fprintf(r.out, "crash %d: %s powered off with %d watches: first write after %d ms\n", r.crashes, r.leader, nw, row.LeaderCrashRTOms)

	took, path, err := r.rejoin(ctx, r.leader)
	if err != nil {
		return err
	}
	row.RewindRestoreMs, row.RewindPath = took.Milliseconds(), path
	r.leader, r.follower = r.follower, r.leader
	return nil
}

// longOutage powers the follower off, takes away what a short outage
// would rejoin with (Options.LongOutage) and starts it.
func (r *run) longOutage(ctx context.Context) (time.Duration, string, error) {
	if err := r.c.PowerOff(r.follower); err != nil {
		return 0, "", err
	}
	// The leader notices (leader_alone) before the node returns: otherwise
	// its state would still read leader from before.
	if _, err := r.c.WaitState(ctx, r.leader, time.Minute, "leader_alone"); err != nil {
		return 0, "", err
	}
	switch r.o.LongOutage {
	case outageDataRemoved:
		if err := os.RemoveAll(r.c.Nodes[r.follower].DataDir()); err != nil {
			return 0, "", err
		}
	case outageWALDropped:
		slots, err := r.c.DropSlotWAL(ctx, r.leader)
		if err != nil {
			return 0, "", err
		}
		fmt.Fprintf(r.out, "%s wrote WAL past max_slot_wal_keep_size while %s was down; its slots: %s\n", r.leader, r.follower, slots)
	default:
		return 0, "", fmt.Errorf("scale: unknown long outage %q", r.o.LongOutage)
	}
	return r.rejoin(ctx, r.follower)
}

// rejoin starts node and times it to a synchronous pair again; the copy
// its agent made is read from the log it wrote meanwhile.
func (r *run) rejoin(ctx context.Context, node string) (time.Duration, string, error) {
	logPath := filepath.Join(r.c.Nodes[node].Dir, "agent.log")
	var from int64
	if fi, err := os.Stat(logPath); err == nil {
		from = fi.Size()
	}
	start := time.Now()
	if err := r.c.Start(node); err != nil {
		return 0, "", err
	}
	survivor := harness.Peer(node)
	if _, err := r.c.WaitState(ctx, survivor, r.o.StateWait, "leader"); err != nil {
		return 0, "", fmt.Errorf("%s rejoining: %w\n%s", node, err, r.c.Logs(node, 30))
	}
	took := time.Since(start)
	if _, err := r.c.WaitState(ctx, node, time.Minute, "follower"); err != nil {
		return 0, "", err
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, "", err
	}
	path := copyPath(string(b[min(from, int64(len(b))):]))
	fmt.Fprintf(r.out, "%s rejoined by %s: pair synchronous %d ms after its start\n", node, path, took.Milliseconds())
	return took, path, nil
}

// waitAck waits for the first write that started after fault to be
// acknowledged.
func waitAck(ctx context.Context, w *harness.Writer, fault time.Time, d time.Duration) (time.Time, error) {
	deadline := time.Now().Add(d)
	for {
		if ack, ok := w.FirstAckAfter(fault); ok {
			return ack, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("no write acknowledged within %s of the crash", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
