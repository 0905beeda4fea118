package cluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FormTimeout bounds forming a pair in tests (a loaded 2-core machine forms
// in 5–20 s).
const FormTimeout = 60 * time.Second

// ForTest forms a pair for one test and tears it down afterwards. On
// failure (or with TWONODE_E2E_KEEP set) it keeps the directory and prints
// the agents' log tails. Missing binaries or privileges fail the test.
func ForTest(t testing.TB, prefix string, subnet int) *Cluster {
	t.Helper()
	o, err := FromEnv(Options{Prefix: prefix, Subnet: subnet, Dir: filepath.Join("/var/tmp/twonode-e2e", prefix)})
	if err != nil {
		t.Fatal(err)
	}
	return ForTestWith(t, o)
}

// ForTestWith is ForTest with every option given (FromEnv already applied).
func ForTestWith(t testing.TB, o Options) *Cluster {
	t.Helper()
	_ = os.RemoveAll(o.Dir)
	if err := os.MkdirAll("/var/tmp/twonode-e2e", 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []string{"a", "b"} {
				t.Logf("--- agent %s log tail:\n%s", n, c.Logs(n, 60))
			}
			t.Logf("cluster directory kept: %s", o.Dir)
		}
		if err := c.Close(!t.Failed() && os.Getenv("TWONODE_E2E_KEEP") == ""); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), FormTimeout)
	defer cancel()
	start := time.Now()
	if err := c.Form(ctx, FormTimeout); err != nil {
		t.Fatalf("forming the pair: %v", err)
	}
	t.Logf("pair formed in %s", time.Since(start).Round(time.Millisecond))
	return c
}
