package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/witness"
)

// Tick is the agent's probe interval: its ticks, one per node at a phase
// of its own, pace everything a node asks of the witness.
var Tick = config.Default().Timers.ProbeInterval

// ProbeTimeout is how long a tick's probes of a peer that is gone take:
// the agent decides when they time out, and asks the witness meanwhile.
var ProbeTimeout = config.Default().Timers.ProbeTimeout

// threshold is the agent's failure_threshold: the tick whose probe fails
// for that many ticks in a row decides.
var threshold = config.Default().Timers.FailureThreshold

// deferred is the agent's WitnessDefer: the more failed probes a follower
// waits, with a witness that answers, before it takes over (one request
// timeout, in ticks), so that a leader that reaches the witness claims
// first.
var deferred = int((config.Default().Witness.RequestTimeout + Tick - 1) / Tick)

// giveUp: a node with no answer by then is left undecided (and the run
// fails: every pair must decide).
const giveUp = 2 * time.Minute

// Steps are the latencies of each kind of request, request to answer.
type Steps struct{ Read, Grant, Claim Latencies }

func (s *Steps) add(o Steps) {
	s.Read, s.Grant, s.Claim = append(s.Read, o.Read...), append(s.Grant, o.Grant...), append(s.Claim, o.Claim...)
}

// nodeRun is what one node of a failing pair did and was told.
type nodeRun struct {
	claim    uint64 // the term it claims: its own (a leader going alone) or the next (a follower taking over)
	decided  bool
	won      bool
	onRead   bool          // it saw the other node ahead in a read and claimed nothing
	st       witness.State // the witness's state in the answer that decided
	lease    witness.Lease // the lease it holds when it won, as last renewed
	granted  []clientv3.LeaseID
	asked    time.Time     // when the request answered by that came was sent
	at       time.Time     // when the answer that decided came
	due      time.Time     // when it would have decided without a witness: its deciding tick's probes timed out
	claimed  bool          // it sent a claim (a node that conceded on what it read sent none)
	took     time.Duration // from its first claim to the answer that decided
	retried  int           // requests that failed (tried again a tick later)
	firstErr error
	steps    Steps
}

// race is one node's part once its link failed at failed, as the agent
// plays it (bootstrap/agent: readWitness, prepareLease, witnessClaim),
// with its ticks at phase after failed; tick k's probe is its k-th failed
// one, and it may claim at tick claimAt (threshold; a follower defer
// more, so that a leader that reaches the witness claims first):
//   - until its threshold-th failed probe a node asks nothing (a steady
//     node reads the witness only every SteadyRead); after it, it reads
//     through the quorum at every tick, alongside its probes;
//   - the tick before it may claim, it grants a spare lease alongside its
//     probes, unless what it read shows the other node ahead; a slow
//     grant stretches that tick, as it stretches the agent's;
//   - the tick it may claim, when its probes time out (and its read, if
//     any, answered), it concedes if its view shows the other node
//     ahead, or else claims from that view (the pair's seeded record for
//     a leader: a compare-and-swap needs no fresher one), and claims
//     again at once from the answer if that shows nobody ahead;
//   - a claim that failed is tried again after the agent's back-off, with
//     a quorum read at every tick meanwhile, and with the lease already
//     held: a claim whose answer was lost may have won, and claiming
//     again is idempotent.
func (n *nodeRun) race(ctx context.Context, c *witness.Client, self string, seen witness.State, failed time.Time, phase time.Duration, claimAt int) {
	var held witness.Lease
	tick := failed.Add(phase)
	read := func(k int) time.Time { // tick k's quorum read, if it makes one; when its answer came
		if k-1 < threshold {
			return time.Time{}
		}
		sent := time.Now()
		st, err := c.Read(ctx)
		n.steps.Read = append(n.steps.Read, time.Since(sent))
		if err == nil {
			seen, n.asked = st, sent
		}
		return time.Now()
	}
	for k := 1; k < claimAt; k++ {
		sleepUntil(tick)
		read(k)
		if k-1 >= max(1, claimAt-2) && held.ID == 0 && !conceded(seen, self, n.claim) {
			sent := time.Now()
			l, err := c.Grant(ctx)
			n.steps.Grant = append(n.steps.Grant, time.Since(sent))
			if err == nil {
				held, n.granted = l, append(n.granted, l.ID)
			}
		}
		tick = later(tick.Add(Tick), time.Now()) // the next tick, unless this one ran over
	}
	sleepUntil(tick)
	answered := read(claimAt)
	n.due = tick.Add(ProbeTimeout)
	sleepUntil(n.due)
	if conceded(seen, self, n.claim) {
		n.decided, n.onRead, n.st = true, true, seen
		n.at = later(n.due, answered)
		return
	}
	var first time.Time
	var backoff time.Duration
	for {
		if first.IsZero() {
			first, n.claimed = time.Now(), true
		}
		err := n.attempt(ctx, c, self, seen, &held)
		if err == nil {
			n.at = time.Now()
			n.took = n.at.Sub(first)
			return
		}
		n.retried++
		if n.firstErr == nil {
			n.firstErr = err
		}
		if time.Since(first) > giveUp {
			return
		}
		held = witness.Lease{ID: held.ID} // as the agent keeps it: held, its deadline unknown
		// The agent's back-off after a failed row (1 s, doubling while
		// under 30 s), with a quorum read at every tick meanwhile: what it
		// reads may settle the race first.
		backoff = nextBackoff(backoff)
		retryAt := time.Now().Add(backoff)
		for k := claimAt + 1; ; k++ {
			tick = later(tick.Add(Tick), time.Now())
			sleepUntil(tick)
			read(k)
			if conceded(seen, self, n.claim) {
				n.decided, n.onRead, n.st, n.at = true, true, seen, time.Now()
				n.took = n.at.Sub(first)
				return
			}
			if !tick.Add(ProbeTimeout).Before(retryAt) {
				break
			}
		}
		sleepUntil(tick.Add(ProbeTimeout))
	}
}

// nextBackoff is the agent's back-off after a failed row
// (bootstrap/agent: Agent.failed).
func nextBackoff(b time.Duration) time.Duration {
	switch {
	case b == 0:
		return time.Second
	case b < 30*time.Second:
		return 2 * b
	}
	return b
}

// attempt is one claim: with the lease held, or a new one when there is
// none, from seen; refused while nobody is ahead (seen was stale), once
// more at once from the witness's answer.
func (n *nodeRun) attempt(ctx context.Context, c *witness.Client, self string, seen witness.State, held *witness.Lease) error {
	if held.ID == 0 {
		sent := time.Now()
		l, err := c.Grant(ctx)
		n.steps.Grant = append(n.steps.Grant, time.Since(sent))
		if err != nil {
			return err
		}
		*held, n.granted = l, append(n.granted, l.ID)
	}
	tc := &timedClaim{c: c, took: &n.steps.Claim}
	won, answer, l, err := witness.ClaimFresh(ctx, tc, self, seen, n.claim, *held)
	if errors.Is(err, witness.ErrLeaseGone) {
		*held = witness.Lease{} // the next attempt takes a new one, as the agent does
	}
	if err != nil {
		return err
	}
	if !won && !conceded(answer, self, n.claim) {
		// Refused twice, yet the witness shows nobody else ahead: an
		// earlier claim of this node's, whose answer was lost, was applied
		// after the first. The agent's row fails and it claims again at
		// the next tick, which is idempotent.
		return fmt.Errorf("claim refused by this node's own earlier claim, applied late: %+v", answer)
	}
	n.decided, n.won, n.st, n.lease, n.asked = true, won, answer, l, tc.sent
	return nil
}

// timedClaim times each claim ClaimFresh sends, and remembers when the
// last was sent (the node's decision is timed from it).
type timedClaim struct {
	c    *witness.Client
	took *Latencies
	sent time.Time
}

func (t *timedClaim) Claim(ctx context.Context, from witness.State, term uint64, held witness.Lease) (bool, witness.State, witness.Lease, error) {
	t.sent = time.Now()
	defer func() { *t.took = append(*t.took, time.Since(t.sent)) }()
	return t.c.Claim(ctx, from, term, held)
}

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// keep is a winner leading alone: as the agent, at each tick once half
// its lease is spent, it renews it, until hold closes. A lease whose
// deadline passes is given up (the agent stops serving then).
func (n *nodeRun) keep(ctx context.Context, c *witness.Client, hold <-chan struct{}) {
	for {
		select {
		case <-hold:
			return
		case <-time.After(Tick):
		}
		now := time.Now()
		switch {
		case !n.lease.Valid(now):
			return
		case n.lease.Deadline.Sub(now) <= n.lease.TTL/2:
			if l, err := c.Renew(ctx, n.lease); err == nil {
				n.lease = l
			}
		}
	}
}

// conceded: what a node read shows the other node ahead, so the agent
// claims nothing: the other leads alone, or began a term at least the one
// this node would claim.
func conceded(st witness.State, self string, claim uint64) bool { return st.Ahead(self, claim) }

// RaceRun is a race's pairs and what each of their nodes did.
type RaceRun struct {
	Pairs    []Pair
	Nodes    [][2]nodeRun
	Took     time.Duration // from the moment the links failed to the last answer
	hold     chan struct{}
	renewing sync.WaitGroup
}

// Release ends the winners' renewals; what they did may be read after.
func (r *RaceRun) Release() {
	close(r.hold)
	r.renewing.Wait()
}

// Race makes every pair of ps lose its link at one moment: both nodes of
// each pair act, each at its own tick's phase (the agents' tickers start
// when they do), the follower to take over (its leader's term plus one),
// the leader to go on alone (its own term). Node i uses connection i of
// the pool. It returns once every node has its answer (or gave up); the
// winners go on renewing their leases until Release.
func Race(ctx context.Context, pool Pool, w config.Witness, ps []Pair) *RaceRun {
	r := &RaceRun{Pairs: ps, Nodes: make([][2]nodeRun, len(ps)), hold: make(chan struct{})}
	start := make(chan struct{})
	var failed time.Time // set before start closes
	var wg sync.WaitGroup
	for i, p := range ps {
		seen := witness.State{Term: witness.Seen{Term: witness.Term{Term: p.Term, By: p.Names[p.Leader]}, Rev: p.Rev}}
		for node := range 2 {
			c := p.client(pool.For(2*i+node), w, node)
			n := &r.Nodes[i][node]
			n.claim = p.Term
			if node != p.Leader {
				n.claim++
			}
			phase, claimAt := rand.N(Tick), threshold
			if node != p.Leader {
				claimAt += deferred
			}
			wg.Add(1)
			r.renewing.Add(1)
			go func() {
				defer r.renewing.Done()
				<-start
				n.race(ctx, c, p.Names[node], seen, failed, phase, claimAt)
				wg.Done()
				if n.won {
					n.keep(ctx, c, r.hold)
				}
			}()
		}
	}
	failed = time.Now()
	close(start) // every node is waiting: the links fail now
	wg.Wait()
	r.Took = time.Since(failed)
	return r
}

// Verdict is a race's outcome, checked pair by pair.
type Verdict struct {
	Pairs          int
	Decided        int // pairs whose two nodes both had an answer
	Winners        int // swaps won
	FailedSwaps    int // claims the witness refused: the race's losers
	ConcededOnRead int // losers that saw the winner in their read and claimed nothing
	// Pairs whose second node won too, after the first winner's lease had
	// lapsed (it could not renew in time, and stopped serving, as the
	// agent does): right, but a sign of an overloaded witness.
	AfterLapse int
	Wrong      int // pairs decided wrongly (see whyWrong)
	WrongWhy   []string
	Retried    int       // requests that failed and were tried again a tick later
	FirstErr   error     // the first of those a node met
	Decision   Latencies // per node that claimed: its first claim to the answer that decided
	// Delay is per node: from when it would have decided without a
	// witness (its deciding tick's probes timed out) to the answer that
	// decided: all the witness added to its failover, the spare lease's
	// grant stretching a tick included.
	Delay Latencies
	Steps
}

// maxWhy bounds the reasons a verdict keeps.
const maxWhy = 5

// Judge checks every pair of r (after Release) against the witness's
// records, read afterwards with one range over the race's keys (whyWrong
// says what is checked).
func Judge(ctx context.Context, cli *clientv3.Client, group string, r *RaceRun) (Verdict, error) {
	resp, err := cli.Get(ctx, "/fleet/"+group+"/", clientv3.WithPrefix())
	if err != nil {
		return Verdict{}, fmt.Errorf("fleet: reading the race's records: %w", err)
	}
	kvs := map[string]*record{}
	for _, kv := range resp.Kvs {
		kvs[string(kv.Key)] = &record{kv.Value, kv.Lease}
	}
	return judge(r, kvs, time.Now()), nil
}

// judge is Judge on the witness's records as read at checked.
func judge(r *RaceRun, kvs map[string]*record, checked time.Time) Verdict {
	v := Verdict{Pairs: len(r.Pairs)}
	for i, p := range r.Pairs {
		nodes := r.Nodes[i]
		for _, n := range nodes {
			v.Retried += n.retried
			if v.FirstErr == nil {
				v.FirstErr = n.firstErr
			}
			v.Steps.add(n.steps)
			if n.decided && n.claimed {
				v.Decision = append(v.Decision, n.took)
			}
			if n.decided {
				v.Delay = append(v.Delay, n.at.Sub(n.due))
			}
		}
		if !nodes[0].decided || !nodes[1].decided {
			continue
		}
		v.Decided++
		var winners []int
		for node, n := range nodes {
			switch {
			case n.won:
				winners = append(winners, node)
			case n.onRead:
				v.ConcededOnRead++
			default:
				v.FailedSwaps++
			}
		}
		v.Winners += len(winners)
		if len(winners) == 2 && nodes[winners[0]].at.After(nodes[winners[1]].at) {
			winners[0], winners[1] = winners[1], winners[0] // in the order they won
		}
		why := whyWrong(p, nodes, winners, kvs, checked)
		if why == "" && len(winners) == 2 {
			v.AfterLapse++
		}
		if why != "" {
			v.Wrong++
			if len(v.WrongWhy) < maxWhy {
				v.WrongWhy = append(v.WrongWhy, p.Prefix+": "+why)
			}
		}
	}
	return v
}

// whyWrong says what is wrong with a decided pair's outcome, "" if
// nothing: the first check that fails. Right is:
//   - one node won, with the term it claimed (the leader's own, or the
//     follower's next), answered with its records, holding the lease; or
//     both won, the second only after the first one's lease had lapsed
//     (never two nodes leading alone at once);
//   - the loser was answered the winner's term record, and its alone
//     record if it asked after the winner had won and was answered
//     before the winner's lease lapsed (an earlier claim of the winner's
//     whose answer was lost may have lapsed before);
//   - the witness, read afterwards, records the last winner's term, and
//     its alone record under its lease unless that lease has lapsed.
func whyWrong(p Pair, nodes [2]nodeRun, winners []int, kvs map[string]*record, checked time.Time) string {
	if len(winners) == 0 {
		return "no winner"
	}
	for _, w := range winners {
		want := p.Term + 1 // the follower took over
		if w == p.Leader {
			want = p.Term // the leader went on alone
		}
		if n := nodes[w]; n.claim != want || !names(n.st, n.claim, p.Names[w], true) || n.lease.ID == 0 {
			return fmt.Sprintf("the winner %s claimed term %d (want %d) and was answered %+v with lease %x", p.Names[w], n.claim, want, n.st, n.lease.ID)
		}
	}
	w := winners[len(winners)-1] // the one the records must name
	term, by, lease := nodes[w].claim, p.Names[w], nodes[w].lease
	if len(winners) == 2 {
		if first := nodes[winners[0]]; !nodes[w].at.After(first.lease.Deadline) {
			return fmt.Sprintf("%s won at %s while %s's lease ran until %s: two leaders alone at once",
				by, nodes[w].at.Format(time.StampMilli), p.Names[winners[0]], first.lease.Deadline.Format(time.StampMilli))
		}
	} else if l := nodes[1-w]; !names(l.st, term, by, !l.asked.Before(nodes[w].at) && l.at.Before(lease.Deadline)) {
		return fmt.Sprintf("the loser %s was answered %+v, which does not name the winner %s and term %d", p.Names[1-w], l.st, by, term)
	}
	var rec witness.Term
	var alone witness.Alone
	t, a := kvs[p.Prefix+"term"], kvs[p.Prefix+"alone"]
	switch {
	case t == nil || json.Unmarshal(t.value, &rec) != nil || rec != (witness.Term{Term: term, By: by}):
		return fmt.Sprintf("the witness's term record is %s, want term %d by %s", t, term, by)
	case a == nil && checked.Before(lease.Deadline):
		return fmt.Sprintf("no alone record while %s's lease still ran", by)
	case a != nil && (a.lease != int64(lease.ID) || json.Unmarshal(a.value, &alone) != nil || alone != (witness.Alone{Term: term, By: by})):
		return fmt.Sprintf("the witness's alone record is %s, want term %d by %s under lease %x", a, term, by, lease.ID)
	}
	return ""
}

// names: st is the term record of term by, and its alone record too, or
// none when alone is false (the winner's lease had lapsed).
func names(st witness.State, term uint64, by string, alone bool) bool {
	if st.Term.Rev == 0 || st.Term.Term != (witness.Term{Term: term, By: by}) {
		return false
	}
	if !alone {
		return st.Alone == nil || *st.Alone == (witness.Alone{Term: term, By: by})
	}
	return st.Alone != nil && *st.Alone == (witness.Alone{Term: term, By: by})
}

// record is a key's value and lease as the witness holds it.
type record struct {
	value []byte
	lease int64
}

func (r *record) String() string {
	if r == nil {
		return "absent"
	}
	return fmt.Sprintf("%s (lease %x)", r.value, r.lease)
}

// Revoke gives back every lease the race granted, so that no record of
// one race expires during the next.
func Revoke(ctx context.Context, pool Pool, r *RaceRun) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4*len(pool))
	for i := range r.Nodes {
		for node := range 2 {
			for _, id := range r.Nodes[i][node].granted {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; wg.Done() }()
					_, _ = pool.For(2*i+node).Revoke(ctx, id)
				}()
			}
		}
	}
	wg.Wait()
}
