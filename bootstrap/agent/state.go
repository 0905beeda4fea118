package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/localapi"
)

// Persisted is what must survive a restart of the agent or of the node. It
// lives on the persistent data path and is written atomically (new file,
// fsync, rename), so a power loss leaves the old or the new version.
type Persisted struct {
	Member   bool     `json:"member"`
	Term     uint64   `json:"term"`
	TermRole fsm.Role `json:"term_role"`
	// TermBy is the node that began Term: a term is (number, who began
	// it), so that two nodes that each began the same number on their own
	// (a split, or one node away while the other took over) never share a
	// term; two leaders of one number are exactly that case.
	TermBy string `json:"term_by,omitempty"`
	// ForkRev is the Kine revision when this node's current term began: the
	// archive of a lost split starts its search there.
	ForkRev int64 `json:"fork_rev"`
	// PausedUntil is this node's pause (upgrades): it survives reboots.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	// PairOffset is the peer's clock minus ours, last measured while the
	// two were paired; a split is judged with it.
	PairOffset time.Duration `json:"pair_offset_ns"`
	// ArchivedTerm is the term whose split-brain rows were last saved, so a
	// retried rejoin does not try to read data it has since rewound.
	ArchivedTerm uint64 `json:"archived_term,omitempty"`
	// HighRev is the highest Kine revision this node held before a lost
	// split's rewind discarded it; FencedPast the highest of the peer's
	// that this node's revisions were moved past (see fsm.Self).
	HighRev    int64              `json:"high_rev,omitempty"`
	FencedPast int64              `json:"fenced_past,omitempty"`
	Archives   []localapi.Archive `json:"archives,omitempty"`
	// LostSplits are when this node lost a split brain within the last
	// splitMemory: each makes it slower to promote (fsm: flap damping).
	LostSplits []time.Time `json:"lost_splits,omitempty"`
	// Alone: this leader's term is one of leading alone, with no follower
	// streaming in it since (set by NewTerm and SyncOff, cleared by SyncOn
	// and Followed), so that after a reboot it goes on in the same term.
	Alone bool `json:"alone,omitempty"`
	// Async: this leader's replication is asynchronous (set by NewTerm and
	// SyncOff, cleared by SyncOn): with Alone clear, a follower streamed
	// but writes were acknowledged without it.
	Async bool `json:"async,omitempty"`
	// WitnessLease is the lease this node last took at the witness to lead
	// alone (0: none), so that a restarted agent claims with it again.
	WitnessLease int64 `json:"witness_lease,omitempty"`
	// Intent is the transition under way, recorded before its first
	// action and cleared after its last (fsm.Intent): an agent that dies
	// half-way finds it on start.
	Intent *fsm.Intent `json:"intent,omitempty"`
}

const stateFile = "state.json"

// splitMemory is how long a lost split keeps a node's promotion damped.
const splitMemory = time.Hour

// recent is the splits lost within splitMemory before now.
func (p Persisted) recent(now time.Time) []time.Time {
	var kept []time.Time
	for _, at := range p.LostSplits {
		if now.Sub(at) < splitMemory {
			kept = append(kept, at)
		}
	}
	return kept
}

// recentSplits counts the splits lost within splitMemory before now.
func (p Persisted) recentSplits(now time.Time) int { return len(p.recent(now)) }

// lostSplit records a split lost at now, forgetting those past splitMemory.
func (p *Persisted) lostSplit(now time.Time) { p.LostSplits = append(p.recent(now), now) }

func loadState(dir string) (Persisted, error) {
	var p Persisted
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("state: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("state: %s is corrupt (%w): refusing to guess; move it aside to rejoin as a new member", filepath.Join(dir, stateFile), err)
	}
	return p, nil
}

func saveState(dir string, p Persisted) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	// 0711: PostgreSQL (another user) must traverse it to its pgdata.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	d, err := os.Open(dir)
	if err == nil {
		_ = d.Sync() // make the rename itself durable
		d.Close()
	}
	return nil
}
