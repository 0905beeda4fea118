package apiserver_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/e2e/apiserver"
	"github.com/twonode-edge/twonode/e2e/cluster"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// newPair forms a pair for one test (see cluster.ForTest) on its network,
// reserved in harness.
func newPair(t *testing.T, n harness.Net) *cluster.Cluster {
	t.Helper()
	return cluster.ForTest(t, n.Prefix, n.Subnet)
}

// startAPIServer runs kube-apiserver on node against its Kine, clients
// dialling from the site's client namespace, and waits for /readyz. It is
// stopped before the pair (cleanups run last-in first-out).
func startAPIServer(t *testing.T, c *cluster.Cluster, bin, node string) *apiserver.Server {
	t.Helper()
	n := c.Nodes[node]
	s, err := apiserver.Start(apiserver.Options{
		Bin:      bin,
		NS:       n.NS,
		Addr:     n.Addr,
		Dir:      filepath.Join(n.Dir, "kube-apiserver"),
		ClientNS: c.Net.NS("c"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping kube-apiserver: %v", err)
		}
	})
	harness.DumpLogsOnFailure(t, 40, s.LogPath)
	took, err := s.WaitReady(context.Background(), apiserver.DefaultReadyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver on node %s (%s) ready in %s", node, s.URL, took.Round(time.Millisecond))
	return s
}

// TestAPIServerOnKine: a real kube-apiserver on the leader's Kine serves
// client-go calls over the LAN, and what it stores is in the pair's
// database: the leader's Kine and the follower's Kine (which writes to the
// leader's PostgreSQL) both return it with the revision the API server
// reported as the object's resourceVersion.
func TestAPIServerOnKine(t *testing.T) {
	bin, err := apiserver.APIServerBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := newPair(t, harness.NetAPIServer)
	s := startAPIServer(t, c, bin, "a")
	cs, err := s.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	t.Logf("server version %s", v.GitVersion)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "twonode-e2e"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	cms := cs.CoreV1().ConfigMaps(ns.Name)
	want := map[string]string{"written-by": "TestAPIServerOnKine", "at": time.Now().UTC().Format(time.RFC3339Nano)}
	created, err := cms.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Data:       want,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	got, err := cms.Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get configmap: %v", err)
	}
	if fmt.Sprint(got.Data) != fmt.Sprint(want) || got.ResourceVersion != created.ResourceVersion {
		t.Fatalf("get returned %v at rv %s, want %v at rv %s", got.Data, got.ResourceVersion, want, created.ResourceVersion)
	}

	// An update with the current resourceVersion succeeds; one with the
	// old resourceVersion is a conflict (optimistic concurrency reaches
	// Kine's compare-and-swap).
	got.Data["updated"] = "yes"
	updated, err := cms.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update configmap: %v", err)
	}
	stale := created.DeepCopy()
	stale.Data["stale"] = "yes"
	if _, err := cms.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update with the old resourceVersion %s: got %v, want a conflict", created.ResourceVersion, err)
	}

	// The object is in the pair's database, through either node's Kine.
	key := "/registry/configmaps/" + ns.Name + "/hello"
	for _, node := range []string{"a", "b"} {
		kc, err := c.Client(node)
		if err != nil {
			t.Fatal(err)
		}
		gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := kc.Get(gctx, key)
		gcancel()
		kc.Close()
		if err != nil {
			t.Fatalf("kine on %s: get %s: %v", node, key, err)
		}
		if len(resp.Kvs) != 1 {
			t.Fatalf("kine on %s: %s not found", node, key)
		}
		if rv := fmt.Sprint(resp.Kvs[0].ModRevision); rv != updated.ResourceVersion {
			t.Fatalf("kine on %s: %s at revision %s, the API server said %s", node, key, rv, updated.ResourceVersion)
		}
	}
	t.Logf("configmap %s/hello created at rv %s, updated at rv %s, stale update refused; both nodes' Kine return it",
		ns.Name, created.ResourceVersion, updated.ResourceVersion)

	// Stop before Kine: a clean exit within the grace period.
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("kube-apiserver stopped in %s", time.Since(start).Round(time.Millisecond))
}

// TestStorageConformanceThroughFollower runs k8s.io/apiserver's etcd3
// storage tests (Kine's own CI suite) inside the follower's namespace
// against the follower's Kine, which writes to the leader's PostgreSQL.
func TestStorageConformanceThroughFollower(t *testing.T) {
	bin, err := apiserver.ConformanceBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := newPair(t, harness.NetConformance)
	ctx := context.Background()
	st, err := c.Status(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "follower" || st.KineEndpoint != c.Nodes["a"].Addr {
		t.Fatalf("node b: state %q, kine target %q; want a follower whose Kine writes to the leader at %s", st.State, st.KineEndpoint, c.Nodes["a"].Addr)
	}

	for _, e := range apiserver.FollowerExclusions {
		t.Logf("excluded %s: %s", e.Test, e.Reason)
	}
	var res apiserver.ConformanceResult
	deadline := time.Now().Add(9 * time.Minute)
	for i, p := range apiserver.Passes(apiserver.FollowerExclusions) {
		r, err := apiserver.RunConformance(ctx, apiserver.ConformanceOptions{
			Bin:     bin,
			NS:      c.Nodes["b"].NS,
			Dir:     filepath.Join(c.Opts.Dir, "conformance"),
			Log:     fmt.Sprintf("pass-%d.log", i+1),
			Run:     p.Run,
			Skip:    p.Skip,
			Timeout: time.Until(deadline),
		})
		t.Logf("pass %d (-test.run=%q -test.skip=%q): %s; output in %s", i+1, p.Run, p.Skip, r, r.LogPath)
		res.Add(r)
		if err != nil {
			t.Fatal(err)
		}
	}
	// A few watch tests wait a fixed time for an event; on a loaded
	// 2-core machine one missed it once in about five runs
	// (WatchSemanticsWithConcurrentDecode). Each failed test runs once
	// more on its own; one that passes then is reported as a retry, and
	// one that fails again fails the run.
	var retried []string
	if res.Failed > 0 && res.Failed <= 3 {
		var still []string
		for i, name := range res.FailedTests {
			r, err := apiserver.RunConformance(ctx, apiserver.ConformanceOptions{
				Bin: bin, NS: c.Nodes["b"].NS, Dir: filepath.Join(c.Opts.Dir, "conformance"),
				Log: fmt.Sprintf("retry-%d.log", i+1), Run: exactly(name), Timeout: 2 * time.Minute,
			})
			t.Logf("retry of %s: %s; output in %s", name, r, r.LogPath)
			if err != nil || r.Failed > 0 || r.Passed == 0 || r.ExitErr != nil {
				still = append(still, name)
				continue
			}
			retried = append(retried, name)
		}
		res.Passed += len(retried)
		res.Failed, res.FailedTests = len(still), still
		if len(still) == 0 {
			res.ExitErr = nil
		}
	}
	fmt.Printf("STORAGE-CONFORMANCE through the follower's Kine: %d passed (%d on a retry), %d failed, %d excluded, %d skipped by the suite itself (%d top-level tests passed) in %s\n",
		res.Passed, len(retried), res.Failed, len(apiserver.FollowerExclusions), res.Skipped, res.TopPassed, res.Duration.Round(time.Second))
	if len(retried) > 0 {
		t.Logf("passed only on a retry: %s", strings.Join(retried, ", "))
	}
	if len(res.SkippedTests) > 0 {
		t.Logf("skipped by the tests themselves: %s", strings.Join(res.SkippedTests, ", "))
	}
	if res.Failed > 0 || res.ExitErr != nil {
		t.Fatalf("storage conformance failed (%v): %d failed: %s\n--- output tail:\n%s",
			res.ExitErr, res.Failed, strings.Join(res.FailedTests, ", "), res.Output)
	}
	// A binary that ran nothing would also exit 0.
	if res.Passed < 100 {
		t.Fatalf("only %d tests passed: the suite did not run\n%s", res.Passed, res.Output)
	}

	// The tests' keys reached the leader's database.
	kc, err := c.Client("a")
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := kc.Get(gctx, "/storage-conformance/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count == 0 {
		t.Fatal("no key of the storage tests is in the leader's database")
	}
	t.Logf("the leader's Kine holds %d keys written by the storage tests through the follower", resp.Count)

	// The excluded tests need an empty database or a compaction of the
	// newest revisions: they run as Kine's own CI runs every test, each
	// with a Kine and a database of its own, here a Kine started in the
	// follower's namespace with the follower Kine's credentials, writing to
	// a schema of its own on the leader's PostgreSQL (synchronously
	// replicated to the follower like everything else).
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("psql (postgresql-client) creates the excluded tests' own databases: %v", err)
	}
	env := []string{
		apiserver.OwnKineEnv + "=" + c.Opts.KineBin,
		apiserver.OwnPostgresEnv + "=" + net.JoinHostPort(c.Nodes["a"].Addr, strconv.Itoa(config.Default().Postgres.Port)),
		apiserver.OwnPsqlEnv + "=" + psql,
		"PGPASSFILE=" + filepath.Join(c.Nodes["b"].Dir, "run", "kine.pgpass"),
		// TLS to the leader's server, checked against the pair's CA.
		"PGSSLROOTCERT=" + filepath.Join(c.Nodes["b"].Dir, "run", "kine-ca.crt"),
	}
	var own apiserver.ConformanceResult
	for i, p := range apiserver.OnlyPasses(apiserver.FollowerExclusions) {
		r, err := apiserver.RunConformance(ctx, apiserver.ConformanceOptions{
			Bin: bin, NS: c.Nodes["b"].NS, Dir: filepath.Join(c.Opts.Dir, "conformance"),
			Log: fmt.Sprintf("own-database-%d.log", i+1), Run: p.Run, Env: env, Timeout: 5 * time.Minute,
		})
		t.Logf("own databases, pass %d (-test.run=%q): %s; output in %s", i+1, p.Run, r, r.LogPath)
		own.Add(r)
		if err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("STORAGE-CONFORMANCE the %d excluded tests, each with a Kine and a database of its own on the follower's path (Kine's CI set-up): %d passed, %d failed in %s\n",
		len(apiserver.FollowerExclusions), own.TopPassed, own.TopFailed, own.Duration.Round(time.Second))
	if own.Failed > 0 || own.ExitErr != nil {
		t.Fatalf("excluded tests on databases of their own failed (%v): %s\n--- output tail:\n%s", own.ExitErr, strings.Join(own.FailedTests, ", "), own.Output)
	}
	tops := map[string]bool{}
	for _, e := range apiserver.FollowerExclusions {
		top, _, _ := strings.Cut(e.Test, "/")
		tops[top] = true
	}
	if own.TopPassed != len(tops) {
		t.Fatalf("%d top-level tests passed on databases of their own, want the %d the exclusions name\n%s", own.TopPassed, len(tops), own.Output)
	}
}

// exactly is the -test.run pattern of one test, "TestName/Sub/..." as
// -test.v prints it: each level anchored and quoted.
func exactly(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
