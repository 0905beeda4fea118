package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// fakeDB is an in-memory PostgreSQL: enough state for the agent's wiring.
type fakeDB struct {
	mu            sync.Mutex
	calls         []string
	data          bool
	up            bool
	standby       bool
	sync          bool
	maxRev        int64
	lastWrite     time.Time // the newest write not on a timer
	lastCommit    time.Time // the newest commit of any kind
	archived      []string  // rows "only here", written by Archive
	failOn        string    // an action name that fails once
	peerStreaming bool
	slow          bool   // Status times out (a busy server)
	peerBlocked   bool   // the peer's database port is blocked: copies fail
	peerFlushed   uint64 // the follower's flush position (PeerFlushLSN)
	standbyHangs  bool   // a standby start waits until its context ends (never consistent)
}

func (f *fakeDB) call(name string) error {
	f.calls = append(f.calls, name)
	if f.failOn == name {
		f.failOn = ""
		return fmt.Errorf("injected failure of %s", name)
	}
	return nil
}

func (f *fakeDB) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeDB) HasData() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.data }
func (f *fakeDB) InitDB(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.data {
		return errors.New("data exists")
	}
	f.data, f.up, f.standby = true, true, false
	return f.call("initdb")
}
func (f *fakeDB) Start(ctx context.Context, standby bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if standby && f.standbyHangs {
		f.calls = append(f.calls, "start(standby=true): waits")
		f.mu.Unlock()
		<-ctx.Done()
		f.mu.Lock()
		f.up = true // it runs, not consistent: the fallback stops it
		return fmt.Errorf("pg_ctl start: %w", ctx.Err())
	}
	// Like postgres.Manager.Start: it never changes a running server's role.
	if f.up && f.standby != standby {
		f.calls = append(f.calls, fmt.Sprintf("start(standby=%v) refused", standby))
		return fmt.Errorf("start(standby=%v): it runs with standby=%v", standby, f.standby)
	}
	f.up, f.standby = true, standby
	return f.call(fmt.Sprintf("start(standby=%v)", standby))
}
func (f *fakeDB) Stop(context.Context, bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up = false
	return f.call("stop")
}
func (f *fakeDB) Crash(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up = false
	return f.call("crash")
}
func (f *fakeDB) BaseBackup(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peerBlocked {
		f.calls = append(f.calls, "basebackup: no connection")
		return fmt.Errorf("base backup: %w", postgres.ErrNoPeerConnection)
	}
	f.data = true
	return f.call("basebackup")
}
func (f *fakeDB) Rewind(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peerBlocked {
		f.calls = append(f.calls, "rewind: no connection")
		return fmt.Errorf("pg_rewind: %w", postgres.ErrNoPeerConnection)
	}
	return f.call("rewind")
}
func (f *fakeDB) Promote(context.Context) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// It takes a millisecond, as it says (the failover timeline counts
	// back from its end to when it was asked); a failed one leaves a
	// standby.
	time.Sleep(time.Millisecond)
	if err := f.call("promote"); err != nil {
		return time.Millisecond, err
	}
	f.standby = false
	return time.Millisecond, nil
}
func (f *fakeDB) SetSync(_ context.Context, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sync = on
	return f.call(fmt.Sprintf("sync(%v)", on))
}
func (f *fakeDB) EnsureSlot(context.Context, string) error { return nil }
func (f *fakeDB) RevisionFence(_ context.Context, margin, floor int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if floor > 0 && f.maxRev > floor {
		return 0, f.call("fence")
	}
	f.maxRev = max(f.maxRev, floor) + margin
	return f.maxRev, f.call("fence")
}
func (f *fakeDB) RecordTerm(context.Context, uint64, string, string, int64) error { return nil }
func (f *fakeDB) MaxRevision(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxRev, nil
}
func (f *fakeDB) MaxTerm(context.Context) (uint64, error) { return 0, nil }
func (f *fakeDB) LastWrite(context.Context) (time.Time, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastWrite, "/registry/configmaps/default/x", nil
}
func (f *fakeDB) Status(context.Context) (postgres.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.slow {
		return postgres.Status{}, fmt.Errorf("postgres: status: no answer in time: %w", context.DeadlineExceeded)
	}
	if !f.up {
		return postgres.Status{}, errors.New("down")
	}
	return postgres.Status{Up: true, InRecovery: f.standby, ReceiverStreaming: f.standby, Streaming: !f.standby && f.peerStreaming,
		LastCommit: f.lastCommit, PeerFlushLSN: f.peerFlushed}, nil
}
func (f *fakeDB) Archive(_ context.Context, _ int64, w io.Writer, h postgres.ArchiveHeader) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h.Count = len(f.archived)
	fmt.Fprintf(w, `{"kind":"header","count":%d}`+"\n", h.Count)
	for _, r := range f.archived {
		fmt.Fprintln(w, r)
	}
	return len(f.archived), f.call("archive")
}

// fakePeer is the other agent as seen over the network.
type fakePeer struct {
	mu      sync.Mutex
	up      bool
	st      peer.Status
	paused  time.Duration
	handed  bool
	resumed bool
}

func (p *fakePeer) Status(context.Context) (peer.Status, time.Time, time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.up {
		return peer.Status{}, now, now, errors.New("unreachable")
	}
	s := p.st
	s.Now = now.UnixNano()
	return s, now, now, nil
}
func (p *fakePeer) Pause(_ context.Context, r peer.PauseRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.up {
		return errors.New("unreachable")
	}
	p.paused = time.Duration(r.For)
	return nil
}
func (p *fakePeer) Resume(context.Context, peer.ResumeRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resumed = true
	return nil
}
func (p *fakePeer) Follow(context.Context, peer.FollowRequest) error { return nil }

func (p *fakePeer) Handover(context.Context, peer.HandoverRequest) (peer.HandoverResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handed = true
	return peer.HandoverResponse{Promoted: true}, nil
}

// fakeKine records where Kine points.
type fakeKine struct {
	mu     sync.Mutex
	target string
}

func (k *fakeKine) Point(_ context.Context, host string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.target = host
	return nil
}
func (k *fakeKine) Stop(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.target = ""
	return nil
}
func (k *fakeKine) Kill(ctx context.Context) error { return k.Stop(ctx) }
func (k *fakeKine) Ensure(context.Context) error   { return nil }
func (k *fakeKine) Target() string                 { k.mu.Lock(); defer k.mu.Unlock(); return k.target }
