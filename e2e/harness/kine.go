package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
)

// Where a kine binary comes from, in order: $KINE_BIN, the shared prebuilt
// one, or one built on demand (about 5 minutes with a cold build cache).
const (
	SharedKineBin = "/var/cache/twonode/kine-test"
	BuiltKineBin  = "/tmp/kine-harness"
)

// KineBinary returns the path of a kine binary, building it if needed
// (bounded by 15 minutes; a file lock keeps parallel test packages from
// building it twice). Fails the test if none can be had.
func KineBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KINE_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("e2e: KINE_BIN=%s: %v", p, err)
		}
		return p
	}
	for _, p := range []string{SharedKineBin, BuiltKineBin} {
		if isExecutable(p) {
			return p
		}
	}
	lock, err := os.OpenFile(BuiltKineBin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatalf("e2e: lock %s: %v", lock.Name(), err)
	}
	if isExecutable(BuiltKineBin) { // built by someone else while we waited
		return BuiltKineBin
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("e2e: no kine binary and cannot build one: %v", err)
	}
	t.Logf("e2e: building kine into %s (set KINE_BIN to skip)", BuiltKineBin)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tmp := BuiltKineBin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, "github.com/k3s-io/kine")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("e2e: building kine: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, BuiltKineBin); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return BuiltKineBin
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// KineSpec returns a Spec that runs kine inside ns listening on KineAddr
// with metrics off; endpoint "" means kine's default (SQLite in dir/db).
// env is added (e.g. PGPASSFILE).
func KineSpec(bin, ns, dir, logPath, endpoint string, env ...string) Spec {
	e := []string{"KINE_LISTEN_ADDRESS=" + KineAddr, "KINE_METRICS_BIND_ADDRESS=0"}
	if endpoint != "" {
		e = append(e, "KINE_ENDPOINT="+endpoint)
	}
	return Spec{NS: ns, Name: "kine", LogPath: logPath, Dir: dir, Env: append(e, env...), Argv: []string{bin}}
}

// WaitReady polls c with Gets until one succeeds or d passes; returns the
// time it took.
func WaitReady(ctx context.Context, c *clientv3.Client, d time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		gctx, gcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := c.Get(gctx, "/e2e-ready")
		gcancel()
		if err == nil {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("harness: not ready after %v: %w", d, err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}
