package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/witness"
)

// SteadyRead is how often each node of a steady, synchronous pair reads
// the witness: the agent's healthyWitnessRead (bootstrap/agent/witness.go).
const SteadyRead = 30 * time.Second

// Pool is the real connections the simulated nodes share, each opened by
// witness.Connect exactly as an agent opens its own (TLS with the client
// certificate, keepalives, no retries). One agent has one; thousands of
// simulated nodes on one 2-core machine share a few hundred: every request
// is sent and answered as it would be, only over fewer TLS connections.
type Pool []*clientv3.Client

// OpenPool opens n connections and makes one request on each, so that no
// measured request pays for a TLS handshake.
func OpenPool(ctx context.Context, w config.Witness, n int) (Pool, error) {
	p := make(Pool, 0, n)
	for range n {
		cli, err := witness.Connect(w)
		if err != nil {
			p.Close()
			return nil, err
		}
		p = append(p, cli)
		if _, err := cli.Get(ctx, "/fleet/warm-up"); err != nil {
			p.Close()
			return nil, fmt.Errorf("fleet: warming up connection %d: %w", len(p), err)
		}
	}
	return p, nil
}

// For is the connection simulated node i uses.
func (p Pool) For(i int) *clientv3.Client { return p[i%len(p)] }

// Close closes every connection.
func (p Pool) Close() {
	for _, c := range p {
		_ = c.Close()
	}
}

// Pair is a simulated pair: its prefix at the witness, its nodes' names
// (unique in the fleet, so a record read under the wrong prefix is
// refused by the client's checks) and which of them leads term Term.
type Pair struct {
	Prefix string
	Names  [2]string
	Leader int // 0 or 1
	Term   uint64
	Rev    int64 // the revision Seed wrote the term record at
}

// Pairs makes n pairs under /fleet/<group>/, leaders alternating between
// the first and the second node, terms varied.
func Pairs(group string, n int) []Pair {
	ps := make([]Pair, n)
	for i := range ps {
		ps[i] = Pair{
			Prefix: fmt.Sprintf("/fleet/%s/p%05d/", group, i),
			Names:  [2]string{fmt.Sprintf("%s-%d-a", group, i), fmt.Sprintf("%s-%d-b", group, i)},
			Leader: i % 2,
			Term:   uint64(1 + i%7),
		}
	}
	return ps
}

// client is node (0 or 1) of p's witness client over connection cli.
func (p Pair) client(cli *clientv3.Client, w config.Witness, node int) *witness.Client {
	return witness.NewWithClient(cli, p.Prefix, p.Names[node], p.Names[1-node], w.RequestTimeout, w.LeaseTTL)
}

// seedBatch: pairs seeded per transaction, under etcd's default limit of
// 128 operations in one.
const seedBatch = 100

// Seed writes each pair's term record as a steady pair leaves it: the term
// its leader began, no alone record (the leader gave its lease back when
// its follower caught up). Set-up, before anything is measured: a real
// fleet got there one pair at a time. The record is the one the client
// writes (witness.Term), so the client's strict checks read it.
func Seed(ctx context.Context, cli *clientv3.Client, ps []Pair) error {
	for lo := 0; lo < len(ps); lo += seedBatch {
		batch := ps[lo:min(lo+seedBatch, len(ps))]
		ops := make([]clientv3.Op, len(batch))
		for i, p := range batch {
			rec, _ := json.Marshal(witness.Term{Term: p.Term, By: p.Names[p.Leader]})
			ops[i] = clientv3.OpPut(p.Prefix+"term", string(rec))
		}
		resp, err := cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("fleet: seeding: %w", err)
		}
		for i := range batch {
			batch[i].Rev = resp.Header.Revision
		}
	}
	return nil
}

// Readers are the steady nodes of a healthy fleet: each reads the witness
// every SteadyRead, first at a random phase, as the agent of a steady pair
// does, and checks what it read against its pair's seeded record.
type Readers struct {
	wg sync.WaitGroup
	mu sync.Mutex
	tally
}

// tally is what the readers measured since the last Cut.
type tally struct {
	Latencies Latencies
	Errors    int    // reads that did not answer in time (or at all)
	Wrong     int    // reads that answered another record than the pair's seeded one, or one the client refused
	FirstBad  string // the first error or wrong record, to say what happened
}

// StartReaders starts both nodes of every pair in ps, node i on
// connection i of the pool. They run until ctx ends.
func StartReaders(ctx context.Context, pool Pool, w config.Witness, ps []Pair) *Readers {
	r := &Readers{}
	for i, p := range ps {
		for node := range 2 {
			c := p.client(pool.For(2*i+node), w, node)
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.read(ctx, c, p)
			}()
		}
	}
	return r
}

// read is one steady node's loop: reads on a fixed schedule (a slow
// answer delays none of the next ones), each checked.
func (r *Readers) read(ctx context.Context, c *witness.Client, p Pair) {
	next := time.Now().Add(rand.N(SteadyRead))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		next = next.Add(SteadyRead)
		sent := time.Now()
		st, err := c.ReadLocal(ctx) // the agent's steady read
		took := time.Since(sent)
		if ctx.Err() != nil {
			return // a read cut short by the end of the run is no answer
		}
		// Read's own errors are a request that failed ("witness: read:
		// ..."); any other is a record its checks refused: a wrong answer.
		refused := err != nil && !strings.HasPrefix(err.Error(), "witness: read:")
		wrong := refused || err == nil && (st.Term.Rev != p.Rev || st.Term.Term.Term != p.Term || st.Term.By != p.Names[p.Leader] || st.Alone != nil)
		r.mu.Lock()
		switch {
		case wrong:
			r.Wrong++
			if r.FirstBad == "" {
				r.FirstBad = fmt.Sprintf("%s read %+v (%v), seeded term %d by %s at revision %d", p.Prefix, st, err, p.Term, p.Names[p.Leader], p.Rev)
			}
		case err != nil:
			r.Errors++
			if r.FirstBad == "" {
				r.FirstBad = err.Error()
			}
		default:
			r.Latencies = append(r.Latencies, took)
		}
		r.mu.Unlock()
	}
}

// Cut returns what was measured since the last Cut and starts afresh.
func (r *Readers) Cut() tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tally
	r.tally = tally{}
	return t
}

// Wait waits for every reader to stop (after ctx ended).
func (r *Readers) Wait() { r.wg.Wait() }
