package postgres

import (
	"errors"
	"fmt"
	"path/filepath"
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
