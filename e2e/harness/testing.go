package harness

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// NewTestNetwork is NewNetwork for a test: it checks root and tools first,
// and registers Close with t.Cleanup (which runs on t.Fatal and on a panic
// in the test goroutine; SIGINT/SIGTERM are covered by the harness's signal
// handler; anything harder by CleanupStale on the next run).
func NewTestNetwork(t testing.TB, prefix string, opts ...Option) *Network {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, "ip", "nft")
	n, err := NewNetwork(prefix, opts...)
	if err != nil {
		t.Fatalf("e2e: network: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("e2e: network close: %v", err)
		}
	})
	t.Logf("e2e: network %s (10.%d.0.0/24) ready in %v", prefix, n.Octet, n.Setup)
	return n
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// ArtifactDir is where a test keeps histories and pictures for a reader
// after the run: $E2E_ARTIFACTS/<test>, by default under
// /var/tmp/twonode-e2e/artifacts (a failure message names it, so it must
// outlive the test; each run of a test replaces its own).
func ArtifactDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("E2E_ARTIFACTS")
	if base == "" {
		base = "/var/tmp/twonode-e2e/artifacts"
	}
	d := filepath.Join(base, unsafeChars.ReplaceAllString(t.Name(), "_"))
	_ = os.RemoveAll(d)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return d
}

// DumpLogsOnFailure prints the last lines of each log when the test fails.
// Register it after the processes (cleanups run last-in first-out, so the
// logs are printed before the network and its processes are torn down).
func DumpLogsOnFailure(t testing.TB, lines int, paths ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Logf("e2e: log %s: %v", p, err)
				continue
			}
			t.Logf("e2e: last %d lines of %s:\n%s", lines, p, tail(b, lines))
		}
	})
}

func tail(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}
