package matrix

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twonode-edge/twonode/e2e/check"
	"github.com/twonode-edge/twonode/e2e/cluster"
)

// monitor samples both agents' states every 100 ms over their local API
// sockets (not through the network under test), for dual_leader_ms and
// ha_restored_ms.
type monitor struct {
	c       *cluster.Cluster
	vip     *cluster.VIPReader // nil: the pair has no address
	mu      sync.Mutex
	samples []check.Sample
	stop    chan struct{}
	done    chan struct{}
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
		var s check.Sample
		s.At = time.Now()
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
					s.A, s.ADB, s.AVIP, s.AVIPHeld = state, db, before || after, before && after
				} else {
					s.B, s.BDB, s.BVIP, s.BVIPHeld = state, db, before || after, before && after
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

func (m *monitor) snapshot() check.Samples {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append(check.Samples(nil), m.samples...)
}

// DualLeader is the total time both nodes accepted writes (check.Sample.Dual).
func (m *monitor) DualLeader() time.Duration { return m.snapshot().DualLeader() }

// DualVIP is the total time the pair's address was on both nodes; nil
// without one.
func (m *monitor) DualVIP() *int64 {
	if m.vip == nil {
		return nil
	}
	ss := m.snapshot()
	var d time.Duration
	for i := 0; i+1 < len(ss); i++ {
		if ss[i].AVIP && ss[i].BVIP {
			d += ss[i+1].At.Sub(ss[i].At)
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
		}{{"a", s.A, s.ADB, s.AVIPHeld}, {"b", s.B, s.BDB, s.BVIPHeld}} {
			if n.held && n.state != "" && n.db != n.name {
				out = append(out, fmt.Sprintf("%s: on %s, %s, whose Kine serves %q", s.At.Format("15:04:05.000"), n.name, n.state, n.db))
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
		if s.AVIPHeld && s.BVIPHeld && s.A != "" && s.B != "" && !s.Dual() {
			run++
			if run >= 2 {
				out = append(out, fmt.Sprintf("%s: a %s (Kine on %q), b %s (Kine on %q)", s.At.Format("15:04:05.000"), s.A, s.ADB, s.B, s.BDB))
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
	holder := func(s check.Sample) string {
		switch {
		case s.AVIP && !s.BVIP:
			return "a"
		case s.BVIP && !s.AVIP:
			return "b"
		}
		return ""
	}
	before := ""
	for _, s := range m.snapshot() {
		if s.At.Before(fault) {
			if h := holder(s); h != "" {
				before = h
			}
			continue
		}
		if h := holder(s); h != "" && before != "" && h != before {
			ms := s.At.Sub(fault).Milliseconds()
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
	end := ss[len(ss)-1].At
	for i := len(ss) - 1; i >= 0; i-- {
		if !ss[i].Healthy() {
			return false
		}
		if end.Sub(ss[i].At) >= settledFor {
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
		if s.At.Before(fault) {
			continue
		}
		if first == nil {
			ms := s.At.Sub(fault).Milliseconds()
			first = &ms
		}
		if !s.Healthy() {
			broke, start = true, -1
			continue
		}
		if !broke {
			continue
		}
		if start < 0 {
			start = i
		}
		if s.At.Sub(ss[start].At) >= settledFor {
			ms := ss[start].At.Sub(fault).Milliseconds()
			return &ms
		}
	}
	if !broke {
		return first
	}
	return nil
}

// Leader is the leader of the last healthy sample ("" if none).
func (m *monitor) Leader() string { return m.snapshot().Leader() }
