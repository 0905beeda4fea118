package harness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/archive"
)

// TestHarnessSmoke exercises the harness itself against a plain kine on
// SQLite in node a: network, namespace dialer, writer, watcher (including
// resume and relist), Verify, faults, process control and teardown.
func TestHarnessSmoke(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, "ip", "nft", "ping")
	if removed, err := CleanupStaleAll("tnh"); err != nil {
		t.Fatalf("stale cleanup: %v", err)
	} else if len(removed) > 0 {
		t.Logf("removed stale networks %v", removed)
	}
	kineBin := KineBinary(t)
	testStart := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	prefix := fmt.Sprint(NetHarnessSmoke.Prefix, os.Getpid())
	n := NewTestNetwork(t, prefix, WithSubnet(NetHarnessSmoke.Subnet))
	if sub := fmt.Sprintf("10.%d.0.", NetHarnessSmoke.Subnet); n.Addr("a") != sub+"1" || n.Addr("b") != sub+"2" || n.Addr("c") != sub+"10" {
		t.Fatalf("addresses: %s %s %s", n.Addr("a"), n.Addr("b"), n.Addr("c"))
	}
	fig := func(name string, d time.Duration) { t.Logf("FIGURE %-28s %v", name, d.Round(10*time.Microsecond)) }
	fig("network setup", n.Setup)

	// Baseline reachability over the bridge.
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "b"}} {
		if !n.Ping(p[0], p[1]) {
			t.Fatalf("baseline ping %s->%s failed", p[0], p[1])
		}
	}

	// Kine on SQLite inside node a.
	dir := ArtifactDir(t)
	kdir := filepath.Join(dir, "kine-a")
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		t.Fatal(err)
	}
	klog := filepath.Join(dir, "kine-a.log")
	// Automatic compaction off (so the manual compaction below takes
	// effect) and no minimum history (kine keeps 1000 revisions by default).
	kspec := KineSpec(kineBin, n.NS("a"), kdir, klog, "", "KINE_COMPACT_INTERVAL=0", "KINE_COMPACT_MIN_RETAIN=0")
	kineStart := time.Now()
	kine, err := Start(kspec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kine.Kill() })
	DumpLogsOnFailure(t, 30, klog)

	ca, err := NewEtcdClient(n.NS("a"), KineAddr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	if _, err := WaitReady(ctx, ca, 10*time.Second); err != nil {
		t.Fatalf("kine in a: %v", err)
	}
	fig("kine start->ready (sqlite)", time.Since(kineStart))

	// Namespace isolation: kine listens on 127.0.0.1 of node a only.
	if c, err := DialInNetns(ctx, n.NS("b"), "tcp", KineAddr); err == nil {
		c.Close()
		t.Fatal("127.0.0.1:2379 reachable from namespace b")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial from b: want connection refused, got %v", err)
	}
	cb, err := NewEtcdClient(n.NS("b"), KineAddr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	gctx, gcancel := context.WithTimeout(ctx, time.Second)
	_, err = cb.Get(gctx, "/e2e/x")
	gcancel()
	if err == nil {
		t.Fatal("etcd Get through namespace b reached a kine")
	}
	if pids, err := PidsInNetns(n.NS("a")); err != nil || !slices.Contains(pids, kine.Pid()) {
		t.Fatalf("PidsInNetns(a) = %v, %v; want kine pid %d", pids, err, kine.Pid())
	}
	if pids, _ := PidsInNetns(n.NS("b")); len(pids) != 0 {
		t.Fatalf("PidsInNetns(b) = %v, want none", pids)
	}

	ta := Target{Node: "a", Client: ca}
	tb := Target{Node: "b", Client: cb}

	// Writer + watcher + Verify.
	wat, err := StartWatch(ctx, "/e2e/", ta)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter("smoke", ta)
	t0 := time.Now()
	ops := w.WriteN(ctx, 50)
	fig("50 sequential puts", time.Since(t0))
	if len(ops) != 50 || len(w.Acked()) != 50 {
		t.Fatalf("acked %d of %d: %+v", len(w.Acked()), len(ops), w.Failed())
	}
	if err := wat.WaitFor(w.Acked(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	fig("write->all watched", time.Since(t0))
	rep := wat.Report()
	if rep.Regressions != 0 || !rep.InOrder("/e2e/smoke/") || len(rep.Events) != 50 {
		t.Fatalf("watch: regressions %d, in order %v, events %d: %v", rep.Regressions, rep.InOrder("/e2e/smoke/"), len(rep.Events), rep.RegressionDetails)
	}
	for i, op := range w.Acked() {
		if rep.Events[i].Key != op.Key || rep.Events[i].Rev != op.Revision {
			t.Fatalf("event %d = %+v, want %s@%d", i, rep.Events[i], op.Key, op.Revision)
		}
	}
	t0 = time.Now()
	lost, err := Verify(ctx, ca, w.Acked())
	if err != nil || len(lost) != 0 {
		t.Fatalf("Verify: lost %v, err %v", lost, err)
	}
	fig("verify 50", time.Since(t0))
	// Verify must notice a changed value and a missing key.
	forged := append(w.Acked()[:1:1], Op{Key: "/e2e/smoke/99999999", Value: "x"})
	forged[0].Value = "other"
	if lost, err := Verify(ctx, ca, forged); err != nil || len(lost) != 2 {
		t.Fatalf("Verify(forged) = %v, %v; want 2 lost", lost, err)
	}

	// Writer rotation: b has no kine, so the first write fails (fast:
	// connection refused) and the writer moves to a.
	wr := NewWriter("rotate", tb, ta)
	wr.OpTimeout = 500 * time.Millisecond
	rops := wr.WriteN(ctx, 3)
	if rops[0].OK || rops[0].Node != "b" || !rops[1].OK || rops[1].Node != "a" || !rops[2].OK {
		t.Fatalf("rotation: %+v", rops)
	}
	if err := wr.PinTo("b"); err != nil {
		t.Fatal(err)
	}
	if op := wr.WriteOne(ctx); op.OK || op.Node != "b" {
		t.Fatalf("pinned write: %+v", op)
	}

	// Power loss of node a while watching and writing; then kine restarts
	// on the same SQLite file: the watcher must resume without regression,
	// the writer must recover, and nothing acked may be lost.
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { defer close(wdone); w.Run(wctx, 50) }()
	time.Sleep(300 * time.Millisecond)
	fault := time.Now()
	if err := n.PowerOff("a"); err != nil {
		t.Fatal(err)
	}
	fig("KillNamespace(SIGKILL)", time.Since(fault))
	select {
	case <-kine.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("kine survived KillNamespace(SIGKILL)")
	}
	if pids, _ := PidsInNetns(n.NS("a")); len(pids) != 0 {
		t.Fatalf("processes left in a: %v", pids)
	}
	time.Sleep(2 * time.Second) // long enough for the watcher's probe to give up
	kine, err = Start(kspec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kine.Kill() })
	if _, err := WaitReady(ctx, ca, 10*time.Second); err != nil {
		t.Fatalf("kine restart: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	wcancel()
	<-wdone
	ack, ok := w.FirstAckAfter(fault)
	if !ok {
		t.Fatalf("no write acknowledged after the restart: %d failed", len(w.Failed()))
	}
	fig("writer RTO (2 s outage)", ack.Sub(fault))
	gap, _ := w.LongestOutage()
	fig("writer longest outage", gap)
	if err := wat.WaitFor(w.Acked(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	lost, err = Verify(ctx, ca, w.Acked())
	if err != nil || len(lost) != 0 {
		t.Fatalf("after restart: lost %v, err %v", lost, err)
	}
	rep = wat.Stop()
	t.Logf("watch: %d events, %d resumes, errors %v", len(rep.Events), rep.Resumes, rep.Errors)
	if rep.Regressions != 0 || rep.Resumes < 1 || len(rep.Missing(w.Acked())) != 0 {
		t.Fatalf("watch after restart: regressions %d %v, resumes %d, missing %d",
			rep.Regressions, rep.RegressionDetails, rep.Resumes, len(rep.Missing(w.Acked())))
	}
	var buf bytes.Buffer
	_ = PrintResult(&buf, Result{Scenario: "harness-smoke", RTOms: RTO(fault, ack, ok), Acked: len(w.Acked()), Lost: len(lost)})
	t.Log(strings.TrimSpace(buf.String()))

	// Relist: compact, then watch from a compacted revision.
	cur, err := ca.Get(ctx, "/e2e-none")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Compact(ctx, cur.Header.Revision); err != nil {
		t.Fatalf("compact: %v", err)
	}
	old, err := StartWatchFrom(ctx, "/e2e/", 2, ta)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.WaitFor(w.Acked(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	orep := old.Stop()
	if orep.Relists != 1 || orep.Regressions != 0 || orep.ListBehind != 0 {
		t.Fatalf("relist: relists %d, regressions %d, list behind %d, errors %v", orep.Relists, orep.Regressions, orep.ListBehind, orep.Errors)
	}

	// Freeze: kine stops answering but keeps its socket; thaw resumes it.
	if err := n.Freeze("a"); err != nil {
		t.Fatal(err)
	}
	gctx, gcancel = context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = ca.Get(gctx, "/e2e-x")
	gcancel()
	if err == nil {
		t.Fatal("frozen kine answered")
	}
	if err := n.Thaw("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := WaitReady(ctx, ca, 5*time.Second); err != nil {
		t.Fatalf("after thaw: %v", err)
	}

	// One-way partition a->b: a cannot reach b; echo replies from a to b are
	// dropped too, so ping b->a fails as well, but datagrams b->a arrive.
	t0 = time.Now()
	if err := n.Partition("a", "b"); err != nil {
		t.Fatal(err)
	}
	fig("Partition", time.Since(t0))
	if rules, _ := n.FaultRules("a"); !strings.Contains(rules, "drop") {
		t.Fatalf("fault rules in a: %q", rules)
	}
	if n.Ping("a", "b") {
		t.Fatal("ping a->b passed a partition a->b")
	}
	if n.Ping("b", "a") {
		t.Fatal("ping b->a got a reply through a partition a->b")
	}
	if !n.Ping("a", "c") {
		t.Fatal("partition a->b cut a->c too")
	}
	if !udpArrives(t, n, "b", "a") || udpArrives(t, n, "a", "b") {
		t.Fatal("partition a->b is not one-way (udp b->a must arrive, a->b must not)")
	}
	t0 = time.Now()
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	fig("Heal", time.Since(t0))
	if !n.Ping("a", "b") || !n.Ping("b", "a") {
		t.Fatal("heal did not restore a<->b")
	}
	if err := n.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	if udpArrives(t, n, "a", "b") || udpArrives(t, n, "b", "a") {
		t.Fatal("isolate a,b leaks")
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := n.Heal(); err != nil { // idempotent
		t.Fatal(err)
	}

	// HTTP through the namespaces (the agent's peer API shape): b serves on
	// its LAN address, a and the client namespace c fetch. Through a
	// partition the request times out silently.
	l, err := ListenInNetns(n.NS("b"), "tcp", n.Addr("b")+":8760")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "peer-b") })}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	url := "http://" + n.Addr("b") + ":8760/"
	for _, from := range []string{"a", "c"} {
		resp, err := HTTPClient(n.NS(from), 2*time.Second).Get(url)
		if err != nil {
			t.Fatalf("http %s->b: %v", from, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "peer-b" {
			t.Fatalf("http %s->b: %q", from, body)
		}
	}
	if err := n.Partition("b", "a"); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if _, err := HTTPClient(n.NS("a"), 500*time.Millisecond).Get(url); err == nil || time.Since(t0) < 400*time.Millisecond {
		t.Fatalf("http a->b through partition b->a: %v after %v, want a timeout", err, time.Since(t0))
	}
	if err := n.Restore(); err != nil {
		t.Fatal(err)
	}

	// Link down fails fast, unlike the silent partition.
	if err := n.LinkDown("a"); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	_, err = DialInNetns(ctx, n.NS("a"), "tcp", n.Addr("b")+":8760")
	if !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("dial with link down: %v, want network unreachable", err)
	}
	fig("dial with link down fails in", time.Since(t0))
	if err := n.LinkUp("a"); err != nil {
		t.Fatal(err)
	}
	if !n.Ping("a", "b") {
		t.Fatal("link up did not restore a->b")
	}

	// Exec: output and bounded time.
	out, err := Exec(n.NS("b"), 5*time.Second, "ip", "-4", "-o", "addr", "show", "dev", NodeIface)
	if err != nil || !strings.Contains(string(out), n.Addr("b")+"/24") {
		t.Fatalf("Exec: %q, %v", out, err)
	}
	t0 = time.Now()
	if _, err := Exec(n.NS("b"), 300*time.Millisecond, "sleep", "5"); err == nil || time.Since(t0) > 3*time.Second {
		t.Fatalf("Exec timeout: %v after %v", err, time.Since(t0))
	}

	// Proc.Stop (SIGTERM) of a fresh process.
	sl, err := StartInNetns(n.NS("b"), "sleeper", filepath.Join(dir, "sleeper.log"), nil, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.StopTimeout(2 * time.Second); err != nil || sl.Running() {
		t.Fatalf("Stop: %v", err)
	}

	// Teardown: Close kills kine and removes the namespaces.
	t0 = time.Now()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	fig("network close", time.Since(t0))
	select {
	case <-kine.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("kine survived Close")
	}
	out, err = runTool("ip", nil, "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range n.Namespaces() {
		if strings.Contains(string(out), ns) {
			t.Fatalf("namespace %s still listed after Close:\n%s", ns, out)
		}
	}
	if _, err := os.Stat(ownerPath(prefix)); !os.IsNotExist(err) {
		t.Fatalf("owner file left: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	fig("whole smoke test", time.Since(testStart))
}

// udpArrives sends a datagram from node `from` to node `to` and reports
// whether it arrived within 300 ms.
func udpArrives(t *testing.T, n *Network, from, to string) bool {
	t.Helper()
	pc, err := ListenPacketInNetns(n.NS(to), "udp4", n.Addr(to)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := DialInNetns(context.Background(), n.NS(from), "udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		return false
	}
	_ = pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 16)
	nr, _, err := pc.ReadFrom(buf)
	return err == nil && string(buf[:nr]) == "ping"
}

// TestStaleCleanup simulates a run killed hard: a site left behind with a
// process inside and a dead owner is removed by the next NewNetwork, while
// a site owned by a live process is refused.
func TestStaleCleanup(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, "ip", "nft")
	prefix := fmt.Sprint(NetHarnessStale.Prefix, os.Getpid())
	n := NewTestNetwork(t, prefix, WithSubnet(NetHarnessStale.Subnet))
	sl, err := StartInNetns(n.NS("a"), "sleeper", filepath.Join(t.TempDir(), "s.log"), nil, "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	// A second NewNetwork with the same prefix from this live process's
	// point of view: the owner file names us, so it is treated as ours.
	// Make it look abandoned: owner = a dead pid.
	if err := os.WriteFile(ownerPath(prefix), []byte("999999999 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unregister(n) // as if the process that made it were gone
	t0 := time.Now()
	n2, err := NewNetwork(prefix, WithSubnet(NetHarnessStale.Subnet))
	if err != nil {
		t.Fatalf("NewNetwork over stale leftovers: %v", err)
	}
	t.Logf("FIGURE stale cleanup + setup       %v", time.Since(t0).Round(10*time.Microsecond))
	if err := sl.Wait(2 * time.Second); err != nil {
		t.Fatal("process in the stale namespace survived")
	}
	// A live owner (our parent, `go test`, or pid 1) is respected.
	st, err := procStart(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ownerPath(prefix), fmt.Appendf(nil, "1 %s\n", st), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CleanupStale(prefix); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("CleanupStale of a live owner's network: %v", err)
	}
	if err := writeOwner(prefix); err != nil {
		t.Fatal(err)
	}
	if err := n2.Close(); err != nil {
		t.Fatal(err)
	}
	if names, _ := ListNamespaces(); slices.ContainsFunc(names, func(s string) bool { return strings.HasPrefix(s, prefix+"-") }) {
		t.Fatalf("leftover namespaces: %v", names)
	}
}

// TestTwoNetworks checks that two sites with different subnets coexist.
func TestTwoNetworks(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, "ip", "nft", "ping")
	n1 := NewTestNetwork(t, fmt.Sprint(NetHarnessTwoX.Prefix, os.Getpid()), WithSubnet(NetHarnessTwoX.Subnet))
	n2 := NewTestNetwork(t, fmt.Sprint(NetHarnessTwoY.Prefix, os.Getpid()), WithSubnet(NetHarnessTwoY.Subnet))
	if !n1.Ping("a", "b") || !n2.Ping("b", "a") {
		t.Fatal("ping inside sites")
	}
	if err := n1.Isolate("a", "b"); err != nil {
		t.Fatal(err)
	}
	if !n2.Ping("a", "b") {
		t.Fatal("a fault in one site leaked into the other")
	}
}

// TestArchiveAndResult covers the pure parts: archive parsing, matching and
// the RESULT line.
func TestArchiveAndResult(t *testing.T) {
	dir := t.TempDir()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	content := `{"kind":"header","node":"b","winner":"a","term":7,"fork_rev":120,"count":2,"created":"2025-01-01T00:00:00Z"}
{"id":121,"name":"/e2e/split-b/00000001","created":1,"deleted":0,"create_revision":121,"prev_revision":0,"lease":0,"value_b64":"` + b64("b-1-aa") + `","old_value_b64":null}
{"id":122,"name":"/e2e/split-b/00000002","created":1,"deleted":0,"create_revision":122,"prev_revision":null,"lease":0,"value_b64":"` + b64("b-2-bb") + `","old_value_b64":""}
`
	secret := []byte("the pair's secret")
	f, err := archive.Create(filepath.Join(dir, "split-term7-1735689600"+archive.Ext), secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadArchives(dir, []byte("another secret")); err == nil {
		t.Fatal("ReadArchives with another secret: no error")
	}
	rows, err := ReadArchives(dir, secret)
	if err != nil || len(rows) != 2 {
		t.Fatalf("ReadArchives: %d rows, %v", len(rows), err)
	}
	if rows[0].Header.Winner != "a" || rows[0].Header.Term != 7 || rows[1].ID != 122 || !rows[0].Created || string(rows[1].Value) != "b-2-bb" {
		t.Fatalf("rows: %+v", rows)
	}
	lost := []Op{
		{Key: "/e2e/split-b/00000001", Value: "b-1-aa"},
		{Key: "/e2e/split-b/00000002", Value: "b-2-XX"},
		{Key: "/e2e/split-b/00000003", Value: "b-3-cc"},
	}
	arch, unex := MatchArchive(lost, rows)
	if len(arch) != 1 || len(unex) != 2 {
		t.Fatalf("MatchArchive: %v / %v", arch, unex)
	}
	if rows, err := ReadArchives(filepath.Join(dir, "none"), secret); err != nil || rows != nil {
		t.Fatalf("missing dir: %v %v", rows, err)
	}

	var buf bytes.Buffer
	ms := int64(1234)
	_ = PrintResult(&buf, Result{Scenario: "failover-sync", RTOms: &ms, Acked: 10, Lost: 0, Archived: 1})
	_ = PrintResult(&buf, Result{Scenario: "x", Acked: 1})
	want := `RESULT {"table":"agent-scenarios","scenario":"failover-sync","rto_ms":1234,"acked":10,"lost":0,"archived":1}
RESULT {"table":"agent-scenarios","scenario":"x","rto_ms":null,"acked":1,"lost":0,"archived":0}
`
	if buf.String() != want {
		t.Fatalf("PrintResult:\n%s\nwant\n%s", buf.String(), want)
	}
	at := time.Now()
	if r := RTO(at, at.Add(1500*time.Millisecond), true); r == nil || *r != 1500 {
		t.Fatalf("RTO = %v", r)
	}
}
