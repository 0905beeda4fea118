package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/archive"
	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// The fakes of the actors one simulated node drives: its PostgreSQL, its
// Kine and its peer client, all reading and changing the shared world.

// simInst is one incarnation of a node's agent: its actors. Once dead,
// every call fails and the world throws the agent away.
type simInst struct {
	w    *simWorld
	n    *simNode
	a    *Agent
	dead bool
	why  string
	// crashAfter: the current call is the planned last one, after its effect.
	crashAfter bool
}

func (i *simInst) die(why string) {
	i.dead, i.why = true, why
	if i.w.onCrash != nil {
		i.w.onCrash(i.n)
	}
}

// before is the start of an effectful call: counted (while the agent runs
// a transition's actions) and, if planned, the agent's last.
func (i *simInst) before(name string) error {
	if i.dead {
		return errCrashed
	}
	i.crashAfter = false
	if i.a == nil || !i.a.acting.Load() {
		return nil
	}
	n := i.n
	n.calls++
	if i.w.record {
		n.callLog = append(n.callLog, name)
	}
	c := n.crash
	if c == nil {
		return nil
	}
	hit := false
	if c.call != "" && c.call == name {
		c.seen++
		hit = c.seen == c.nth
	} else if c.call == "" && c.at == n.calls {
		hit = true
	}
	if !hit {
		return nil
	}
	n.crash = nil
	if c.after {
		i.crashAfter = true
		return nil
	}
	i.die(c.String() + " (" + name + ")")
	return errCrashed
}

// after ends an effectful call whose effect happened.
func (i *simInst) after(name string, err error) error {
	i.w.settle()
	if i.crashAfter {
		i.crashAfter = false
		i.die("after " + name)
		return errCrashed
	}
	return err
}

func (i *simInst) alive() error {
	if i.dead {
		return errCrashed
	}
	return nil
}

func (i *simInst) ping(context.Context) error {
	if err := i.alive(); err != nil {
		return err
	}
	p := i.w.peerOf(i.n)
	if !i.w.canConnect(i.n, p) || !p.pg.running {
		return context.DeadlineExceeded
	}
	return nil
}

// simDB is the node's PostgreSQL as the agent's Database.
type simDB struct{ *simInst }

func (d simDB) pg() *simPG { return &d.n.pg }

func (d simDB) HasData() bool { return d.n.pg.data }

func (d simDB) InitDB(context.Context) error {
	if err := d.before("initdb"); err != nil {
		return err
	}
	var err error
	if d.pg().data {
		err = errors.New("postgres: initdb: refusing: the data directory already holds a cluster")
	} else {
		d.pg().data = true
		d.w.appendEntry(d.n, eInit, 0)
	}
	return d.after("initdb", err)
}

func (d simDB) Start(_ context.Context, standby bool) error {
	name := "start-primary"
	if standby {
		name = "start-standby"
	}
	if err := d.before(name); err != nil {
		return err
	}
	return d.after(name, d.w.pgStart(d.n, standby))
}

func (w *simWorld) pgStart(n *simNode, standby bool) error {
	pg := &n.pg
	switch {
	case !pg.data:
		return errors.New("postgres: start: no cluster")
	case pg.running && pg.standby == standby:
		return nil
	case pg.running && standby:
		return errors.New("postgres: start as standby: it runs as a primary: stop and rewind it first")
	case pg.running:
		return errors.New("postgres: start as primary: it runs as a standby: promote it instead")
	}
	pg.running, pg.sync = true, false
	if standby {
		pg.standby, pg.signal, pg.dirty = true, true, false
		return nil
	}
	pg.standby = false
	switch {
	case pg.signal: // a standby's data opened as a primary: promoted to a new timeline
		pg.signal = false
		w.appendEntry(n, ePromo, 0)
	case pg.dirty: // crash recovery ends with a checkpoint
		w.appendEntry(n, eCkpt, 0)
	}
	pg.dirty = false
	return nil
}

func (d simDB) Stop(_ context.Context, immediate bool) error {
	if err := d.before("stop"); err != nil {
		return err
	}
	pg := d.pg()
	if pg.running {
		if !pg.standby && !immediate {
			// The shutdown checkpoint reaches a connected standby before exit.
			d.w.appendEntry(d.n, eCkpt, 0)
			d.w.settle()
		}
		pg.running = false
		pg.dirty = immediate
	}
	return d.after("stop", nil)
}

// Crash is an immediate stop: in the simulation it is over at once (the
// real one is waited for by the next Stop, Start or Rewind).
func (d simDB) Crash(ctx context.Context) error { return d.Stop(ctx, true) }

// copyFromPeer is pg_rewind's and pg_basebackup's result: the peer's WAL,
// prepared as a standby, not started.
func (w *simWorld) copyFromPeer(n *simNode, tool string, rewind bool) error {
	p := w.peerOf(n)
	if !w.canConnect(n, p) || !p.pg.running {
		return fmt.Errorf("postgres: %s from %s: could not connect to the source server", tool, p.addr)
	}
	if rewind {
		if !n.pg.data {
			return errors.New("postgres: rewind: no cluster")
		}
		if n.pg.running {
			return errors.New("postgres: rewind: target server must be shut down cleanly")
		}
		if len(n.pg.wal) == 0 || len(p.pg.wal) == 0 || n.pg.wal[0].ID != p.pg.wal[0].ID {
			return errors.New("postgres: pg_rewind: source and target clusters are from different systems")
		}
	}
	n.pg = simPG{data: true, signal: true, wal: slices.Clip(p.pg.wal)}
	return nil
}

func (d simDB) BaseBackup(context.Context) error {
	if err := d.before("base-backup"); err != nil {
		return err
	}
	d.pg().running = false
	return d.after("base-backup", d.w.copyFromPeer(d.n, "pg_basebackup", false))
}

func (d simDB) Rewind(context.Context) error {
	if err := d.before("rewind"); err != nil {
		return err
	}
	return d.after("rewind", d.w.copyFromPeer(d.n, "pg_rewind", true))
}

func (d simDB) Promote(context.Context) (time.Duration, error) {
	if err := d.before("promote"); err != nil {
		return 0, err
	}
	pg := d.pg()
	var err error
	switch {
	case !pg.running:
		err = errors.New("postgres: promote: not running")
	case !pg.standby:
		pg.sync = false // the inherited settings are cleared first
	default:
		pg.standby, pg.signal, pg.sync = false, false, false
		d.w.appendEntry(d.n, ePromo, 0)
	}
	return time.Millisecond, d.after("promote", err)
}

func (d simDB) SetSync(_ context.Context, on bool) error {
	name := "sync-off"
	if on {
		name = "sync-on"
	}
	if err := d.before(name); err != nil {
		return err
	}
	var err error
	if !d.pg().running {
		err = errors.New("postgres: set sync: not running")
	} else {
		d.pg().sync = on
	}
	return d.after(name, err)
}

func (d simDB) EnsureSlot(context.Context, string) error {
	if err := d.before("ensure-slot"); err != nil {
		return err
	}
	var err error
	if !d.pg().running {
		err = errors.New("postgres: ensure slot: not running")
	}
	return d.after("ensure-slot", err)
}

func (d simDB) RevisionFence(_ context.Context, margin, floor int64) (int64, error) {
	if err := d.before("fence"); err != nil {
		return 0, err
	}
	pg := d.pg()
	var f int64
	var err error
	switch {
	case !pg.running:
		err = errors.New("postgres: revision fence: not running")
	case pg.standby:
		err = errors.New("postgres: revision fence: cannot execute LOCK TABLE during recovery")
	case pg.maxRev() == 0: // Kine has not created its table yet
	default:
		cur := pg.maxRev()
		if floor > 0 && cur > floor {
			break
		}
		f = max(cur, floor) + margin
		d.w.appendEntry(d.n, eFence, f)
	}
	return f, d.after("fence", err)
}

func (d simDB) RecordTerm(_ context.Context, term uint64, _, _ string, _ int64) error {
	if err := d.before("record-term"); err != nil {
		return err
	}
	var err error
	if pg := d.pg(); !pg.running || pg.standby {
		err = errors.New("postgres: record term: not a running primary")
	} else {
		d.w.appendEntry(d.n, eTerm, 0)
		pg.wal[len(pg.wal)-1].Term = term
	}
	return d.after("record-term", err)
}

// MaxTerm is the newest term in this node's WAL (replicated on a standby).
func (d simDB) MaxTerm(context.Context) (uint64, error) {
	if err := d.alive(); err != nil {
		return 0, err
	}
	pg := d.pg()
	if !pg.running {
		return 0, errors.New("postgres: max term: not running")
	}
	var t uint64
	for _, e := range pg.wal {
		if e.Kind == eTerm {
			t = max(t, e.Term)
		}
	}
	return t, nil
}

func (d simDB) MaxRevision(context.Context) (int64, error) {
	if err := d.before("max-revision"); err != nil {
		return 0, err
	}
	if !d.pg().running {
		return 0, d.after("max-revision", errors.New("postgres: max revision: not running"))
	}
	return d.pg().maxRev(), d.after("max-revision", nil)
}

func (d simDB) LastWrite(context.Context) (time.Time, string, error) {
	if err := d.alive(); err != nil {
		return time.Time{}, "", err
	}
	pg := d.pg()
	if !pg.running {
		return time.Time{}, "", errors.New("postgres: last write: not running")
	}
	for i := len(pg.wal) - 1; i >= 0; i-- {
		if e := pg.wal[i]; e.Kind == eRow {
			return e.At, fmt.Sprintf("/registry/sim/%d", e.ID), nil
		}
	}
	return time.Time{}, "", nil
}

func (d simDB) Status(context.Context) (postgres.Status, error) {
	st := postgres.Status{PeerFlushLagBytes: -1}
	simHeard(&st, false, "")
	if err := d.alive(); err != nil {
		return st, err
	}
	pg, p := d.pg(), d.w.peerOf(d.n)
	if !pg.running {
		return st, nil
	}
	st.Up, st.InRecovery = true, pg.standby
	for i := len(pg.wal) - 1; i >= 0; i-- {
		if k := pg.wal[i].Kind; k == eRow || k == eFence || k == eTerm {
			st.LastCommit = pg.wal[i].At
			break
		}
	}
	lsn := uint64(len(pg.wal))
	if pg.standby {
		st.ReceiveLSN, st.ReplayLSN = lsn, lsn
		st.ReceiverStreaming = d.w.streamingFrom(d.n, p)
		simHeard(&st, st.ReceiverStreaming, d.w.mark(d.n))
	} else {
		st.CurrentLSN = lsn
		st.Streaming = d.w.streamingFrom(p, d.n)
		simHeard(&st, st.Streaming, d.w.mark(d.n))
		if st.Streaming {
			st.PeerFlushLagBytes = 0
		}
		if pg.sync {
			st.SyncStandbyNames = fmt.Sprintf(`FIRST 1 ("%s")`, d.n.peerName)
		}
	}
	return st, nil
}

// simHeard says whether replication brought a message from the peer just
// now, in whichever form postgres.Status has: HeardAgo (a duration, -1 if
// never) or PeerMark (changes with every message, "" if none). Set by
// reflection so the world compiles against either.
func simHeard(st *postgres.Status, heard bool, mark string) {
	v := reflect.ValueOf(st).Elem()
	if f := v.FieldByName("HeardAgo"); f.IsValid() {
		if heard {
			f.SetInt(0)
		} else {
			f.SetInt(-1)
		}
	}
	if f := v.FieldByName("PeerMark"); f.IsValid() {
		if heard {
			f.SetString(mark)
		} else {
			f.SetString("")
		}
	}
}

// mark is what a streaming node last heard: a keepalive every round.
func (w *simWorld) mark(n *simNode) string {
	return fmt.Sprintf("%d %d", w.now.UnixNano(), len(n.pg.wal))
}

// simArchiveHeader is the fake's archive header: the real one, plus the
// winner's term when the archive was written (a same-term split or not).
type simArchiveHeader struct {
	postgres.ArchiveHeader
	WinnerTerm uint64 `json:"sim_winner_term"`
}

type simArchiveRow struct {
	ID    int64 `json:"id"`
	Write int   `json:"sim_write"`
}

func (d simDB) Archive(_ context.Context, forkRev int64, out io.Writer, h postgres.ArchiveHeader) (int, error) {
	if err := d.before("archive"); err != nil {
		return 0, err
	}
	pg, p := d.pg(), d.w.peerOf(d.n)
	if !pg.running {
		return 0, d.after("archive", errors.New("postgres: archive: not running"))
	}
	if !d.w.canConnect(d.n, p) || !p.pg.running {
		return 0, d.after("archive", errors.New("postgres: archive: connecting to the winner: no answer"))
	}
	theirs := map[int]bool{}
	for _, e := range p.pg.wal {
		theirs[e.ID] = true
	}
	var rows []simArchiveRow
	for _, e := range pg.wal {
		if e.Kind == eRow && e.Rev > forkRev-10000 && !theirs[e.ID] {
			rows = append(rows, simArchiveRow{ID: e.Rev, Write: e.ID})
		}
	}
	h.Kind, h.ForkRev, h.Count = "header", forkRev, len(rows)
	enc := json.NewEncoder(out)
	if err := enc.Encode(simArchiveHeader{ArchiveHeader: h, WinnerTerm: d.w.persisted(p).Term}); err != nil {
		return 0, d.after("archive", err)
	}
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return 0, d.after("archive", err)
		}
	}
	return len(rows), d.after("archive", nil)
}

// simKine is the node's Kine.
type simKine struct{ *simInst }

func (k simKine) Point(_ context.Context, host string) error {
	name := "kine-local"
	if host != k.n.addr {
		name = "kine-peer"
	}
	if err := k.before(name); err != nil {
		return err
	}
	k.n.kine, k.n.kineDead = host, false
	return k.after(name, nil)
}

func (k simKine) Stop(context.Context) error {
	if err := k.before("kine-stop"); err != nil {
		return err
	}
	k.n.kine, k.n.kineDead = "", false
	return k.after("kine-stop", nil)
}

// Kill is Stop, for the simulation: no grace is modelled.
func (k simKine) Kill(ctx context.Context) error { return k.Stop(ctx) }

// Ensure restarts a Kine that died, on the same target (kine.Process).
func (k simKine) Ensure(context.Context) error {
	if err := k.alive(); err != nil {
		return err
	}
	if k.n.kineDead {
		k.n.kineDead = false
		k.w.eventf("%s: kine died: restarted", k.n.name)
	}
	return nil
}
func (k simKine) Target() string { return k.n.kine }

// simAddress is the pair's address on the node's interface.
type simAddress struct{ *simInst }

func (v simAddress) Acquire(context.Context) error  { return v.set("vip-acquire", true) }
func (v simAddress) Release(context.Context) error  { return v.set("vip-release", false) }
func (v simAddress) Announce(context.Context) error { return v.alive() }

func (v simAddress) set(name string, held bool) error {
	if err := v.before(name); err != nil {
		return err
	}
	v.n.addrHeld = held
	// The kernel keeps it for its lifetime from each acquisition (the
	// leader renews it every tick): an agent that stops renewing loses it.
	v.n.addrUntil = v.w.now.Add(v.n.cfg.AddressLifetime())
	return v.after(name, nil)
}

func (v simAddress) Held() (bool, error) {
	if err := v.alive(); err != nil {
		return false, err
	}
	return v.w.holdsAddr(v.n), nil
}

// simPeer is the other agent over the link: its PeerHandler, called directly.
type simPeer struct{ *simInst }

func (c simPeer) reach() (*simNode, error) {
	p := c.w.peerOf(c.n)
	if !c.w.canConnect(c.n, p) {
		return nil, fmt.Errorf("peer %s: connection timed out", p.name)
	}
	if p.agent == nil || p.inst == nil || p.inst.dead {
		return nil, fmt.Errorf("peer %s: connection refused", p.name)
	}
	return p, nil
}

func (c simPeer) Status(ctx context.Context) (peer.Status, time.Time, time.Time, error) {
	now := c.w.now
	if err := c.alive(); err != nil {
		return peer.Status{}, now, now, err
	}
	p, err := c.reach()
	if err != nil {
		return peer.Status{}, now, now, err
	}
	return (&PeerHandler{p.agent}).Status(ctx), now, now, nil
}

func (c simPeer) Pause(ctx context.Context, r peer.PauseRequest) error {
	if err := c.before("peer-pause"); err != nil {
		return err
	}
	p, err := c.reach()
	if err == nil {
		err = (&PeerHandler{p.agent}).Pause(ctx, r)
	}
	return c.after("peer-pause", err)
}

func (c simPeer) Resume(ctx context.Context, r peer.ResumeRequest) error {
	if err := c.before("peer-resume"); err != nil {
		return err
	}
	p, err := c.reach()
	if err == nil {
		err = (&PeerHandler{p.agent}).Resume(ctx, r)
	}
	return c.after("peer-resume", err)
}

func (c simPeer) Handover(_ context.Context, r peer.HandoverRequest) (peer.HandoverResponse, error) {
	if err := c.before("handover"); err != nil {
		return peer.HandoverResponse{}, err
	}
	p, err := c.reach()
	var resp peer.HandoverResponse
	if err == nil {
		c.w.withLoop(p, func(ctx context.Context) { resp, err = (&PeerHandler{p.agent}).Handover(ctx, r) })
	}
	return resp, c.after("handover", err)
}

func (c simPeer) Follow(_ context.Context, r peer.FollowRequest) error {
	if err := c.before("follow"); err != nil {
		return err
	}
	p, err := c.reach()
	if err == nil {
		c.w.withLoop(p, func(ctx context.Context) { err = (&PeerHandler{p.agent}).Follow(ctx, r) })
	}
	return c.after("follow", err)
}

// archivedWrites are the write ids in n's archive files, with whether the
// archive was written in a same-term split (the loser's term equal to the
// winner's).
func archivedWrites(n *simNode) (map[int]bool, error) {
	files, err := archive.Files(filepath.Join(n.cfg.DataDir, "archive"))
	if err != nil {
		return nil, err
	}
	ids := map[int]bool{}
	for _, f := range files {
		r, err := archive.Open(f, simSecret)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var h simArchiveHeader
		if err := json.Unmarshal([]byte(lines[0]), &h); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		same := h.Term == h.WinnerTerm
		for _, l := range lines[1:] {
			var r simArchiveRow
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			ids[r.Write] = ids[r.Write] || same
		}
	}
	return ids, nil
}
