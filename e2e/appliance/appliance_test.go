package appliance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/localapi"
	"github.com/twonode-edge/twonode/e2e/harness"
	"github.com/twonode-edge/twonode/e2e/results"
)

// The appliances' namespaces and subnet: harness.NetAppliance.

// The three units the image carries, and how each is installed.
var units = map[string]string{
	"twonode-agent.service":      "disabled", // enabled by the boot stages (or by hand here)
	"twonode-kine.service":       "static",   // started by the agent only
	"twonode-postgresql.service": "static",   // started by the agent only
}

// TestAppliance boots two copies of the installed image under systemd and
// checks what the issue lists, in order.
func TestAppliance(t *testing.T) {
	requireRoot(t)
	requireTools(t, "debootstrap", "systemd-nspawn", "nsenter", "ip", "nft", "systemd-analyze")
	testStart := time.Now()
	img, _ := installedImage(t)
	checkImageLayout(t, img)

	// The units verify with their real binaries in place.
	for u := range units {
		if out, err := run(time.Minute, "systemd-analyze", "verify", "--root="+img, "/etc/systemd/system/"+u); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("appliance: systemd-analyze verify %s in the installed image: %v\n%s", u, err, out)
		}
	}

	// Two machines flashed with the same image, each given its site config
	// (what the boot stages write from user-data), but nothing enabled.
	logs := harness.ArtifactDir(t)
	net := harness.NewTestNetwork(t, harness.NetAppliance.Prefix, harness.WithSubnet(harness.NetAppliance.Subnet))
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	dirs := map[string]string{}
	for _, name := range []string{"a", "b"} {
		dirs[name] = filepath.Join(workDir, "node-"+name)
		copyTree(t, img, dirs[name])
		// Each machine makes its own id at first boot (as the Earthfile's
		// image leaves it: an empty /etc/machine-id).
		writeFile(t, filepath.Join(dirs[name], "etc/machine-id"), "", 0o444)
		_ = os.Remove(filepath.Join(dirs[name], "var/lib/dbus/machine-id"))
		peer := harness.Peer(name)
		writeFile(t, filepath.Join(dirs[name], "etc/twonode/secret"), hex.EncodeToString(secret)+"\n", 0o600)
		writeFile(t, filepath.Join(dirs[name], "etc/twonode/config.yaml"), fmt.Sprintf(
			"# minimal site config: what the boot stages write from user-data\nnode: {name: %s, address: %s}\npeer: {name: %s, address: %s}\nsecret_file: /etc/twonode/secret\n",
			name, net.Addr(name), peer, net.Addr(peer)), 0o600)
	}
	bootStart := time.Now()
	nodes := map[string]*node{}
	for _, name := range []string{"a", "b"} {
		nodes[name] = boot(t, name, dirs[name], net.NS(name), logs, 1)
	}
	a, b := nodes["a"], nodes["b"]
	bootTook := time.Since(bootStart)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []*node{a, b} {
				if j, err := n.execTimeout(10*time.Second, "journalctl", "--no-pager", "-n", "80", "-o", "short-monotonic",
					"-u", "twonode-agent", "-u", "twonode-kine", "-u", "twonode-postgresql"); err == nil {
					t.Logf("appliance: journal of %s:\n%s", n.name, j)
				}
			}
		}
	})

	t.Run("units loaded, disabled until enabled", func(t *testing.T) {
		for _, n := range []*node{a, b} {
			for u, want := range units {
				if got := n.show(t, u, "LoadState"); got != "loaded" {
					t.Errorf("%s: %s LoadState=%s", n.name, u, got)
				}
				if got := n.show(t, u, "UnitFileState"); got != want {
					t.Errorf("%s: %s UnitFileState=%s, want %s", n.name, u, got, want)
				}
				if got := n.show(t, u, "ActiveState"); got != "inactive" {
					t.Errorf("%s: %s is %s after boot, before anything was enabled", n.name, u, got)
				}
			}
			if got := n.show(t, "postgresql.service", "UnitFileState"); got != "disabled" {
				t.Errorf("%s: the distribution's postgresql.service is %s", n.name, got)
			}
			for _, d := range []string{"/run/twonode", "/usr/local/twonode"} {
				n.must(t, "test", "-d", d) // tmpfiles made them at boot
			}
			if out, _ := n.exec(t, "ls", "/var/lib/postgresql"); strings.Contains(out, "15") || strings.Contains(out, "16") {
				t.Errorf("%s: the distribution's cluster exists in /var/lib/postgresql: %s", n.name, out)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// Enabled by hand, as the boot stages do: the pair forms under systemd.
	formStart := time.Now()
	for _, n := range []*node{a, b} {
		n.must(t, "systemctl", "enable", "--now", "twonode-agent.service")
	}
	waitStates(t, a, "leader", 120*time.Second)
	waitStates(t, b, "follower", 120*time.Second)
	formTook := time.Since(formStart)
	if r := status(t, a); r.Replication != "sync" {
		t.Errorf("leader a: replication %q, want sync once b streams", r.Replication)
	}
	ca := kineClient(t, net.NS("a"))
	cb := kineClient(t, net.NS("b"))
	put(t, ca, "/appliance/formed", "a")
	if v := get(t, cb, "/appliance/formed"); v != "a" {
		t.Fatalf("b's Kine reads %q for a key written through a's", v)
	}

	t.Run("datastore runs under systemd", func(t *testing.T) {
		for _, n := range []*node{a, b} {
			for _, u := range []string{"twonode-agent.service", "twonode-postgresql.service", "twonode-kine.service"} {
				if st := n.show(t, u, "ActiveState"); st != "active" {
					t.Errorf("%s: %s is %s", n.name, u, st)
					continue
				}
				pid := n.show(t, u, "MainPID")
				cg := n.must(t, "cat", "/proc/"+pid+"/cgroup")
				if !strings.Contains(cg, "/"+u) {
					t.Errorf("%s: %s's main process %s is not in its own cgroup: %s", n.name, u, pid, cg)
				}
			}
			kpid := n.show(t, "twonode-kine.service", "MainPID")
			if uid := procUID(t, n, kpid); uid == "0" {
				t.Errorf("%s: Kine runs as root", n.name)
			}
			// The sandboxes take nothing the services need: no denial in
			// their logs (seccomp, capabilities, read-only paths).
			j := n.must(t, "journalctl", "--no-pager", "-o", "cat", "-u", "twonode-agent", "-u", "twonode-kine", "-u", "twonode-postgresql")
			for _, sign := range []string{"Operation not permitted", "Permission denied", "Read-only file system", "Bad system call", "status=31/SYS"} {
				if strings.Contains(j, sign) {
					t.Errorf("%s: %q in the units' journal:\n%s", n.name, sign, j)
				}
			}
			ppid := n.show(t, "twonode-postgresql.service", "MainPID")
			if uid, pg := procUID(t, n, ppid), strings.TrimSpace(n.must(t, "id", "-u", "postgres")); uid != pg {
				t.Errorf("%s: PostgreSQL runs as uid %s, not postgres (%s)", n.name, uid, pg)
			}
		}
	})

	var kineRestart time.Duration
	t.Run("systemd restarts a killed Kine", func(t *testing.T) {
		before := n64(t, a.show(t, "twonode-kine.service", "NRestarts"))
		oldPID := a.show(t, "twonode-kine.service", "MainPID")
		// Kine handed its listening socket to systemd's store (Kine patch
		// 0005, FileDescriptorStoreMax=1), which keeps the port bound
		// while Kine is down: a client's connection then waits for the
		// next Kine instead of being refused.
		if n := a.show(t, "twonode-kine.service", "NFileDescriptorStore"); n != "1" {
			t.Errorf("Kine's unit holds %s file descriptors in its store, want its listener", n)
		}
		killed := time.Now()
		a.must(t, "sh", "-c", "kill -KILL "+oldPID) // as the OOM killer would
		for i := 0; i < 100 && a.show(t, "twonode-kine.service", "MainPID") == oldPID; i++ {
			time.Sleep(5 * time.Millisecond) // until systemd saw it die (it restarts Kine 1 s later)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if c, err := harness.DialInNetns(ctx, net.NS("a"), "tcp", harness.KineAddr); err != nil {
			t.Errorf("connecting to Kine's port while Kine restarts: %v (want a connection the next Kine accepts)", err)
		} else {
			c.Close()
		}
		cancel()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if n64(t, a.show(t, "twonode-kine.service", "NRestarts")) > before &&
				a.show(t, "twonode-kine.service", "ActiveState") == "active" && tryPut(ca, "/appliance/after-kill", "1") == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Kine on a not restarted and serving 20s after SIGKILL (NRestarts %s, state %s)",
					a.show(t, "twonode-kine.service", "NRestarts"), a.show(t, "twonode-kine.service", "ActiveState"))
			}
			time.Sleep(100 * time.Millisecond)
		}
		kineRestart = time.Since(killed)
		if pid := a.show(t, "twonode-kine.service", "MainPID"); pid == oldPID {
			t.Errorf("Kine's main pid is still %s", pid)
		}
		t.Logf("Kine killed, restarted by systemd and serving again after %v", kineRestart.Round(time.Millisecond))
	})

	t.Run("stopping the agent leaves the datastore serving", func(t *testing.T) {
		pgPID := a.show(t, "twonode-postgresql.service", "MainPID")
		kinePID := a.show(t, "twonode-kine.service", "MainPID")
		a.must(t, "systemctl", "stop", "twonode-agent.service")
		if st := a.show(t, "twonode-agent.service", "ActiveState"); st != "inactive" {
			t.Fatalf("agent on a is %s after systemctl stop", st)
		}
		// Longer than the detection window (1.5 s): the follower must not
		// promote, since only an agent is gone and the leader's database serves.
		for i := 0; i < 8; i++ {
			put(t, ca, "/appliance/agent-stopped/a", strconv.Itoa(i))
			put(t, cb, "/appliance/agent-stopped/b", strconv.Itoa(i))
			time.Sleep(500 * time.Millisecond)
		}
		if pid := a.show(t, "twonode-postgresql.service", "MainPID"); pid != pgPID {
			t.Errorf("PostgreSQL on a changed from pid %s to %s while the agent stopped", pgPID, pid)
		}
		if pid := a.show(t, "twonode-kine.service", "MainPID"); pid != kinePID {
			t.Errorf("Kine on a changed from pid %s to %s while the agent stopped", kinePID, pid)
		}
		if r := status(t, b); r.State != "follower" {
			t.Errorf("b is %s while only a's agent was stopped, want follower", r.State)
		}
		a.must(t, "systemctl", "start", "twonode-agent.service")
		waitStates(t, a, "leader", 60*time.Second)
	})

	var rebootTook time.Duration
	t.Run("data directory survives a reboot", func(t *testing.T) {
		pgdata := filepath.Join(b.dir, "usr/local/twonode/pgdata")
		marker := filepath.Join(pgdata, "twonode-appliance-marker")
		writeFile(t, marker, "written before the reboot\n", 0o600)
		before := inode(t, pgdata)
		put(t, ca, "/appliance/before-reboot", "kept")
		rebootStart := time.Now()
		b.shutdown(t)
		b = boot(t, "b", dirs["b"], net.NS("b"), logs, 2)
		// Enabled, so the agent starts at boot; it starts PostgreSQL and Kine.
		waitStates(t, b, "follower", 120*time.Second)
		waitStates(t, a, "leader", 60*time.Second)
		rebootTook = time.Since(rebootStart)
		if after := inode(t, pgdata); after != before {
			t.Errorf("b's pgdata was replaced across the reboot (inode %d -> %d): a base backup instead of a restart", before, after)
		}
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("b's pgdata lost a file across the reboot: %v", err)
		}
		cb.Close()
		cb = kineClient(t, net.NS("b"))
		if v := get(t, cb, "/appliance/before-reboot"); v != "kept" {
			t.Errorf("after the reboot, b's Kine reads %q", v)
		}
		put(t, cb, "/appliance/after-reboot", "b")
		if v := get(t, ca, "/appliance/after-reboot"); v != "b" {
			t.Errorf("a reads %q for a key written through b after its reboot", v)
		}
	})

	s := func(d time.Duration) json.Number { return results.Fixed(d.Seconds(), 1) }
	if err := results.Write(os.Stdout, results.Appliance, "", map[string]any{"install_s": s(image.install), "boot_two_s": s(bootTook),
		"pair_formed_s": s(formTook), "kine_restart_ms": kineRestart.Milliseconds(), "reboot_rejoin_s": s(rebootTook), "total_s": s(time.Since(testStart))}); err != nil {
		t.Error(err)
	}
}

// checkImageLayout: what lands where (docs/image.md's table).
func checkImageLayout(t *testing.T, img string) {
	t.Helper()
	for path, mode := range map[string]os.FileMode{
		"opt/twonode/bin/twonode":                          0o755,
		"opt/twonode/bin/kine":                             0o755,
		"etc/systemd/system/twonode-agent.service":         0o644,
		"etc/systemd/system/twonode-kine.service":          0o644,
		"etc/systemd/system/twonode-postgresql.service":    0o644,
		"etc/systemd/system/k3s.service.d/20-twonode.conf": 0o644,
		"usr/lib/tmpfiles.d/twonode.conf":                  0o644,
		"etc/twonode/config.example.yaml":                  0o644,
		"usr/share/doc/twonode/image.md":                   0o644,
		"usr/lib/twonode/release":                          0o644,
	} {
		fi, err := os.Stat(filepath.Join(img, path))
		if err != nil {
			t.Errorf("image: /%s: %v", path, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("image: /%s has mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	if !allowMissingPlugin() {
		if fi, err := os.Stat(filepath.Join(img, "system/providers/agent-provider-twonode")); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("image: /system/providers/agent-provider-twonode missing or not 0755: %v", err)
		}
	}
	if target, err := os.Readlink(filepath.Join(img, "usr/lib/twonode/pgbin")); err != nil || !strings.HasPrefix(target, "/usr/lib/postgresql") {
		t.Errorf("image: /usr/lib/twonode/pgbin -> %q (%v), want the distribution's server binaries", target, err)
	}
	if link, err := os.Readlink(filepath.Join(img, "usr/bin/twonode")); err != nil || link != "/opt/twonode/bin/twonode" {
		t.Errorf("image: /usr/bin/twonode -> %q (%v)", link, err)
	}
	baked, _ := filepath.Glob(filepath.Join(repoRoot(t), "cloudconfig", "*.yaml"))
	for _, f := range baked {
		if _, err := os.Stat(filepath.Join(img, "system/oem", filepath.Base(f))); err != nil {
			t.Errorf("image: cloudconfig/%s not baked into /system/oem: %v", filepath.Base(f), err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(img, "etc/systemd/system/*.wants/twonode-*")); len(m) > 0 {
		t.Errorf("image: units enabled in the image: %v", m)
	}
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func inode(t testing.TB, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func n64(t testing.TB, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return v
}

func procUID(t testing.TB, n *node, pid string) string {
	t.Helper()
	for _, l := range strings.Split(n.must(t, "cat", "/proc/"+pid+"/status"), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	t.Fatalf("%s: no Uid in /proc/%s/status", n.name, pid)
	return ""
}

// status is `twonode status --json` inside the node: the operator's CLI in
// the image, against the agent's local socket.
func status(t testing.TB, n *node) localapi.StatusReport {
	t.Helper()
	r, err := statusErr(n)
	if err != nil {
		t.Fatalf("appliance: %v", err)
	}
	return r
}

func statusErr(n *node) (localapi.StatusReport, error) {
	var r localapi.StatusReport
	out, err := n.execTimeout(5*time.Second, "twonode", "status", "--json")
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return r, fmt.Errorf("%s: twonode status --json: %w: %s", n.name, err, out)
	}
	return r, nil
}

func waitStates(t testing.TB, n *node, state string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last localapi.StatusReport
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = statusErr(n)
		if lastErr == nil && last.State == state && last.PGUp {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("appliance: %s not %s after %v (last state %q, replication %q, error %v)", n.name, state, timeout, last.State, last.Replication, lastErr)
}

func kineClient(t testing.TB, ns string) *clientv3.Client {
	t.Helper()
	c, err := harness.NewEtcdClient(ns, harness.KineAddr, 2*time.Second)
	if err != nil {
		t.Fatalf("appliance: etcd client in %s: %v", ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tryPut(c *clientv3.Client, k, v string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.Put(ctx, k, v)
	return err
}

// put retries for up to 10 s: a Kine that was just (re)started needs a moment.
func put(t testing.TB, c *clientv3.Client, k, v string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := tryPut(c, k, v)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("appliance: put %s: %v", k, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func get(t testing.TB, c *clientv3.Client, k string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := c.Get(ctx, k)
		cancel()
		if err == nil {
			if len(r.Kvs) == 0 {
				return ""
			}
			return string(r.Kvs[0].Value)
		}
		if time.Now().After(deadline) {
			t.Fatalf("appliance: get %s: %v", k, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
