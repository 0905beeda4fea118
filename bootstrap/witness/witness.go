// Package witness is the pair's third vote: two records in an etcd cluster
// (its v3 API, so a fleet's witness is an ordinary etcd cluster at a
// central site, each pair under a key prefix of its own).
//
//   - <prefix>term: the pair's current term and the node that began it,
//     changed only by a compare-and-swap from the revision the node last
//     read. A promotion, and a leader's going alone, each need that swap
//     first: of two nodes racing, one wins, the other learns it lost.
//   - <prefix>alone: present while a leader leads alone (asynchronously),
//     attached to a lease that leader renews. A promotion requires it
//     absent, so a node takes over from a leader that leads alone only
//     after that leader's lease expired, and that leader stops serving, on
//     its own monotonic clock, before it could (Lease.Deadline).
//
// A healthy, synchronous pair writes nothing here: the witness's load grows
// with failures, not with the number of pairs. This package only speaks to
// the witness and checks what it answers; what to do with the answers is
// decided in bootstrap/fsm.
package witness

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/twonode-edge/twonode/bootstrap/config"
)

// SteadyRead is how often each node of a steady, synchronous pair reads the
// witness: only to know that it answers (ReadLocal), and nothing is
// written; a node with anything to decide reads it at every tick, so this
// bounds only how late status reports a witness gone. It is what a healthy
// fleet costs its witness: two reads per pair per SteadyRead. Measured with
// the fleet simulation (e2e/fleet; 10,000 steady pairs and the three etcd
// members on one 2-core machine): every 10 s, the steady reads took 0.75 of
// a core of the members' and the race of a thousand pairs failing at once
// answered its claims with a p99 of 0.8 to 2.4 s; every 30 s, 0.4 of a core,
// and a p99 of 0.23 to 0.52 s.
const SteadyRead = 30 * time.Second

// ErrLeaseGone: the lease a claim was to use has expired at the witness;
// the next claim needs a new one.
var ErrLeaseGone = errors.New("witness: the lease to claim with has expired")

// maxTerm bounds a term read from the witness, as peer.CheckStatus bounds a
// peer's: a record past it is refused, not believed.
const maxTerm = 1 << 40

// Term is the record at <prefix>term.
type Term struct {
	Term uint64 `json:"term"`
	By   string `json:"by"` // the node that began it
}

// Seen is the term record as last read, with the etcd revision that wrote
// it: what a swap compares against. Rev 0: there is no record yet.
type Seen struct {
	Term
	Rev int64
}

// Alone is the record at <prefix>alone: a leader leading term Term alone.
type Alone struct {
	Term uint64 `json:"term"`
	By   string `json:"by"`
}

// State is what one read of the witness found.
type State struct {
	Term  Seen
	Alone *Alone // nil: no leader leads alone (or its lease expired)
}

// Ahead reports whether the state shows the other node ahead of self
// claiming term: it leads alone, or began a term at least that one. Then
// self has lost; otherwise a refused claim was refused only because
// self's view was stale, and claiming again from this state is right.
func (s State) Ahead(self string, term uint64) bool {
	return s.Alone != nil && s.Alone.By != self || s.Term.Rev != 0 && s.Term.By != self && s.Term.Term.Term >= term
}

// Lease is a leader's claim to lead alone. Deadline is on this process's
// monotonic clock: the time the grant or renewal was sent plus the TTL the
// witness granted, less a margin. The witness starts counting only when the
// request reaches it, so its lease cannot expire before Deadline.
type Lease struct {
	ID       clientv3.LeaseID
	TTL      time.Duration
	Deadline time.Time
}

// Valid reports whether the lease still covers now (a monotonic reading).
func (l Lease) Valid(now time.Time) bool { return l.ID != 0 && now.Before(l.Deadline) }

// Client is one node's connection to the witness.
type Client struct {
	cli     *clientv3.Client
	owns    bool // New opened cli: Close closes it
	prefix  string
	node    string
	pair    [2]string
	timeout time.Duration
	ttl     time.Duration
	now     func() time.Time
}

// New connects to the witness (without waiting for it: an unreachable
// witness is an answer the caller handles, not a reason not to start).
// node and peer are the pair's names: a record naming anyone else is
// refused.
func New(w config.Witness, node, peer string) (*Client, error) {
	cli, err := Connect(w)
	if err != nil {
		return nil, err
	}
	c := NewWithClient(cli, w.Prefix, node, peer, w.RequestTimeout, w.LeaseTTL)
	c.owns = true
	return c, nil
}

// Connect opens the connection New uses. The fleet simulation (e2e/fleet)
// opens a pool of these and shares each among many simulated nodes'
// Clients (NewWithClient), so that they reach the witness exactly as an
// agent does.
func Connect(w config.Witness) (*clientv3.Client, error) {
	tc, err := tlsConfig(w)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            w.EndpointList(),
		DialTimeout:          w.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: w.RequestTimeout,
		TLS:                  tc,
		Logger:               zap.NewNop(),
		// No retries behind our back: a swap must be sent once, and a
		// request must answer within its timeout.
		MaxUnaryRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	return cli, nil
}

// NewWithClient is node's Client over cli, a connection Connect opened
// that others may share: its Close leaves cli open for them.
func NewWithClient(cli *clientv3.Client, prefix, node, peer string, requestTimeout, leaseTTL time.Duration) *Client {
	return &Client{cli: cli, prefix: prefix, node: node, pair: [2]string{node, peer},
		timeout: requestTimeout, ttl: leaseTTL, now: time.Now}
}

// tlsConfig reads the CA and the client certificate. The witness decides
// who may write, so it is always reached over TLS with a client
// certificate (config.Validate refuses anything else).
func tlsConfig(w config.Witness) (*tls.Config, error) {
	ca, err := os.ReadFile(w.CAFile)
	if err != nil {
		return nil, fmt.Errorf("witness: ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("witness: ca_file %s: no PEM certificate in it", w.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(w.CertFile, w.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("witness: cert_file/key_file: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// SetClock makes the client time its leases on now, the clock its caller
// compares their deadlines with (the agent's, which fault tests move).
func (c *Client) SetClock(now func() time.Time) { c.now = now }

// Close releases the connection if New opened it.
func (c *Client) Close() error {
	if !c.owns {
		return nil
	}
	return c.cli.Close()
}

func (c *Client) termKey() string  { return c.prefix + "term" }
func (c *Client) aloneKey() string { return c.prefix + "alone" }

// Read returns both records, read through the witness's quorum (a
// linearizable read): what a node decides and claims from. It writes
// nothing.
func (c *Client) Read(ctx context.Context) (State, error) { return c.read(ctx) }

// ReadLocal reads the same records from whichever member answers, without
// asking the quorum (a serializable read: that member's own copy, which may
// be a little behind, or cut off from the quorum). It costs a member a
// fraction of a linearizable read (no round to the raft leader), which is
// what a whole fleet of steady pairs does most: a steady pair reads only
// to know that the witness answers. A node with anything to decide reads
// with Read, and claims by compare-and-swap, which a stale copy cannot
// fool.
func (c *Client) ReadLocal(ctx context.Context) (State, error) {
	return c.read(ctx, clientv3.WithSerializable())
}

func (c *Client) read(ctx context.Context, opts ...clientv3.OpOption) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.cli.Get(ctx, c.aloneKey(), append(opts, c.both())...)
	if err != nil {
		return State{}, fmt.Errorf("witness: read: %w", err)
	}
	return c.state(resp.Kvs)
}

// both makes a get of the alone record a range over both records: "alone"
// sorts before "term", and the prefix is the pair's own. One operation
// rather than a transaction of two gets (a member's CPU per read measured
// the same with either: most of it is the request itself).
func (c *Client) both() clientv3.OpOption { return clientv3.WithRange(c.termKey() + "\x00") }

// state decodes the records a range over both found. A key between them
// that is neither (nothing this agent writes) is ignored, as any other
// key under the prefix would be.
func (c *Client) state(kvs []*mvccpb.KeyValue) (State, error) {
	var st State
	for _, kv := range kvs {
		switch string(kv.Key) {
		case c.termKey():
			var t Term
			if err := c.decode(kv.Value, &t.Term, &t.By); err != nil {
				return st, fmt.Errorf("witness: %s: %w", c.termKey(), err)
			}
			st.Term = Seen{Term: t, Rev: kv.ModRevision}
		case c.aloneKey():
			var a Alone
			if err := c.decode(kv.Value, &a.Term, &a.By); err != nil {
				return st, fmt.Errorf("witness: %s: %w", c.aloneKey(), err)
			}
			st.Alone = &a
		}
	}
	return st, nil
}

// decode reads a record strictly and checks it: a term in range, begun by
// one of this pair's nodes. Anything else is an error, never a default.
func (c *Client) decode(b []byte, term *uint64, by *string) error {
	var r struct {
		Term *uint64 `json:"term"`
		By   *string `json:"by"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return fmt.Errorf("not a record this agent writes (%d bytes): %w", len(b), err)
	}
	switch {
	case r.Term == nil || r.By == nil:
		return errors.New("record lacks term or by")
	case *r.Term == 0 || *r.Term >= maxTerm:
		return fmt.Errorf("term %d out of range (1..2^40)", *r.Term)
	case *r.By != c.pair[0] && *r.By != c.pair[1]:
		return fmt.Errorf("begun by %q, which is neither %s nor %s: is the prefix shared with another pair?", *r.By, c.pair[0], c.pair[1])
	}
	*term, *by = *r.Term, *r.By
	return nil
}

// Grant takes a new lease (not yet attached to anything): the agent
// records its ID before it claims with it, so that an agent killed right
// after its claim knows the lease its alone record hangs on.
func (c *Client) Grant(ctx context.Context) (Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	sent := c.now()
	g, err := c.cli.Grant(ctx, int64(c.ttl/time.Second))
	if err != nil {
		return Lease{}, fmt.Errorf("witness: lease: %w", err)
	}
	return c.lease(g.ID, g.TTL, sent), nil
}

// Claim records that this node leads term `term` alone, under lease held
// (from Grant, or the one it already leads under), in one
// compare-and-swap from what this node last read (from): a leader going
// alone, a follower taking over, a leader alone serving again. It is
// idempotent: this node may claim again a term it claimed itself (after a
// crash, or to serve again). It fails (false, with the witness's state)
// when the term record moved since from, or another lease holds the alone
// record: a leader that loses must stop serving.
func (c *Client) Claim(ctx context.Context, from State, term uint64, held Lease) (bool, State, Lease, error) {
	switch {
	case term == 0 || term >= maxTerm || term < from.Term.Term.Term:
		return false, State{}, Lease{}, fmt.Errorf("witness: term %d does not follow %d", term, from.Term.Term.Term)
	case term == from.Term.Term.Term && from.Term.Rev != 0 && from.Term.By != c.node:
		return false, State{}, Lease{}, fmt.Errorf("witness: term %d was claimed by %s, not this node", term, from.Term.By)
	case held.ID == 0:
		return false, State{}, Lease{}, errors.New("witness: a claim needs a lease")
	case from.Alone != nil && from.Alone.By != c.node:
		return false, from, Lease{}, nil // another node leads alone: its lease must expire first
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	l := held
	if !held.Valid(c.now().Add(c.timeout)) {
		// Not fresh from Grant: alive? and its TTL starts again. A fresh
		// lease saves the round trip (a fleet's simultaneous failures
		// queue on the witness); one that expired anyway fails the put.
		sent := c.now()
		r, err := c.cli.KeepAliveOnce(ctx, held.ID)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return false, State{}, Lease{}, fmt.Errorf("%w: %v", ErrLeaseGone, err)
		}
		if err != nil {
			return false, State{}, Lease{}, fmt.Errorf("witness: the lease to claim with: %w", err)
		}
		l = c.lease(held.ID, r.TTL, sent)
	}
	aloneAsRead := clientv3.Compare(clientv3.CreateRevision(c.aloneKey()), "=", 0)
	if from.Alone != nil { // this node's own, under this lease or not
		aloneAsRead = clientv3.Compare(clientv3.LeaseValue(c.aloneKey()), "=", held.ID)
	}
	rec, _ := json.Marshal(Term{Term: term, By: c.node})
	alone, _ := json.Marshal(Alone{Term: term, By: c.node})
	resp, err := c.cli.Txn(ctx).
		If(c.unchanged(from.Term), aloneAsRead).
		Then(clientv3.OpPut(c.termKey(), string(rec)), clientv3.OpPut(c.aloneKey(), string(alone), clientv3.WithLease(l.ID))).
		Else(clientv3.OpGet(c.aloneKey(), c.both())).Commit()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return false, State{}, Lease{}, fmt.Errorf("%w: claim term %d: %v", ErrLeaseGone, term, err)
	}
	if err != nil {
		return false, State{}, Lease{}, fmt.Errorf("witness: claim term %d: %w", term, err)
	}
	if resp.Succeeded {
		// Both records are the ones just put, at the revision the answer
		// carries: reading them back in the swap would cost the witness
		// two more ranges per claim for nothing.
		return true, State{Term: Seen{Term: Term{Term: term, By: c.node}, Rev: resp.Header.Revision}, Alone: &Alone{Term: term, By: c.node}}, l, nil
	}
	if len(resp.Responses) != 1 {
		return false, State{}, Lease{}, fmt.Errorf("witness: claim term %d: the refusal has %d parts, want 1", term, len(resp.Responses))
	}
	st, err := c.state(resp.Responses[0].GetResponseRange().GetKvs()) // the witness's records, as the Else branch read them
	return false, st, Lease{}, err
}

// Renew extends a lease. It fails when the lease is gone at the witness
// (expired): the leader must already have stopped serving by then.
func (c *Client) Renew(ctx context.Context, l Lease) (Lease, error) {
	sent := c.now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r, err := c.cli.KeepAliveOnce(ctx, l.ID)
	if err != nil {
		return l, fmt.Errorf("witness: renew lease: %w", err)
	}
	return c.lease(l.ID, r.TTL, sent), nil
}

// Release ends leading alone (the follower caught up): the alone record
// goes with the lease.
func (c *Client) Release(ctx context.Context, l Lease) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if _, err := c.cli.Revoke(ctx, l.ID); err != nil {
		return fmt.Errorf("witness: release lease: %w", err)
	}
	return nil
}

// lease is the local view of a granted TTL: counted from when the request
// was sent, less a margin for the two clocks' rates (etcd's own clock may
// run a little faster) of a tenth of the TTL, at least one request timeout.
func (c *Client) lease(id clientv3.LeaseID, ttlSeconds int64, sent time.Time) Lease {
	ttl := time.Duration(ttlSeconds) * time.Second
	margin := max(ttl/10, c.timeout)
	return Lease{ID: id, TTL: ttl, Deadline: sent.Add(ttl - margin)}
}

// unchanged compares the term record with the revision last read (absent
// when none was).
func (c *Client) unchanged(from Seen) clientv3.Cmp {
	if from.Rev == 0 {
		return clientv3.Compare(clientv3.CreateRevision(c.termKey()), "=", 0)
	}
	return clientv3.Compare(clientv3.ModRevision(c.termKey()), "=", from.Rev)
}
