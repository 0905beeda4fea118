package witness

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/witness/witnesstest"
)

// etcdForTest starts one real etcd member on loopback, with TLS and client
// certificates, and returns the witness settings of the pair a + b.
func etcdForTest(t *testing.T) config.Witness {
	t.Helper()
	bin, err := witnesstest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pki, err := witnesstest.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	cp, err1 := witnesstest.FreePort()
	pp, err2 := witnesstest.FreePort()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	m := witnesstest.Member{Name: "w1", IP: net.IPv4(127, 0, 0, 1), ClientPort: cp, PeerPort: pp}
	args, err := pki.Args(m, []witnesstest.Member{m}, dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("etcd's output:\n%s", out.String())
		}
	})
	cert, key, err := pki.Issue("node", net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	w := config.Default().Witness
	w.Endpoints, w.CAFile, w.CertFile, w.KeyFile, w.Prefix = m.ClientURL(), pki.CAFile, cert, key, "/twonode/test-pair/"
	w.LeaseTTL = 3 * time.Second
	c := client(t, w, "a", "b")
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := c.Read(context.Background()); err == nil {
			break
		} else if time.Now().After(end) {
			t.Fatalf("etcd did not answer within 20 s: %v", err)
		}
	}
	return w
}

// claim is Client.Claim with a lease granted first when none is held,
// as the agent does.
func claim(t *testing.T, c *Client, from State, term uint64, held Lease) (bool, State, Lease, error) {
	t.Helper()
	if held.ID == 0 {
		l, err := c.Grant(context.Background())
		if err != nil {
			return false, State{}, Lease{}, err
		}
		held = l
	}
	return c.Claim(context.Background(), from, term, held)
}

func client(t *testing.T, w config.Witness, node, peer string) *Client {
	t.Helper()
	c, err := New(w, node, peer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestWitness runs against one real etcd: the subtests share it and each
// uses a prefix of its own.
func TestWitness(t *testing.T) {
	base := etcdForTest(t)
	ctx := context.Background()
	pair := func(t *testing.T) (*Client, *Client, config.Witness) {
		w := base
		w.Prefix = "/twonode/" + strings.ReplaceAll(t.Name(), "/", "-") + "/"
		return client(t, w, "a", "b"), client(t, w, "b", "a"), w
	}

	t.Run("an empty witness reads as no record", func(t *testing.T) {
		a, _, _ := pair(t)
		st, err := a.Read(ctx)
		if err != nil || st.Term.Rev != 0 || st.Alone != nil {
			t.Fatalf("got %+v, %v; want no record", st, err)
		}
	})

	t.Run("a local read returns the records a quorum read does", func(t *testing.T) {
		a, b, _ := pair(t)
		if _, _, _, err := claim(t, a, State{}, 3, Lease{}); err != nil {
			t.Fatal(err)
		}
		want, err := b.Read(ctx)
		if err != nil || want.Term.Term.Term != 3 {
			t.Fatalf("quorum read after the claim: %+v, %v", want, err)
		}
		got, err := b.ReadLocal(ctx)
		if err != nil || got.Term != want.Term || (got.Alone == nil) != (want.Alone == nil) {
			t.Fatalf("local read %+v, %v; the quorum read %+v", got, err, want)
		}
	})

	t.Run("a swap from what was read wins once; a stale one loses and learns the winner", func(t *testing.T) {
		a, b, _ := pair(t)
		won, st, l, err := claim(t, a, State{}, 1, Lease{})
		if err != nil || !won || st.Term.Term.Term != 1 || st.Term.By != "a" {
			t.Fatalf("first swap: %v %+v %v", won, st, err)
		}
		if err := a.Release(ctx, l); err != nil { // a is synchronous again
			t.Fatal(err)
		}
		won, st2, _, err := claim(t, b, State{}, 1, Lease{}) // b read before a's swap
		if err != nil || won {
			t.Fatalf("stale swap won: %+v %v", st2, err)
		}
		if st2.Term.Term != st.Term.Term {
			t.Errorf("the loser learned %+v, want the winner's %+v", st2.Term, st.Term)
		}
		won, st3, _, err := claim(t, b, st2, 2, Lease{})
		if err != nil || !won || st3.Term.By != "b" || st3.Term.Term.Term != 2 {
			t.Fatalf("swap from the fresh read: %v %+v %v", won, st3, err)
		}
	})

	t.Run("of many concurrent swaps from one read, exactly one wins", func(t *testing.T) {
		a, b, _ := pair(t)
		won, st, l, err := claim(t, a, State{}, 4, Lease{})
		if err != nil || !won {
			t.Fatal(won, err)
		}
		if err := a.Release(ctx, l); err != nil {
			t.Fatal(err)
		}
		if st, err = a.Read(ctx); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		wins := 0
		var wg sync.WaitGroup
		for i := range 20 {
			c := []*Client{a, b}[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, _, _, err := claim(t, c, st, 5, Lease{})
				if err != nil {
					t.Error(err)
				}
				if w {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("%d of 20 concurrent swaps won, want exactly 1", wins)
		}
	})

	t.Run("no promotion while a leader leads alone; allowed once its lease expired", func(t *testing.T) {
		a, b, w := pair(t)
		_, st, first, _ := claim(t, a, State{}, 1, Lease{})
		won, st, lease, err := claim(t, a, st, 2, first)
		if err != nil || !won || st.Alone == nil || st.Alone.By != "a" || st.Alone.Term != 2 {
			t.Fatalf("go alone: %v %+v %v", won, st, err)
		}
		if !lease.Valid(time.Now()) || lease.TTL != w.LeaseTTL {
			t.Fatalf("lease %+v, want valid for %s", lease, w.LeaseTTL)
		}
		won, st2, _, err := claim(t, b, st, 3, Lease{})
		if err != nil || won || st2.Alone == nil {
			t.Fatalf("a promotion while a leads alone: won %v, %+v, %v", won, st2, err)
		}
		// The leader stops serving at its deadline; the witness must still
		// hold its record then, or a take-over could overlap its writes.
		time.Sleep(time.Until(lease.Deadline))
		if st, err := b.Read(ctx); err != nil || st.Alone == nil {
			t.Fatalf("at the leader's own deadline the witness no longer holds its lease: %+v %v", st, err)
		}
		var st3 State
		for end := time.Now().Add(2 * w.LeaseTTL); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if st3, err = b.Read(ctx); err == nil && st3.Alone == nil {
				break
			}
		}
		if st3.Alone != nil {
			t.Fatalf("the lease did not expire: %+v", st3)
		}
		if _, _, _, err := a.Claim(ctx, st3, 3, lease); !errors.Is(err, ErrLeaseGone) {
			t.Errorf("a claim with the expired lease: %v, want ErrLeaseGone", err)
		}
		if won, _, _, err := claim(t, b, st3, 3, Lease{}); err != nil || !won {
			t.Fatalf("promotion after the lease expired: %v %v", won, err)
		}
	})

	t.Run("a fresh lease that is gone at the witness fails the claim as ErrLeaseGone", func(t *testing.T) {
		a, _, _ := pair(t)
		l, err := a.Grant(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ctx, l); err != nil { // revoked behind the claim's back
			t.Fatal(err)
		}
		if !l.Valid(time.Now().Add(time.Second)) {
			t.Fatal("the fresh lease must look valid locally, or the claim renews it first")
		}
		won, _, _, err := a.Claim(ctx, State{}, 1, l)
		if won || !errors.Is(err, ErrLeaseGone) {
			t.Fatalf("claim with a revoked fresh lease: won %v, err %v; want ErrLeaseGone", won, err)
		}
		if st, err := a.Read(ctx); err != nil || st.Term.Rev != 0 || st.Alone != nil {
			t.Fatalf("the failed claim left %+v (%v); want nothing", st, err)
		}
	})

	t.Run("a renewed lease keeps the record; a released one frees it at once", func(t *testing.T) {
		a, b, w := pair(t)
		_, _, lease, err := claim(t, a, State{}, 1, Lease{})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			time.Sleep(w.LeaseTTL / 2)
			if lease, err = a.Renew(ctx, lease); err != nil {
				t.Fatal(err)
			}
		}
		st, err := b.Read(ctx)
		if err != nil || st.Alone == nil {
			t.Fatalf("renewed for 1.5 TTLs, the record is gone: %+v %v", st, err)
		}
		if err := a.Release(ctx, lease); err != nil {
			t.Fatal(err)
		}
		if st, err := b.Read(ctx); err != nil || st.Alone != nil {
			t.Fatalf("released, the record stays: %+v %v", st, err)
		}
		if _, err := a.Renew(ctx, lease); err == nil {
			t.Error("renewing a released lease succeeded")
		}
	})

	t.Run("the loser of a race gets no lease and learns the winner's records", func(t *testing.T) {
		a, b, _ := pair(t)
		_, st, _, _ := claim(t, b, State{}, 2, Lease{})
		won, st2, lease, err := claim(t, a, State{}, 2, Lease{})
		if err != nil || won || lease.ID != 0 {
			t.Fatalf("stale go-alone: %v %+v %v", won, lease, err)
		}
		if st2.Alone == nil || st2.Alone.By != "b" || st2.Term != st.Term {
			t.Errorf("after the lost race: %+v, want b's term and b's alone record", st2)
		}
	})

	t.Run("a node claims its own term again, keeping its lease; the other node cannot", func(t *testing.T) {
		a, b, _ := pair(t)
		won, st, lease, err := claim(t, a, State{}, 3, Lease{})
		if err != nil || !won {
			t.Fatal(won, err)
		}
		won, st, lease2, err := claim(t, a, st, 3, lease)
		if err != nil || !won || lease2.ID != lease.ID {
			t.Fatalf("re-claim with the lease held: %v %+v %v", won, lease2, err)
		}
		if _, _, _, err := claim(t, b, st, 3, Lease{}); err == nil {
			t.Error("b claimed a term a had claimed")
		}
		if won, _, _, err := claim(t, b, st, 4, Lease{}); err != nil || won {
			t.Errorf("b claimed term 4 while a holds the lease: %v %v", won, err)
		}
		if won, _, _, err := claim(t, a, st, 4, lease2); err != nil || !won {
			t.Errorf("a, holding the lease, could not begin term 4: %v %v", won, err)
		}
	})

	t.Run("a claim of a term the other node claimed, or an older one, is refused before it is sent", func(t *testing.T) {
		a, _, _ := pair(t)
		if _, _, _, err := claim(t, a, State{Term: Seen{Term: Term{Term: 5, By: "b"}, Rev: 9}}, 5, Lease{}); err == nil {
			t.Error("a swap to the same term was sent")
		}
	})

	t.Run("nodes sharing one connection decide as with their own; closing one leaves it open", func(t *testing.T) {
		_, _, w := pair(t)
		cli, err := Connect(w)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		a := NewWithClient(cli, w.Prefix, "a", "b", w.RequestTimeout, w.LeaseTTL)
		b := NewWithClient(cli, w.Prefix, "b", "a", w.RequestTimeout, w.LeaseTTL)
		if won, _, _, err := claim(t, a, State{}, 1, Lease{}); err != nil || !won {
			t.Fatalf("a's claim: %v %v", won, err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := b.Read(ctx)
		if err != nil || st.Term.By != "a" || st.Alone == nil {
			t.Fatalf("b, after a closed: %+v %v; want a's records", st, err)
		}
	})

	t.Run("records the agent did not write are refused, with the reason", func(t *testing.T) {
		a, _, w := pair(t)
		raw, err := clientv3.New(clientv3.Config{Endpoints: w.EndpointList(), TLS: mustTLS(t, w), DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		for _, tc := range []struct{ value, want string }{
			{"not json", "not a record this agent writes"},
			{`{"term":3,"by":"a","extra":1}`, "not a record this agent writes"},
			{`{"term":3}`, "lacks term or by"},
			{`{"term":0,"by":"a"}`, "out of range"},
			{`{"term":1099511627776,"by":"a"}`, "out of range"},
			{`{"term":3,"by":"c"}`, "neither a nor b"},
		} {
			if _, err := raw.Put(ctx, w.Prefix+"term", tc.value); err != nil {
				t.Fatal(err)
			}
			_, err := a.Read(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("record %q: got %v, want an error with %q", tc.value, err, tc.want)
			}
		}
	})
}

// An unreachable witness answers with an error within the request timeout.
func TestUnreachableWitness(t *testing.T) {
	dir := t.TempDir()
	pki, err := witnesstest.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.Issue("node")
	if err != nil {
		t.Fatal(err)
	}
	port, err := witnesstest.FreePort() // nobody listens there
	if err != nil {
		t.Fatal(err)
	}
	w := config.Default().Witness
	w.Endpoints = "https://127.0.0.1:" + strconv.Itoa(port)
	w.CAFile, w.CertFile, w.KeyFile, w.Prefix = pki.CAFile, cert, key, "/twonode/x/"
	c := client(t, w, "a", "b")
	start := time.Now()
	_, err = c.Read(context.Background())
	if err == nil {
		t.Fatal("read from a witness nobody serves succeeded")
	}
	if took := time.Since(start); took > w.RequestTimeout+500*time.Millisecond {
		t.Errorf("the read took %s, more than the request timeout %s", took, w.RequestTimeout)
	}
}

func mustTLS(t *testing.T, w config.Witness) *tls.Config {
	t.Helper()
	tc, err := tlsConfig(w)
	if err != nil {
		t.Fatal(err)
	}
	return tc
}
