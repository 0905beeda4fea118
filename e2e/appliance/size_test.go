package appliance

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/e2e/results"
)

// TestImageSize is the size benchmark: what TWO_NODE adds to an image, as
// RESULT lines. Each binary as the Earthfile builds it (stripped, static),
// for amd64 and arm64 (both must build, and be ELF files for their
// architecture); the distribution packages install-two-node.sh adds (their
// installed size, from dpkg's database, Debian bookworm); and the whole
// difference on disk between the root filesystem before and after the
// script.
func TestImageSize(t *testing.T) {
	requireRoot(t)
	machines := map[string][2]byte{"amd64": {0x3e, 0x00}, "arm64": {0xb7, 0x00}}
	var binTotal = map[string]int64{}
	for _, arch := range []string{"amd64", "arm64"} {
		dir := filepath.Join(t.TempDir(), arch)
		if arch == runtime.GOARCH {
			installedImage(t) // builds the host's binaries once for both tests
			dir = image.bin
		} else {
			start := time.Now()
			imageBinaries(t, arch, dir)
			t.Logf("%s binaries built in %v", arch, time.Since(start).Round(time.Second))
		}
		names := []string{"twonode", "kine", "agent-provider-twonode"}
		for _, name := range names {
			p := filepath.Join(dir, name)
			b, err := os.ReadFile(p)
			if err != nil {
				if name == "agent-provider-twonode" && allowMissingPlugin() {
					continue
				}
				t.Errorf("%s/%s: %v", arch, name, err)
				continue
			}
			m := machines[arch]
			if len(b) < 20 || !bytes.Equal(b[:4], []byte("\x7fELF")) || b[18] != m[0] || b[19] != m[1] {
				t.Errorf("%s/%s is not an ELF executable for %s", arch, name, arch)
			}
			binTotal[arch] += int64(len(b))
			sizeResult(t, name, arch, mib(int64(len(b))), map[string]any{"bytes": len(b)})
		}
		sizeResult(t, "binaries", arch, mib(binTotal[arch]), map[string]any{"bytes": binTotal[arch]})
	}

	img, base := installedImage(t)
	before, err := installedPackages(base)
	if err != nil {
		t.Fatal(err)
	}
	after, err := installedPackages(img)
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	var kib int64
	for p, k := range after {
		if _, ok := before[p]; !ok {
			added = append(added, p)
			kib += k
		}
	}
	sort.Strings(added)
	if len(added) == 0 {
		t.Fatal("install-two-node.sh added no package: PostgreSQL missing?")
	}
	sizeResult(t, "packages", runtime.GOARCH, float64(kib)/1024, map[string]any{"count": len(added), "installed_kib": kib, "names": strings.Join(added, " ")})
	du := func(d string) int64 {
		out, err := run(5*time.Minute, "du", "-sb", "--exclude=*/var/cache/apt", "--exclude=*/var/lib/apt/lists", d)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(strings.Fields(out)[0], 10, 64)
		return n
	}
	delta := du(img) - du(base)
	sizeResult(t, "total-on-disk", runtime.GOARCH, mib(delta), map[string]any{"bytes": delta})
}

// sizeResult prints a row of the image-size table: an item, its
// architecture, its size in MiB and its other figures.
func sizeResult(t *testing.T, item, arch string, mibs float64, figures map[string]any) {
	t.Helper()
	figures["item"], figures["arch"], figures["mib"] = item, arch, results.Fixed(mibs, 1)
	if err := results.Write(os.Stdout, results.ImageSize, "", figures); err != nil {
		t.Error(err)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// installedPackages reads dpkg's database of a root filesystem: package ->
// Installed-Size in KiB.
func installedPackages(root string) (map[string]int64, error) {
	out, err := run(time.Minute, "dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"),
		"-W", "-f", "${Package} ${Installed-Size} ${db:Status-Abbrev}\n")
	if err != nil {
		return nil, err
	}
	pkgs := map[string]int64{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || !strings.HasPrefix(f[2], "ii") {
			continue
		}
		k, _ := strconv.ParseInt(f[1], 10, 64)
		pkgs[f[0]] = k
	}
	return pkgs, nil
}
