// Package localapi is the operator's way into the local agent: HTTP over a
// unix socket (<run_dir>/agent.sock, mode 0600, so only root gets in; the
// file permissions are the authentication). The `twonode` CLI uses Client;
// the daemon serves NewServer on the listener from Listen.
package localapi

import (
	"context"
	"errors"
	"time"
)

// StatusReport is everything `twonode status` shows.
type StatusReport struct {
	Node          string `json:"node"`
	Peer          string `json:"peer"`
	State         string `json:"state"`
	Role          string `json:"role"`
	Term          uint64 `json:"term"`
	PeerReachable bool   `json:"peer_reachable"`
	// PeerProblem is why an answer from the peer's address was not
	// believed (its TLS certificate refused, a wrong signature, impossible
	// values), "" when it was or when nothing answered.
	PeerProblem      string        `json:"peer_problem,omitempty"`
	PeerState        string        `json:"peer_state"`
	PeerTerm         uint64        `json:"peer_term"`
	Replication      string        `json:"replication"` // "sync", "async", "streaming" (follower), "none"
	LagBytes         int64         `json:"lag_bytes"`
	PGUp             bool          `json:"pg_up"`
	KineEndpoint     string        `json:"kine_target"`           // host only, never credentials
	PausedUntil      time.Time     `json:"paused_until,omitzero"` // omitzero: omitempty never omits a struct
	Paused           bool          `json:"paused"`
	LastTransition   string        `json:"last_transition"`
	LastTransitionAt time.Time     `json:"last_transition_at"`
	LastFailover     time.Duration `json:"last_failover_ns"`
	ClockOffset      time.Duration `json:"clock_offset_ns"`
	DiskFull         bool          `json:"disk_full"`     // the data filesystem is (nearly) full: a leader hands over
	RecentSplits     int           `json:"recent_splits"` // splits lost in the last hour: each doubles the wait before promoting
	// Unfinished is the transition under way or cut short (the agent's
	// recorded intent), "" when none.
	Unfinished string `json:"unfinished,omitempty"`
	// Witness is what this node knows of the pair's witness, in words (""
	// without one); Waiting, a take-over or going alone the witness does
	// not allow now, and why.
	Witness string `json:"witness,omitempty"`
	Waiting string `json:"waiting,omitempty"`
	// Address is the pair's stable API address and whether this node
	// holds it ("" without one).
	Address string `json:"address,omitempty"`
	// CommitLatency (leader) is how long this node's last tiny commit
	// took, or the one still in flight if longer: what a write feels from
	// this node's disk. PeerFlushLag (leader) is from this node's flush of
	// recent WAL to the follower's report that it flushed it too. Zero:
	// not measured (a follower) or idle.
	CommitLatency time.Duration `json:"commit_latency_ns,omitempty"`
	PeerFlushLag  time.Duration `json:"peer_flush_lag_ns,omitempty"`
	// DiskSlow says which disk the leader judges slow and what the pair
	// does about it ("" when neither).
	DiskSlow string    `json:"disk_slow,omitempty"`
	Archives []Archive `json:"archives"`
	Version  string    `json:"version"`
}

// Archive is one split-brain archive: rows only this node had when it lost
// a split, kept as evidence before it rejoined.
type Archive struct {
	Path    string    `json:"path"`
	Rows    int       `json:"rows"`
	Term    uint64    `json:"term"`
	Winner  string    `json:"winner"`
	Created time.Time `json:"created"`
}

// Handler is the agent behind the server. The strings are sentences for a
// human. Errors wrapping ErrConflict are refusals of state ("the peer is
// alive: use --force") and answer 409; others 500 (504 on a deadline).
type Handler interface {
	Status(ctx context.Context) StatusReport
	Pause(ctx context.Context, d time.Duration) (string, error) // returns a human sentence, e.g. "paused on a and b until 14:03:05 UTC"
	Resume(ctx context.Context) (string, error)
	Promote(ctx context.Context, force bool) (string, error)
	Switchover(ctx context.Context) (string, error)
}

// ErrConflict marks a refusal that depends on the cluster's state.
var ErrConflict = errors.New("conflict")

// ErrPartial marks a command done on this node only (the peer did not
// answer): the handler returns it with its message; the client returns the
// message with an error wrapping it, and `twonode` exits 3.
var ErrPartial = errors.New("done on this node only")

// Wire bodies.
type (
	pauseRequest struct {
		For string `json:"for"` // a Go duration: "1h", "90m"
	}
	promoteRequest struct {
		Force bool `json:"force"`
	}
	emptyRequest struct{}
	messageReply struct {
		Message string `json:"message"`
		Partial bool   `json:"partial,omitempty"` // see ErrPartial
	}
	errorReply struct {
		Error string `json:"error"`
	}
)

const maxBodyBytes = 64 << 10

// Deadlines. The server's are a little shorter than the client's, so the
// operator reads the agent's own "timed out while ..." rather than a bare
// client timeout. Promotion and switchover restart PostgreSQL and Kine.
const (
	clientTimeout     = 30 * time.Second
	clientLongTimeout = 2 * time.Minute
	serverTimeout     = 25 * time.Second
	serverLongTimeout = 110 * time.Second
)
