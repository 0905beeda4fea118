package appliance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twonode-edge/twonode/e2e/results"
)

// The Debian root filesystem the install script is tested in.
const (
	suite   = "bookworm"
	variant = "minbase"
	// What a booted appliance needs beyond minbase: systemd as PID 1. The
	// install script brings everything else (PostgreSQL) itself.
	include = "systemd,systemd-sysv,dbus,iproute2"
	// recipe changes whenever the preparation below changes, so that an
	// old cache entry is never taken for a new one.
	recipe = "appliance-rootfs-v1"
)

// repoRoot is the module root (where go.mod is).
func repoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("appliance: go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("appliance: not inside the module")
	}
	return filepath.Dir(gomod)
}

// cacheDir is scripts/build.sh's cache: $TWONODE_CACHE or /var/cache/twonode.
func cacheDir() string {
	if d := os.Getenv("TWONODE_CACHE"); d != "" {
		return d
	}
	return "/var/cache/twonode"
}

// requireTools fails the test when a tool is missing, naming its package.
func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	pkgs := map[string]string{
		"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container", "systemd-analyze": "systemd",
		"shellcheck": "shellcheck", "nsenter": "util-linux", "dpkg-query": "dpkg", "ip": "iproute2", "nft": "nftables",
	}
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s; scripts/deps.sh does)", tool, pkgs[tool]))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("appliance: missing tools: %s", strings.Join(missing, ", "))
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("appliance: must run as root (debootstrap, systemd-nspawn, network namespaces); euid is %d", os.Geteuid())
	}
}

// run runs a command with a timeout; the error carries its output's tail.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := strings.TrimSpace(string(out))
		if len(s) > 3000 {
			s = "…" + s[len(s)-3000:]
		}
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, s)
	}
	return string(out), nil
}

// debianMirror is the Debian package mirror this machine's apt uses for
// suite (its sources.list or deb822 .sources files); the test uses no other.
func debianMirror(t testing.TB) string {
	t.Helper()
	var files []string
	if _, err := os.Stat("/etc/apt/sources.list"); err == nil {
		files = append(files, "/etc/apt/sources.list")
	}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.HasSuffix(f, ".sources") {
			for _, stanza := range strings.Split(string(b), "\n\n") {
				fields := map[string]string{}
				for _, l := range strings.Split(stanza, "\n") {
					if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(strings.TrimSpace(l), "#") {
						fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
					}
				}
				if fields["enabled"] == "no" || !hasWord(fields["types"], "deb") ||
					!hasWord(fields["suites"], suite) || !hasWord(fields["components"], "main") {
					continue
				}
				if uris := strings.Fields(fields["uris"]); len(uris) > 0 {
					return uris[0]
				}
			}
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			for len(f) > 1 && strings.HasPrefix(f[1], "[") { // deb [signed-by=...] uri
				f = append(f[:1], f[2:]...)
			}
			if len(f) >= 4 && f[0] == "deb" && f[2] == suite && hasWord(strings.Join(f[3:], " "), "main") {
				return f[1]
			}
		}
	}
	t.Fatalf("appliance: no Debian mirror for %s main in /etc/apt/sources.list*: debootstrap needs the one this machine uses", suite)
	return ""
}

func hasWord(list, w string) bool {
	for _, x := range strings.Fields(list) {
		if x == w {
			return true
		}
	}
	return false
}

// baseRootfs returns the cached Debian root filesystem, building it (once,
// under a lock shared with concurrent test processes) when its inputs
// changed. The directory must be copied, never modified.
func baseRootfs(t testing.TB) string {
	t.Helper()
	mirror := debianMirror(t)
	arch, err := run(10*time.Second, "dpkg", "--print-architecture")
	if err != nil {
		t.Fatalf("appliance: %v", err)
	}
	dbsVersion, err := run(10*time.Second, "dpkg-query", "-W", "-f", "${Version}", "debootstrap")
	if err != nil {
		t.Fatalf("appliance: debootstrap is not installed as a package: %v", err)
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{recipe, suite, variant, include, mirror,
		strings.TrimSpace(arch), strings.TrimSpace(dbsVersion)}, "\n")))
	key := hex.EncodeToString(sum[:])[:16]
	dir := filepath.Join(cacheDir(), "rootfs-"+key)
	ready := filepath.Join(dir, ".twonode-rootfs-ready")
	if _, err := os.Stat(ready); err == nil {
		return dir
	}

	if err := os.MkdirAll(cacheDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(cacheDir(), "rootfs.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ready); err == nil { // built by another process meanwhile
		return dir
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	start := time.Now()
	t.Logf("appliance: debootstrap %s (%s) from %s into %s; once, then cached", suite, include, mirror, dir)
	if _, err := run(20*time.Minute, "debootstrap", "--variant="+variant, "--include="+include, suite, tmp, mirror); err != nil {
		_ = os.RemoveAll(tmp)
		t.Fatalf("appliance: %v", err)
	}
	// Prepared as an image is: no hostname of its own (each container gets
	// one), no machine id (each boot makes one), no package cache.
	for _, p := range []string{"etc/hostname"} {
		_ = os.Remove(filepath.Join(tmp, p))
	}
	if err := os.WriteFile(filepath.Join(tmp, "etc/machine-id"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "var/cache/apt/archives/*.deb"))
	for _, d := range debs {
		_ = os.Remove(d)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".twonode-rootfs-ready"), []byte(key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("appliance: root filesystem built in %v", took.Round(time.Second))
	if err := results.Write(os.Stdout, results.ApplianceRootFS, "", map[string]any{"seconds": results.Fixed(took.Seconds(), 1), "cache": dir}); err != nil {
		t.Error(err)
	}
	return dir
}

// copyTree copies a root filesystem (ownership, modes, links, devices).
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	_ = os.RemoveAll(dst)
	if _, err := run(5*time.Minute, "cp", "-a", "--reflink=auto", src, dst); err != nil {
		t.Fatalf("appliance: %v", err)
	}
}

// allowMissingPlugin is the explicit switch for running before
// ./cmd/agent-provider-twonode exists: TWONODE_ALLOW_MISSING_PLUGIN=1.
func allowMissingPlugin() bool { return os.Getenv("TWONODE_ALLOW_MISSING_PLUGIN") == "1" }

// imageBinaries builds what the Earthfile's +agent and +kine build, for
// arch, with the same script (scripts/image-binaries.sh; Kine cached).
func imageBinaries(t testing.TB, arch, out string) {
	t.Helper()
	root := repoRoot(t)
	args := []string{filepath.Join(root, "scripts/image-binaries.sh"), arch, out}
	if allowMissingPlugin() {
		args = append(args, "--allow-missing-plugin")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "TWONODE_CACHE="+cacheDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("appliance: building the image's %s binaries: %v\n%s", arch, err, out)
	}
}

// image is the installed root filesystem shared by the tests of one run.
var image struct {
	once    sync.Once
	dir     string // root filesystem after install-two-node.sh
	base    string // the cached Debian root filesystem it was made from
	bin     string // the binaries installed
	install time.Duration
	err     error
}

// workDir holds this run's root filesystems (removed by TestMain).
var workDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if workDir != "" {
		_ = os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// installedImage returns a root filesystem into which
// scripts/install-two-node.sh has been run, as the Earthfile runs it: inside
// the root it installs into (here a systemd-nspawn container without boot),
// with this repository's binaries for the host's architecture.
func installedImage(t testing.TB) (dir, base string) {
	t.Helper()
	requireRoot(t)
	requireTools(t, "debootstrap", "systemd-nspawn", "dpkg-query")
	image.once.Do(func() {
		image.base = baseRootfs(t)
		if image.err = os.MkdirAll("/var/tmp", 0o1777); image.err != nil {
			return
		}
		workDir, image.err = os.MkdirTemp("/var/tmp", "twonode-appliance-")
		if image.err != nil {
			return
		}
		image.bin = filepath.Join(workDir, "bin")
		imageBinaries(t, runtime.GOARCH, image.bin)
		image.dir = filepath.Join(workDir, "image")
		copyTree(t, image.base, image.dir)
		start := time.Now()
		image.err = runInstall(t, image.dir, image.bin)
		image.install = time.Since(start)
	})
	if image.err != nil {
		t.Fatalf("appliance: %v", image.err)
	}
	if image.dir == "" {
		t.Fatal("appliance: the image was not built (an earlier test failed building it)")
	}
	return image.dir, image.base
}

// runInstall runs install-two-node.sh inside dir. Downloaded packages and
// package lists are kept in the cache between runs (bound into the
// container), which is why the script is told to keep its package cache.
func runInstall(t testing.TB, dir, bin string) error {
	root := repoRoot(t)
	aptArchives := filepath.Join(cacheDir(), "apt", "archives")
	aptLists := filepath.Join(cacheDir(), "apt", "lists")
	for _, d := range []string{filepath.Join(aptArchives, "partial"), filepath.Join(aptLists, "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	args := []string{"-q", "-D", dir, "--pipe", "--register=no", "--keep-unit",
		"--bind-ro=" + root + ":/mnt/twonode-src", "--bind-ro=" + bin + ":/mnt/twonode-bin",
		"--bind=" + aptArchives + ":/var/cache/apt/archives", "--bind=" + aptLists + ":/var/lib/apt/lists",
		"-E", "LANG=C.UTF-8", "--",
		"/bin/bash", "/mnt/twonode-src/scripts/install-two-node.sh", "--bin", "/mnt/twonode-bin", "--keep-package-cache"}
	if allowMissingPlugin() {
		args = append(args, "--allow-missing-plugin")
	}
	out, err := run(15*time.Minute, "systemd-nspawn", args...)
	t.Logf("appliance: install-two-node.sh:\n%s", strings.TrimSpace(out))
	if err != nil {
		return errors.New("install-two-node.sh failed: " + err.Error())
	}
	return nil
}
