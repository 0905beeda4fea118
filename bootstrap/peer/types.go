package peer

import (
	"context"
	"errors"
	"time"
)

// Status is what an agent reports about itself. Times are int64 unix
// nanoseconds of the SENDER's clock; durations are clock-free.
type Status struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	Term       uint64 `json:"term"`
	TermRole   string `json:"term_role"`
	Alone      bool   `json:"alone"`
	Member     bool   `json:"member"`
	PGUp       bool   `json:"pg_up"`
	Primary    bool   `json:"primary"`
	LastCommit int64  `json:"last_commit"`
	Now        int64  `json:"now"`
	PausedFor  int64  `json:"paused_for_ns"`  // remaining pause, a duration (clock-free)
	PairOffset int64  `json:"pair_offset_ns"` // reporter's last measured offset of ITS peer's clock (peer minus self), measured while paired
	ForkRev    int64  `json:"fork_rev"`
	HighRev    int64  `json:"high_rev"`    // highest revision this node's clients saw before a lost split
	FencedPast int64  `json:"fenced_past"` // highest peer HighRev this node's revisions passed
	DiskFull   bool   `json:"disk_full"`   // the data filesystem is (nearly) full
	// FollowerSlow: (a leader) it judges its follower's flushes slow.
	// Shown in the follower's status (its own disk is the slow one); it
	// decides nothing there.
	FollowerSlow bool `json:"follower_slow,omitempty"`
	// KineServing: this node's Kine writes to this node's database (it
	// takes writes); a split is decided only once neither does.
	KineServing bool `json:"kine_serving"`
	// Rejoining: this node conceded (lost a split, or is replacing its
	// data) and its Kine is stopped: the other may resume writes.
	Rejoining bool `json:"rejoining,omitempty"`
	// OldestWAL: (a primary whose follower does not stream) where the
	// oldest WAL segment it keeps begins; a follower that must resume
	// before it copies the data afresh instead of waiting to stream.
	OldestWAL uint64 `json:"oldest_wal,omitempty"`
	// Unobserved: this agent has not completed a tick since it started, so
	// the rest says nothing yet of its PostgreSQL (a restarted agent that
	// is about to finish a promotion reported "not a primary").
	Unobserved bool   `json:"unobserved,omitempty"`
	Version    string `json:"version"`
}

// PauseRequest pauses automatic failover on the receiving node too, so that
// an upgrade of one node does not make the other take over. For is a
// duration in nanoseconds, > 0 and <= MaxPause.
type PauseRequest struct {
	For int64  `json:"for_ns"`
	By  string `json:"by"`
}

// ResumeRequest ends a pause early.
type ResumeRequest struct {
	By string `json:"by"`
}

// HandoverRequest is a planned switchover: the leader, having stopped its
// PostgreSQL cleanly, asks the follower to promote once it has replayed LSN,
// and to start Term.
type HandoverRequest struct {
	Term uint64 `json:"term"`
	LSN  uint64 `json:"lsn"`
	By   string `json:"by"`
}

// FollowRequest tells the leader that the sender is about to copy its data
// and adopt Term as its follower. The leader records that it is followed
// in Term before answering: from then on the sender may promote into the
// next term, and the leader begins that term too if it loses the sender.
type FollowRequest struct {
	Term uint64 `json:"term"`
	By   string `json:"by"`
}

// HandoverResponse is the follower's answer to a HandoverRequest.
type HandoverResponse struct {
	Term     uint64 `json:"term"`
	Promoted bool   `json:"promoted"`
	Message  string `json:"message"`
}

// Handler is the agent behind the server. Errors wrapping ErrConflict are
// refusals of state (wrong term, not a follower) and answer 409; others 500.
type Handler interface {
	Status(ctx context.Context) Status
	Pause(ctx context.Context, r PauseRequest) error
	Resume(ctx context.Context, r ResumeRequest) error
	Handover(ctx context.Context, r HandoverRequest) (HandoverResponse, error)
	Follow(ctx context.Context, r FollowRequest) error
}

// ErrConflict marks a handler's refusal that depends on state rather than a
// fault (HTTP 409). On the client, errors.Is(err, ErrConflict) is true for a
// signed 409 answer.
var ErrConflict = errors.New("conflict")

// ErrForged is returned by the client when an answer that matters is not
// signed with the cluster secret: an impostor, or the two nodes have
// different secrets.
var ErrForged = errors.New("answer not signed by the peer")

// Limits shared by the server and the client.
const (
	MaxPause     = 24 * time.Hour
	MaxBodyBytes = 64 << 10 // request bodies
	maxBy        = 64
	maxReply     = 1 << 20 // the client reads at most this much of an answer
)

// Deadlines the server gives the handler. Handover waits for the follower to
// replay and promote, so it gets far longer than a probe.
const (
	statusDeadline   = 5 * time.Second
	commandDeadline  = 30 * time.Second
	handoverDeadline = 90 * time.Second
)

// errorReply is the body of every refusal.
type errorReply struct {
	Error string `json:"error"`
}

// okReply is the body of a successful pause or resume: it must differ from
// a refusal's body because the signature does not cover the status code.
type okReply struct {
	OK bool `json:"ok"`
}

type challengeReply struct {
	Challenge string `json:"challenge"`
}

// msgStale is matched by the client to retry once with a fresh challenge.
const msgStale = "stale or replayed request"

// ErrImplausible is returned by the client for a signed answer whose
// values no correct agent sends (CheckStatus): it is not acted on.
var ErrImplausible = errors.New("implausible answer")
