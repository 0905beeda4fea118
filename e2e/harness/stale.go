package harness

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// OwnerDir holds one file per live site, <prefix>.owner, with the pid and
// start time of the test process that created it. A run killed hard (go test
// -timeout, SIGKILL, a panic in a goroutine) cannot clean up; the next run
// uses these files to tell an abandoned site from one a concurrent run still
// uses.
const OwnerDir = "/run/twonode-e2e"

func ownerPath(prefix string) string { return OwnerDir + "/" + prefix + ".owner" }

// procStart returns the start time (clock ticks since boot, field 22 of
// /proc/<pid>/stat) which together with the pid identifies a process even
// after pid reuse.
func procStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may contain spaces and parens
	if i < 0 {
		return "", fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	return f[19], nil // fields after comm start at field 3; field 22 is index 19
}

func writeOwner(prefix string) error {
	if err := os.MkdirAll(OwnerDir, 0o755); err != nil {
		return err
	}
	st, err := procStart(os.Getpid())
	if err != nil {
		return err
	}
	return os.WriteFile(ownerPath(prefix), fmt.Appendf(nil, "%d %s\n", os.Getpid(), st), 0o644)
}

// ownerAlive reports the pid of another live process owning prefix, or 0.
func ownerAlive(prefix string) int {
	b, err := os.ReadFile(ownerPath(prefix))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid == os.Getpid() {
		return 0
	}
	if st, err := procStart(pid); err != nil || st != f[1] {
		return 0
	}
	return pid
}

// CleanupStale removes the leftovers of an earlier, interrupted run that
// used prefix: it kills every process in <prefix>-{a,b,c} (kine, postgres,
// agents) and deletes those namespaces. It refuses (error) when the site
// belongs to another test process that is still alive.
func CleanupStale(prefix string) error {
	if pid := ownerAlive(prefix); pid != 0 {
		return fmt.Errorf("harness: network %q is in use by live process %d", prefix, pid)
	}
	if err := removeSite(prefix); err != nil {
		return fmt.Errorf("harness: cleaning up stale network %q: %w", prefix, err)
	}
	_ = os.Remove(ownerPath(prefix))
	return nil
}

// CleanupStaleAll applies CleanupStale to every site whose prefix starts
// with base (for tests that use unique prefixes such as base+pid). Sites of
// live processes are left alone. Returns the prefixes it removed.
func CleanupStaleAll(base string) ([]string, error) {
	names, err := ListNamespaces()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var removed []string
	var errs []error
	for _, ns := range names {
		if !strings.HasPrefix(ns, base) || len(ns) < 3 {
			continue
		}
		suf := ns[len(ns)-2:]
		if suf != "-a" && suf != "-b" && suf != "-c" {
			continue
		}
		p := ns[:len(ns)-2]
		if seen[p] {
			continue
		}
		seen[p] = true
		if ownerAlive(p) != 0 || isRegistered(p) {
			continue
		}
		if err := CleanupStale(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// Live sites of this process, closed by the signal handler on SIGINT/SIGTERM
// (t.Cleanup does not run when the test binary is interrupted).
var (
	regMu     sync.Mutex
	registry  = map[*Network]bool{}
	sigOnce   sync.Once
	sigClosed = make(chan struct{})
)

func register(n *Network) {
	regMu.Lock()
	registry[n] = true
	regMu.Unlock()
	sigOnce.Do(installSignalHandler)
}

func unregister(n *Network) {
	regMu.Lock()
	delete(registry, n)
	regMu.Unlock()
}

func isRegistered(prefix string) bool {
	regMu.Lock()
	defer regMu.Unlock()
	for n := range registry {
		if n.Prefix == prefix {
			return true
		}
	}
	return false
}

// installSignalHandler closes all live sites on SIGINT/SIGTERM/SIGHUP, then
// exits like the signal would have. Bounded: after 15 s, or on a second
// signal, it exits without waiting further.
func installSignalHandler() {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "harness: %v: removing test networks\n", sig)
		go func() {
			regMu.Lock()
			var nets []*Network
			for n := range registry {
				nets = append(nets, n)
			}
			regMu.Unlock()
			for _, n := range nets {
				if err := n.Close(); err != nil {
					fmt.Fprintf(os.Stderr, "harness: %v\n", err)
				}
			}
			close(sigClosed)
		}()
		select {
		case <-sigClosed:
		case <-ch:
		case <-time.After(15 * time.Second):
		}
		code := 128
		if s, ok := sig.(syscall.Signal); ok {
			code += int(s)
		}
		os.Exit(code)
	}()
}
