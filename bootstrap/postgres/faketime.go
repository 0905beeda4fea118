package postgres

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// faketimeGlobs are where Debian's faketime package puts the library.
var faketimeGlobs = []string{
	"/usr/lib/*/faketime/libfaketime.so.1",
	"/usr/lib/faketime/libfaketime.so.1",
}

// FaketimeEnv is the environment that moves PostgreSQL's wall clock by
// offset through libfaketime (FOR FAULT TESTS ONLY: the agent's
// test_clock_offset). Go does not read the time through libc, so the agent
// moves its own clock itself; PostgreSQL's commit timestamps must move with
// it, or the skew a test injects would be half a skew. Monotonic clocks are
// left alone: timeouts must still measure real time. No offset, no
// environment.
func FaketimeEnv(offset time.Duration) ([]string, error) {
	if offset == 0 {
		return nil, nil
	}
	for _, g := range faketimeGlobs {
		if m, _ := filepath.Glob(g); len(m) > 0 {
			return []string{
				"LD_PRELOAD=" + m[0],
				fmt.Sprintf("FAKETIME=%+ds", int64(offset/time.Second)),
				"FAKETIME_DONT_FAKE_MONOTONIC=1",
			}, nil
		}
	}
	return nil, errors.New("test_clock_offset needs libfaketime to move PostgreSQL's clock too (apt-get install faketime)")
}

// SlowSyncEnv names a preload library (FOR FAULT TESTS ONLY) that delays
// PostgreSQL's fsync and fdatasync by the milliseconds written in a
// control file: a disk that answers, slowly. The value is
// "LIBRARY:CONTROL_FILE"; e2e/cluster builds the library.
const SlowSyncEnv = "TWONODE_TEST_SLOW_SYNC"

// WithSlowSync adds the slow-sync library to env (from FaketimeEnv):
// LD_PRELOAD takes both libraries, separated by a colon.
func WithSlowSync(env []string, value string) ([]string, error) {
	lib, file, ok := strings.Cut(value, ":")
	if !ok || !filepath.IsAbs(lib) || !filepath.IsAbs(file) {
		return nil, fmt.Errorf("%s must be LIBRARY:CONTROL_FILE, both absolute paths (got %q)", SlowSyncEnv, value)
	}
	out := []string{"TWONODE_SLOW_SYNC_FILE=" + file}
	preload := lib
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "LD_PRELOAD="); ok {
			preload = v + ":" + lib
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LD_PRELOAD="+preload), nil
}
