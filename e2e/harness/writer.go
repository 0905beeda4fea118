package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Op is one recorded write attempt.
type Op struct {
	Seq      int64
	Key      string
	Value    string
	Node     string    // node the Put was sent to
	Start    time.Time // just before the Put
	End      time.Time // when it returned (ack, error or timeout)
	OK       bool      // acknowledged: the system promised durability
	Revision int64     // from the response header when OK
	Err      string
}

// Writer writes unique keys /e2e/<scenario>/<seq> (seq zero-padded so that
// key order is write order) with value <node>-<seq>-<random>, one Put at a
// time. A failed Put is never retried with the same key: its outcome is
// unknown (it may or may not have committed), so the next attempt uses the
// next seq, and only acknowledged ops count as promises.
//
// Use one Writer per key space: two writers with the same scenario would
// reuse keys. For split-brain tests use e.g. "split-a" and "split-b", each
// pinned (PinTo) to one node.
type Writer struct {
	Scenario  string
	OpTimeout time.Duration // per Put; default 1 s

	targets []Target

	mu     sync.Mutex
	cur    int    // index of the node currently written to
	pinned string // "" = rotate on error
	seq    int64
	ops    []Op
}

// NewWriter records writes for scenario against targets (e.g. the clients
// of nodes a and b, in preference order).
func NewWriter(scenario string, targets ...Target) *Writer {
	return &Writer{Scenario: scenario, OpTimeout: time.Second, targets: targets}
}

// PinTo makes the writer use only node (no rotation on error); "" unpins.
func (w *Writer) PinTo(node string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if node == "" {
		w.pinned = ""
		return nil
	}
	for i, t := range w.targets {
		if t.Node == node {
			w.pinned, w.cur = node, i
			return nil
		}
	}
	return fmt.Errorf("harness: writer has no target %q", node)
}

// Current returns the node the next write goes to.
func (w *Writer) Current() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.targets[w.cur].Node
}

// WriteOne performs one write and records it.
func (w *Writer) WriteOne(ctx context.Context) Op {
	w.mu.Lock()
	w.seq++
	seq := w.seq
	t := w.targets[w.cur]
	timeout := w.OpTimeout
	w.mu.Unlock()
	if timeout <= 0 {
		timeout = time.Second
	}

	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	op := Op{
		Seq:   seq,
		Key:   fmt.Sprintf("/e2e/%s/%08d", w.Scenario, seq),
		Value: fmt.Sprintf("%s-%d-%s", t.Node, seq, hex.EncodeToString(rnd[:])),
		Node:  t.Node,
	}
	octx, cancel := context.WithTimeout(ctx, timeout)
	op.Start = time.Now()
	resp, err := t.Client.Put(octx, op.Key, op.Value)
	op.End = time.Now()
	cancel()
	if err == nil {
		op.OK, op.Revision = true, resp.Header.Revision
	} else {
		op.Err = err.Error()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			op.Err = "timeout: " + op.Err
		}
	}

	w.mu.Lock()
	w.ops = append(w.ops, op)
	if !op.OK && w.pinned == "" && len(w.targets) > 1 && w.targets[w.cur].Node == t.Node {
		w.cur = (w.cur + 1) % len(w.targets) // try the other node next time
	}
	w.mu.Unlock()
	return op
}

// WriteN performs n writes back to back (stopping early if ctx ends) and
// returns them.
func (w *Writer) WriteN(ctx context.Context, n int) []Op {
	var out []Op
	for i := 0; i < n && ctx.Err() == nil; i++ {
		out = append(out, w.WriteOne(ctx))
	}
	return out
}

// Run writes at about rate ops per second until ctx is done. Writes are
// sequential; a tick that comes while a write is still pending (a 1 s
// timeout during a fault) is skipped rather than queued, so the writer never
// bursts after an outage. Failed writes wait for the next tick, so a node
// that fails fast does not make the writer spin.
func (w *Writer) Run(ctx context.Context, rate float64) {
	if rate <= 0 {
		rate = 50
	}
	tk := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			w.WriteOne(ctx)
		}
	}
}

// Ops returns a copy of all recorded attempts in order.
func (w *Writer) Ops() []Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Op(nil), w.ops...)
}

// Acked returns the acknowledged writes in order.
func (w *Writer) Acked() []Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Op
	for _, op := range w.ops {
		if op.OK {
			out = append(out, op)
		}
	}
	return out
}

// Failed returns the attempts that were not acknowledged.
func (w *Writer) Failed() []Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Op
	for _, op := range w.ops {
		if !op.OK {
			out = append(out, op)
		}
	}
	return out
}

// FirstAckAfter returns the acknowledgement time (End) of the first acked
// write that STARTED at or after t. For RTO: t is the fault time, the result
// minus t is how long clients could not write. A write started before the
// fault and acked after it proves nothing about recovery, hence Start.
func (w *Writer) FirstAckAfter(t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, op := range w.ops {
		if op.OK && !op.Start.Before(t) {
			return op.End, true
		}
	}
	return time.Time{}, false
}

// LongestOutage returns the longest gap between consecutive acknowledgements
// (and when it started), a fault-time-independent view of unavailability.
func (w *Writer) LongestOutage() (time.Duration, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var best time.Duration
	var at, prev time.Time
	for _, op := range w.ops {
		if !op.OK {
			continue
		}
		if !prev.IsZero() && op.End.Sub(prev) > best {
			best, at = op.End.Sub(prev), prev
		}
		prev = op.End
	}
	return best, at
}
