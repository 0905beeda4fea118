package agent

import (
	"context"
	"io"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// Database is what the agent needs of the local PostgreSQL; *postgres.Manager
// implements it, and the tests use an in-memory fake.
type Database interface {
	HasData() bool
	InitDB(ctx context.Context) error
	Start(ctx context.Context, standby bool) error
	Stop(ctx context.Context, immediate bool) error
	Crash(ctx context.Context) error // an immediate stop, not waited for
	BaseBackup(ctx context.Context) error
	Rewind(ctx context.Context) error
	Promote(ctx context.Context) (time.Duration, error)
	SetSync(ctx context.Context, on bool) error
	EnsureSlot(ctx context.Context, name string) error
	RevisionFence(ctx context.Context, margin, floor int64) (int64, error)
	RecordTerm(ctx context.Context, term uint64, kind, node string, forkRev int64) error
	MaxRevision(ctx context.Context) (int64, error)
	MaxTerm(ctx context.Context) (uint64, error)
	LastWrite(ctx context.Context) (time.Time, string, error)
	Status(ctx context.Context) (postgres.Status, error)
	Archive(ctx context.Context, forkRev int64, w io.Writer, h postgres.ArchiveHeader) (int, error)
}

// PeerClient is what the agent needs of the other node's agent.
type PeerClient interface {
	Status(ctx context.Context) (peer.Status, time.Time, time.Time, error)
	Pause(ctx context.Context, r peer.PauseRequest) error
	Resume(ctx context.Context, r peer.ResumeRequest) error
	Handover(ctx context.Context, r peer.HandoverRequest) (peer.HandoverResponse, error)
	Follow(ctx context.Context, r peer.FollowRequest) error
}

// Pinger checks that the peer's PostgreSQL answers SQL.
type Pinger func(ctx context.Context) error

var (
	_ Database   = (*postgres.Manager)(nil)
	_ PeerClient = (*peer.Client)(nil)
)
