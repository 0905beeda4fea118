package matrix

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twonode-edge/twonode/e2e/cluster"
)

// monitor samples both agents' states every 100 ms over their local API
// sockets (not through the network under test), for dual_leader_ms and
// ha_restored_ms.
type monitor struct {
	c       *cluster.Cluster
	vip     *cluster.VIPReader // nil: the pair has no address
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	done    chan struct{}
}

// sample is one reading of both nodes; "" is a node whose agent did not
// answer (powered off, frozen, restarting). aDB/bDB: the node whose
// database the node's Kine writes to ("" if unknown or stopped).
type sample struct {
	at       time.Time
	a, b     string
	aDB, bDB string
	// aVIP, bVIP: the pair's address was on the node's interface at
	// either of two reads from its kernel, one just before and one just
	// after the node's status (what dual_vip_ms counts). aVIPHeld,
	// bVIPHeld: at both, so that the status fell inside a stretch in which
	// the address was there (what the address check relies on).
	aVIP, bVIP         bool
	aVIPHeld, bVIPHeld bool
}

const sampleEvery = 100 * time.Millisecond

func startMonitor(c *cluster.Cluster) (*monitor, error) {
	m := &monitor{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	if c.Opts.VIP {
		r, err := c.VIPReader()
		if err != nil {
			return nil, err
		}
		m.vip = r
	}
	go m.loop()
	return m, nil
}

func (m *monitor) loop() {
	defer close(m.done)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		var s sample
		s.at = time.Now()
		var wg sync.WaitGroup
		for _, n := range []string{"a", "b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				before := m.held(n)
				ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
				defer cancel()
				state, db := "", ""
				if st, err := m.c.Status(ctx, n); err == nil {
					state = st.State
					for name, node := range m.c.Nodes {
						if st.KineEndpoint == node.Addr {
							db = name
						}
					}
				}
				after := m.held(n)
				if n == "a" {
					s.a, s.aDB, s.aVIP, s.aVIPHeld = state, db, before || after, before && after
				} else {
					s.b, s.bDB, s.bVIP, s.bVIPHeld = state, db, before || after, before && after
				}
			}()
		}
		wg.Wait()
		m.mu.Lock()
		m.samples = append(m.samples, s)
		m.mu.Unlock()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// held reads whether node has the pair's address; unreadable, or no
// address configured, counts as not held.
func (m *monitor) held(node string) bool {
	if m.vip == nil {
		return false
	}
	held, _ := m.vip.Held(node)
	return held
}

func (m *monitor) Stop() {
	close(m.stop)
	<-m.done
	if m.vip != nil {
		m.vip.Close()
	}
}

func (m *monitor) snapshot() []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sample(nil), m.samples...)
}

// healthy: one synchronous leader and one follower. The agent enters
// "leader" only with synchronous replication on and the follower caught
// up, so this is "HA restored".
func (s sample) healthy() bool {
	return (s.a == "leader" && s.b == "follower") || (s.a == "follower" && s.b == "leader")
}

// dual: both nodes accept writes on their own database. A "leader" commits
// only with its synchronous standby, which cannot then lead too; so only a
// pair of leader_alone nodes writes on both sides, and only while both
// Kines serve (two leaders of one term stop theirs while the split is
// decided). An agent that does not answer counts as not accepting, which
// is exact for a powered-off or frozen node (its PostgreSQL is gone or
// stopped with it).
func (s sample) dual() bool {
	return s.a == "leader_alone" && s.b == "leader_alone" && s.aDB == "a" && s.bDB == "b"
}

// dbOf returns, over the samples so far (taken once: it is asked for every
// operation of a history), the node whose database node's Kine wrote to at
// t, by the last sample at or before t ("" if none is known).
func (m *monitor) dbOf() func(node string, t time.Time) string {
	ss := m.snapshot()
	return func(node string, t time.Time) string { return dbAt(ss, node, t) }
}

func dbAt(ss []sample, node string, t time.Time) string {
	for i := len(ss) - 1; i >= 0; i-- {
		if ss[i].at.After(t) {
			continue
		}
		if node == "a" {
			return ss[i].aDB
		}
		return ss[i].bDB
	}
	return ""
}

// DualLeader is the total time both nodes accepted writes.
func (m *monitor) DualLeader() time.Duration {
	ss := m.snapshot()
	var d time.Duration
	for i := 0; i+1 < len(ss); i++ {
		if ss[i].dual() {
			d += ss[i+1].at.Sub(ss[i].at)
		}
	}
	return d
}

// DualVIP is the total time the pair's address was on both nodes; nil
// without one.
func (m *monitor) DualVIP() *int64 {
	if m.vip == nil {
		return nil
	}
	ss := m.snapshot()
	var d time.Duration
	for i := 0; i+1 < len(ss); i++ {
		if ss[i].aVIP && ss[i].bVIP {
			d += ss[i+1].at.Sub(ss[i].at)
		}
	}
	ms := d.Milliseconds()
	return &ms
}

// StrayAddress lists the samples in which a node held the pair's address
// while its agent said its Kine did not serve that node's own database.
// The agent takes the address only once its Kine serves locally and gives
// it up before stopping or turning it, so this never happens, splits
// included (there both Kines serve their own databases). A node whose
// agent did not answer is not judged: a frozen node keeps the address
// until its lifetime ends, which the agents' timing covers, and a starved
// one may answer late.
func (m *monitor) StrayAddress() []string {
	var out []string
	for _, s := range m.snapshot() {
		for _, n := range []struct {
			name, state, db string
			held            bool
		}{{"a", s.a, s.aDB, s.aVIPHeld}, {"b", s.b, s.bDB, s.bVIPHeld}} {
			if n.held && n.state != "" && n.db != n.name {
				out = append(out, fmt.Sprintf("%s: on %s, %s, whose Kine serves %q", s.at.Format("15:04:05.000"), n.name, n.state, n.db))
			}
		}
	}
	return out
}

// DualAddressAlone lists the stretches of two or more samples in which
// both nodes held the pair's address while both agents answered and not
// both accepted writes on their own databases (dual): the address is on
// both nodes only while both lead alone, never while one of them is a
// synchronous leader waiting for a follower that left
// (fsm.Machine.HoldsAddress). One sample is tolerated: the two nodes are
// read in parallel, up to a status timeout apart. A node that did not
// answer is not judged (see StrayAddress).
func (m *monitor) DualAddressAlone() []string {
	var out []string
	run := 0
	for _, s := range m.snapshot() {
		if s.aVIPHeld && s.bVIPHeld && s.a != "" && s.b != "" && !s.dual() {
			run++
			if run >= 2 {
				out = append(out, fmt.Sprintf("%s: a %s (Kine on %q), b %s (Kine on %q)", s.at.Format("15:04:05.000"), s.a, s.aDB, s.b, s.bDB))
			}
			continue
		}
		run = 0
	}
	return out
}

// VIPMove is the time from the fault to the first sample with the address
// on the node that did not hold it before the fault, and only there; nil
// without an address, or if it did not move.
func (m *monitor) VIPMove(fault time.Time) *int64 {
	if m.vip == nil {
		return nil
	}
	holder := func(s sample) string {
		switch {
		case s.aVIP && !s.bVIP:
			return "a"
		case s.bVIP && !s.aVIP:
			return "b"
		}
		return ""
	}
	before := ""
	for _, s := range m.snapshot() {
		if s.at.Before(fault) {
			if h := holder(s); h != "" {
				before = h
			}
			continue
		}
		if h := holder(s); h != "" && before != "" && h != before {
			ms := s.at.Sub(fault).Milliseconds()
			return &ms
		}
	}
	return nil
}

// settledFor is how long the pair must look healthy to count as settled:
// longer than the detection window (3 × 500 ms), so that a fault the
// agents have not noticed yet does not pass for a healthy pair.
const settledFor = 3 * time.Second

// Settled reports whether the last settledFor of samples are all healthy.
func (m *monitor) Settled() bool {
	ss := m.snapshot()
	if len(ss) == 0 {
		return false
	}
	end := ss[len(ss)-1].at
	for i := len(ss) - 1; i >= 0; i-- {
		if !ss[i].healthy() {
			return false
		}
		if end.Sub(ss[i].at) >= settledFor {
			return true
		}
	}
	return false
}

// HARestored is the time from the fault to the start of the first
// healthy stretch of at least settledFor after the pair was first seen
// broken following the fault; a fault that never broke the pair gives the
// first sample after it. nil if there is none. (Counting from the fault
// alone would be wrong: the agents need seconds to notice some faults, a
// one-way partition among them, and the pair looks healthy meanwhile.)
func (m *monitor) HARestored(fault time.Time) *int64 {
	ss := m.snapshot()
	broke, start := false, -1
	var first *int64
	for i, s := range ss {
		if s.at.Before(fault) {
			continue
		}
		if first == nil {
			ms := s.at.Sub(fault).Milliseconds()
			first = &ms
		}
		if !s.healthy() {
			broke, start = true, -1
			continue
		}
		if !broke {
			continue
		}
		if start < 0 {
			start = i
		}
		if s.at.Sub(ss[start].at) >= settledFor {
			ms := ss[start].at.Sub(fault).Milliseconds()
			return &ms
		}
	}
	if !broke {
		return first
	}
	return nil
}

// Leader is the leader of the last healthy sample ("" if none).
func (m *monitor) Leader() string {
	ss := m.snapshot()
	for i := len(ss) - 1; i >= 0; i-- {
		if ss[i].healthy() {
			if ss[i].a == "leader" {
				return "a"
			}
			return "b"
		}
	}
	return ""
}

// leaderAt is the leader of the last healthy sample at or before t ("" if
// none).
func (m *monitor) leaderAt(t time.Time) string {
	ss := m.snapshot()
	for i := len(ss) - 1; i >= 0; i-- {
		if ss[i].at.After(t) || !ss[i].healthy() {
			continue
		}
		if ss[i].a == "leader" {
			return "a"
		}
		return "b"
	}
	return ""
}

// rejoined is when node was first seen following again after from (the
// end of the run if never).
func (m *monitor) rejoined(node string, from time.Time) time.Time {
	ss := m.snapshot()
	left := false // a loser that followed at the fault must leave that state first
	for _, s := range ss {
		st := s.a
		if node == "b" {
			st = s.b
		}
		if !s.at.After(from) {
			continue
		}
		if st != "follower" {
			left = true
		} else if left {
			return s.at
		}
	}
	if len(ss) == 0 {
		return from
	}
	return ss[len(ss)-1].at
}

// brokeBefore is when the pair last stopped being healthy at or before t:
// the first sample after the last healthy one (the first sample if the
// pair was never healthy before t).
func (m *monitor) brokeBefore(t time.Time) time.Time {
	ss := m.snapshot()
	if len(ss) == 0 {
		return t
	}
	broke := ss[0].at
	for i := 0; i+1 < len(ss) && !ss[i].at.After(t); i++ {
		if ss[i].healthy() {
			broke = ss[i+1].at
		}
	}
	return broke
}
