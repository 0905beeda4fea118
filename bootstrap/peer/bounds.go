package peer

import (
	"errors"
	"fmt"
	"time"
)

// Bounds on what a peer may say. Nothing a correct agent sends comes near
// them; a value past one is a bug or a lie, and a node never acts on it
// (an unbounded term wrapped Term+1 to 0, a revision near MaxInt64
// overflowed the fence and made the leader flap, an unbounded pause
// blocked failover for ever).
const (
	// MaxTerm: a term begins at most once per failover; 2^40 of them is
	// more than a million years at one per 30 s.
	MaxTerm = 1 << 40
	// MaxRev: Kine revisions are int64 ids; the fence adds a million per
	// promotion. 2^53 leaves room for both and is exact in JSON numbers.
	MaxRev = 1 << 53
	// MaxOffset: the clock offset the pair may measure and use (the
	// matrix's clock-skew fault is ten minutes).
	MaxOffset = 24 * time.Hour
)

var (
	knownStates = map[string]bool{"starting": true, "joining": true, "follower": true, "leader": true, "leader_alone": true}
	knownRoles  = map[string]bool{"": true, "leader": true, "follower": true}
)

// CheckStatus returns why a peer's status cannot be believed, or nil.
func CheckStatus(s Status) error {
	var errs []error
	bad := func(f string, args ...any) { errs = append(errs, fmt.Errorf(f, args...)) }
	if !knownStates[s.State] {
		bad("state %q: unknown", s.State)
	}
	if !knownRoles[s.TermRole] {
		bad("term_role %q: unknown", s.TermRole)
	}
	if s.Term > MaxTerm {
		bad("term %d: more than %d", s.Term, uint64(MaxTerm))
	}
	for _, r := range []struct {
		name string
		v    int64
	}{{"fork_rev", s.ForkRev}, {"high_rev", s.HighRev}, {"fenced_past", s.FencedPast}} {
		if r.v < 0 || r.v > MaxRev {
			bad("%s %d: outside 0..%d", r.name, r.v, int64(MaxRev))
		}
	}
	if s.PausedFor < 0 || s.PausedFor > int64(MaxPause) {
		bad("paused_for_ns %d: outside 0..%s", s.PausedFor, MaxPause)
	}
	if s.PairOffset < -int64(MaxOffset) || s.PairOffset > int64(MaxOffset) {
		bad("pair_offset_ns %d: more than %s either way", s.PairOffset, MaxOffset)
	}
	if s.OldestWAL != 0 && !s.Primary {
		bad("oldest_wal %d: only a primary has WAL to give", s.OldestWAL)
	}
	if s.LastCommit < 0 {
		bad("last_commit %d: negative", s.LastCommit)
	}
	if s.Now <= 0 {
		bad("now %d: not a time", s.Now)
	}
	if s.Name != "" {
		if err := validBy(s.Name); err != nil {
			bad("name: %v", err)
		}
	}
	return errors.Join(errs...)
}
