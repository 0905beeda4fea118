package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/e2e/harness"
	"github.com/twonode-edge/twonode/e2e/results"
)

// Namespaces tnfb-{a,b,c}, subnet 10.99.0.0/24: the addresses the user-data
// files in docs/user-data carry (node a = 10.99.0.1 = edge-1, b = .2 =
// edge-2), reserved as harness.NetFirstBoot.
const fbVIP = "10.99.0.100" // twonode.vip.address in docs/user-data

// The directories Kairos runs its stages from, in its order.
var stageDirs = []string{"/system/oem", "/oem", "/usr/local/cloud-config"}

// yiprunPath is where the test copies its yip runner (./yiprun, a stand-in
// for kairos-agent run-stage) into a node's root filesystem.
const yiprunPath = "/usr/lib/twonode-e2e/yiprun"

// kairosNode is one machine of the pair driven the way Kairos drives it:
// its user-data, its root filesystem, and the node booted from it.
type kairosNode struct {
	name     string // a or b (harness node)
	dir      string
	ns       string
	userData string // the exact docs/user-data file
	logs     string
	boots    int
	yiprun   string // the runner on the host
	*node
}

// offline runs argv (returning its standard output) in the node's root filesystem without booting it (as
// Kairos' initramfs and recovery steps run chrooted into the root, before
// systemd).
func (k *kairosNode) offline(t testing.TB, stdin []byte, argv ...string) string {
	t.Helper()
	copyFile(t, k.yiprun, filepath.Join(k.dir, yiprunPath), 0o755)
	args := append([]string{"-q", "-D", k.dir, "--pipe", "--register=no", "--keep-unit", "-E", "LANG=C.UTF-8", "--"}, argv...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemd-nspawn", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("firstboot: %s: %s: %v\n%s%s", k.name, strings.Join(argv, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// kairosBoot boots the node as Kairos does at every boot: in the initramfs
// the agent.boot event to the plugin with the node's cloud-config, then the
// initramfs stage of /system/oem, /oem and /usr/local/cloud-config; then
// systemd; then the boot stage (boot.before, boot, boot.after).
func (k *kairosNode) kairosBoot(t testing.TB) {
	t.Helper()
	data, _ := json.Marshal(map[string]string{"config": k.userData})
	ev, _ := json.Marshal(map[string]string{"name": "agent.boot", "data": string(data)})
	resp := k.offline(t, ev, "/system/providers/agent-provider-twonode", "agent.boot")
	var r struct {
		State string `json:"state"`
		Error string `json:"error"`
	}
	lines := strings.Split(strings.TrimSpace(resp), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("firstboot: %s: agent.boot answered no event response: %v\n%s", k.name, err, resp)
	}
	if r.Error != "" {
		t.Fatalf("firstboot: %s: the plugin refused the user-data: %s\n%s", k.name, r.Error, resp)
	}
	k.stage(t, "initramfs", true)
	k.boots++
	k.node = boot(t, k.name, k.dir, k.ns, k.logs, k.boots)
	k.stage(t, "boot", false)
}

// stage runs one Kairos stage over stageDirs with the yip runner: offline
// (initramfs, recovery) or in the running system.
func (k *kairosNode) stage(t testing.TB, stage string, offline bool) {
	t.Helper()
	argv := append([]string{yiprunPath, stage}, stageDirs...)
	if offline {
		k.offline(t, nil, argv...)
		return
	}
	copyFile(t, k.yiprun, filepath.Join(k.dir, yiprunPath), 0o755)
	if out, err := k.execTimeout(2*time.Minute, argv...); err != nil {
		t.Fatalf("firstboot: %s: stage %s: %v\n%s", k.name, stage, err, out)
	}
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, string(b), mode)
}

// promotions are the terms this node's agent began by taking over (its
// "new term" records of kind promote), read from the journal's records, not
// from the words of a row. A journal without any transition record fails
// the test: nothing could be counted.
func promotions(t testing.TB, n *node) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.log")
	if err := os.WriteFile(path, []byte(n.must(t, "journalctl", "--no-pager", "-o", "cat", "-u", "twonode-agent")), 0o600); err != nil {
		t.Fatal(err)
	}
	if moves, err := harness.LogRecordsWhere(path, func(r map[string]string) bool { return r["from"] != "" && r["to"] != "" }); err != nil || len(moves) == 0 {
		t.Fatalf("%s: no transition record in the agent's journal (%v): promotions cannot be counted", n.name, err)
	}
	terms, err := harness.LogRecords(path, "new term")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range terms {
		if r["kind"] == string(fsm.TermPromote) {
			out = append(out, fmt.Sprintf("term %s begun by a promotion at %s", r["term"], r["time"]))
		}
	}
	return out
}

// TestFirstBootUpgradeReset drives two machines with exactly the user-data
// of docs/user-data the way Kairos does (plugin on agent.boot, then the
// stages of /system/oem and /usr/local/cloud-config) and checks that the
// pair forms with no other step, that the upgrade bracket (before-upgrade,
// reboot, the resume at the first boot) reboots each node in turn without a
// promotion and ends the pause, and that a reset follower comes back as the
// follower with nothing lost.
func TestFirstBootUpgradeReset(t *testing.T) {
	requireRoot(t)
	requireTools(t, "debootstrap", "systemd-nspawn", "nsenter", "ip", "nft")
	testStart := time.Now()
	img, _ := installedImage(t)
	yiprun := filepath.Join(workDir, "yiprun")
	if _, err := os.Stat(yiprun); err != nil {
		cmd := exec.Command("go", "build", "-o", yiprun, "./e2e/appliance/yiprun")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("firstboot: building the yip runner: %v\n%s", err, out)
		}
	}
	logs := harness.ArtifactDir(t)
	net := harness.NewTestNetwork(t, harness.NetFirstBoot.Prefix, harness.WithSubnet(harness.NetFirstBoot.Subnet))
	nodes := map[string]*kairosNode{}
	for name, file := range map[string]string{"a": "node1.yaml", "b": "node2.yaml"} {
		ud, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "user-data", file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(ud), "address: "+net.Addr(name)+" ") {
			t.Fatalf("firstboot: docs/user-data/%s does not give node %s its address %s", file, name, net.Addr(name))
		}
		k := &kairosNode{name: name, dir: filepath.Join(workDir, "fb-"+name), ns: net.NS(name), userData: string(ud), logs: logs, yiprun: yiprun}
		copyTree(t, img, k.dir)
		writeFile(t, filepath.Join(k.dir, "etc/machine-id"), "", 0o444)
		_ = os.Remove(filepath.Join(k.dir, "var/lib/dbus/machine-id"))
		nodes[name] = k
	}
	a, b := nodes["a"], nodes["b"]
	t.Cleanup(func() {
		if t.Failed() {
			for _, k := range []*kairosNode{a, b} {
				if k.node == nil {
					continue
				}
				if j, err := k.execTimeout(10*time.Second, "journalctl", "--no-pager", "-n", "120", "-o", "short-monotonic",
					"-u", "twonode-agent", "-u", "twonode-kine", "-u", "twonode-postgresql", "-u", "twonode-upgrade-finish"); err == nil {
					t.Logf("firstboot: journal of %s:\n%s", k.name, j)
				}
			}
		}
	})

	// (1) First boot: nothing but the user-data.
	formStart := time.Now()
	for _, k := range []*kairosNode{a, b} {
		k.kairosBoot(t)
	}
	waitStates(t, a.node, "leader", 120*time.Second)
	waitStates(t, b.node, "follower", 120*time.Second)
	formTook := time.Since(formStart)
	for _, k := range []*kairosNode{a, b} {
		if got := k.show(t, "twonode-agent.service", "UnitFileState"); got != "enabled" {
			t.Errorf("%s: twonode-agent.service is %s after the first boot", k.name, got)
		}
		for _, f := range []string{"/etc/twonode/config.yaml", "/etc/twonode/secret", "/usr/local/cloud-config/twonode.kairos.yaml"} {
			if mode := strings.TrimSpace(k.must(t, "stat", "-c", "%a %U", f)); mode != "600 root" {
				t.Errorf("%s: %s is %s, want 600 root", k.name, f, mode)
			}
		}
	}
	if r := status(t, a.node); r.Replication != "sync" {
		t.Errorf("leader a: replication %q, want sync", r.Replication)
	}
	addressOnLeader(t, a, b)
	ca := kineClient(t, net.NS("a"))
	cb := kineClient(t, net.NS("b"))
	put(t, ca, "/firstboot/formed", "edge-1")
	if v := get(t, cb, "/firstboot/formed"); v != "edge-1" {
		t.Fatalf("b's Kine reads %q for a key written through a's", v)
	}
	if t.Failed() {
		t.FailNow()
	}

	// (2) The upgrade, one node after the other.
	upgradeStart := time.Now()
	var upgradePause time.Duration // the longest pause of the writes, over both upgrades
	for _, k := range []*kairosNode{a, b} {
		other := b
		if k == b {
			other = a
		}
		// A load through the node that stays up, from before the hand-over
		// until the pair is whole again.
		load := startLoad(kineClient(t, net.NS(other.name)), "/firstboot/load/"+k.name+"/")
		k.stage(t, "before-upgrade", false)
		k.must(t, "test", "-f", "/usr/local/twonode/upgrade.json")
		if r := status(t, other.node); r.State != "leader" {
			t.Errorf("%s is %s after %s's before-upgrade: the leader should have handed over to it", other.name, r.State, k.name)
		}
		for _, n := range []*kairosNode{k, other} {
			if r := status(t, n.node); !r.Paused {
				t.Fatalf("%s not paused after %s's before-upgrade", n.name, k.name)
			}
		}
		put(t, ca, "/firstboot/upgrade/"+k.name, "before")
		k.shutdown(t)
		time.Sleep(3 * time.Second) // twice the detection window: a follower would have promoted by now
		k.kairosBoot(t)
		waitStates(t, other.node, "leader", 120*time.Second)
		waitStates(t, k.node, "follower", 120*time.Second)
		addressOnLeader(t, other, k) // it followed the hand-over
		// The boot step's upgrade-finish ends the pause once the pair is back.
		deadline := time.Now().Add(90 * time.Second)
		for {
			ra, ea := statusErr(a.node)
			rb, eb := statusErr(b.node)
			_, marker := k.exec(t, "test", "-e", "/usr/local/twonode/upgrade.json")
			if ea == nil && eb == nil && !ra.Paused && !rb.Paused && marker != nil {
				break
			}
			if time.Now().After(deadline) {
				j, _ := k.exec(t, "journalctl", "--no-pager", "-o", "cat", "-u", "twonode-upgrade-finish")
				t.Fatalf("the pause of %s's upgrade did not end in 90s (a paused %t, b paused %t, marker gone %t); upgrade-finish:\n%s",
					k.name, ra.Paused, rb.Paused, marker != nil, j)
			}
			time.Sleep(500 * time.Millisecond)
		}
		pause, acked := load.stop()
		t.Logf("%s's upgrade: %d writes acknowledged through %s, longest pause %s", k.name, acked, other.name, pause.Round(time.Millisecond))
		upgradePause = max(upgradePause, pause)
		if p := promotions(t, other.node); len(p) > 0 {
			t.Errorf("%s promoted while %s was upgraded:\n%s", other.name, k.name, strings.Join(p, "\n"))
		}
		// Ended by upgrade-finish, not by anything else.
		if j := k.must(t, "journalctl", "--no-pager", "-o", "cat", "-u", "twonode-upgrade-finish"); !strings.Contains(j, "resumed on") {
			t.Errorf("%s: upgrade-finish did not end the pause itself:\n%s", k.name, j)
		}
		cb.Close()
		ca.Close()
		ca = kineClient(t, net.NS("a"))
		cb = kineClient(t, net.NS("b"))
		if v := get(t, cb, "/firstboot/upgrade/"+k.name); v != "before" {
			t.Errorf("after %s's upgrade, b's Kine reads %q", k.name, v)
		}
	}
	if r := status(t, a.node); r.State != "leader" || r.Replication != "sync" {
		t.Errorf("after both upgrades a is %s (replication %s), want leader (sync)", r.State, r.Replication)
	}
	upgradeTook := time.Since(upgradeStart)
	// A leader hands over before its upgrade: writes pause for the
	// switchover and for the leader's switch to asynchronous replication
	// when its follower goes down, never for a reboot.
	if upgradePause > 2*time.Second {
		t.Errorf("writes paused for %s during an upgrade, want at most 2 s at a time", upgradePause.Round(time.Millisecond))
	}
	if t.Failed() {
		t.FailNow()
	}

	// (3) Reset of the follower: written through the leader before, read
	// back through the reset node's own Kine after it rejoined.
	resetStart := time.Now()
	for i := 0; i < 50; i++ {
		put(t, ca, fmt.Sprintf("/firstboot/reset/%02d", i), fmt.Sprintf("v%d", i))
	}
	b.shutdown(t) // Kairos resets from the recovery system: b's services are down
	b.stage(t, "before-reset", true)
	if _, err := os.Stat(filepath.Join(b.dir, "oem/twonode/rejoin")); err != nil {
		t.Fatalf("before-reset left no rejoin marker: %v", err)
	}
	// What the reset wipes (the persistent partition): /usr/local, and the
	// persistent paths under /etc (Kairos keeps /etc/systemd there, so the
	// agent's enablement goes too). /etc/twonode is rewritten at every boot.
	entries, _ := os.ReadDir(filepath.Join(b.dir, "usr/local"))
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(b.dir, "usr/local", e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"etc/twonode", "etc/systemd/system/multi-user.target.wants/twonode-agent.service"} {
		if err := os.RemoveAll(filepath.Join(b.dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	b.kairosBoot(t)
	if cfg := b.must(t, "cat", "/etc/twonode/config.yaml"); !strings.Contains(cfg, "boot_grace: 1h") {
		t.Errorf("the reset node's first boot did not get the 1h boot_grace:\n%s", cfg)
	}
	waitStates(t, b.node, "follower", 180*time.Second)
	waitStates(t, a.node, "leader", 30*time.Second)
	resetTook := time.Since(resetStart)
	cb.Close()
	cb = kineClient(t, net.NS("b"))
	for i := 0; i < 50; i++ {
		if v := get(t, cb, fmt.Sprintf("/firstboot/reset/%02d", i)); v != fmt.Sprintf("v%d", i) {
			t.Errorf("after the reset, b's Kine reads %q for key %02d", v, i)
		}
	}
	for _, k := range []string{"/firstboot/formed", "/firstboot/upgrade/a", "/firstboot/upgrade/b"} {
		if v := get(t, cb, k); v == "" {
			t.Errorf("after the reset, b's Kine lost %s", k)
		}
	}
	put(t, ca, "/firstboot/after-reset", "edge-1")
	if v := get(t, cb, "/firstboot/after-reset"); v != "edge-1" {
		t.Errorf("b does not follow after the reset: reads %q", v)
	}
	if p := promotions(t, a.node); len(p) > 0 {
		t.Errorf("a logged a promotion:\n%s", strings.Join(p, "\n"))
	}
	// The next boot forgets the reset: marker gone, the configured
	// boot_grace back, still the follower.
	b.shutdown(t)
	b.kairosBoot(t)
	if _, err := os.Stat(filepath.Join(b.dir, "oem/twonode/rejoin")); err == nil {
		t.Errorf("the rejoin marker is still there at the boot after the rejoin")
	}
	if cfg := b.must(t, "cat", "/etc/twonode/config.yaml"); !strings.Contains(cfg, "boot_grace: 30s") {
		t.Errorf("the boot after the rejoin did not get the configured boot_grace back:\n%s", cfg)
	}
	waitStates(t, b.node, "follower", 120*time.Second)
	waitStates(t, a.node, "leader", 30*time.Second)

	s := func(d time.Duration) json.Number { return results.Fixed(d.Seconds(), 1) }
	if err := results.Write(os.Stdout, results.ApplianceFirstBoot, "", map[string]any{"pair_formed_s": s(formTook), "upgrade_both_s": s(upgradeTook),
		"upgrade_write_pause_ms": upgradePause.Milliseconds(), "reset_rejoin_s": s(resetTook), "total_s": s(time.Since(testStart))}); err != nil {
		t.Error(err)
	}
}

// addressOnLeader: the pair's address (twonode.vip in the documented
// user-data) is on the leader's interface and not on the follower's, as
// the agents report it and as the kernel has it, read inside each node.
func addressOnLeader(t *testing.T, leader, follower *kairosNode) {
	t.Helper()
	for _, k := range []*kairosNode{leader, follower} {
		want := k == leader
		r := status(t, k.node)
		if held := strings.HasSuffix(r.Address, "held by this node"); held != want {
			t.Errorf("%s reports the pair's address as %q (leader %t)", k.name, r.Address, want)
		}
		ip := k.must(t, "ip", "-o", "addr", "show")
		if on := strings.Contains(ip, " "+fbVIP+"/"); on != want {
			t.Errorf("%s (leader %t): the pair's address %s on its interfaces: %t:\n%s", k.name, want, fbVIP, on, ip)
		}
	}
}

// load writes a key every 50 ms through one node's Kine and keeps the
// longest time between two acknowledged writes.
type load struct {
	done   chan struct{}
	result chan [2]int64
}

func startLoad(c *clientv3.Client, prefix string) *load {
	l := &load{done: make(chan struct{}), result: make(chan [2]int64, 1)}
	go func() {
		last, acked := time.Now(), 0
		var longest time.Duration
		for i := 0; ; i++ {
			select {
			case <-l.done:
				longest = max(longest, time.Since(last))
				l.result <- [2]int64{int64(longest), int64(acked)}
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := c.Put(ctx, fmt.Sprintf("%s%06d", prefix, i), "x")
			cancel()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			now := time.Now()
			longest, last, acked = max(longest, now.Sub(last)), now, acked+1
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return l
}

// stop ends the load: the longest pause between acknowledged writes (the
// time since the last one included) and how many were acknowledged.
func (l *load) stop() (time.Duration, int) {
	close(l.done)
	r := <-l.result
	return time.Duration(r[0]), int(r[1])
}
