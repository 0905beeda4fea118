package testserver

import (
	"bytes"
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
)

// CompactRevKey is where the apiserver's compactor keeps the last
// compacted revision (k8s.io/apiserver/pkg/storage/etcd3/compact.go). A
// real kube-apiserver keeps it at the root of the keyspace, whatever its
// --etcd-prefix, and Kine recognises the compactor's transaction on it only
// there; so it is never prefixed. Compaction is global anyway: tests share
// it, as the API servers of one cluster do.
const CompactRevKey = "compact_rev_key"

// prefixKV is etcd's namespace.NewKV with two differences:
//   - GetStream (the RangeStream RPC, which namespace's KV answers with
//     Unimplemented) is prefixed too: without it the apiserver's streaming
//     list would silently fall back to paginated reads and the stream path
//     of the server would go untested;
//   - operations on CompactRevKey alone go to the root keyspace.
type prefixKV struct {
	clientv3.KV
	inner  clientv3.KV
	prefix string
}

// NewPrefixKV confines kv to the keys under prefix, like namespace.NewKV.
func NewPrefixKV(kv clientv3.KV, prefix string) clientv3.KV {
	return &prefixKV{KV: namespace.NewKV(kv, prefix), inner: kv, prefix: prefix}
}

// Get reads CompactRevKey at the root, everything else in the namespace.
func (p *prefixKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if onlyCompactKey(clientv3.OpGet(key, opts...)) {
		return p.inner.Get(ctx, key, opts...)
	}
	return p.KV.Get(ctx, key, opts...)
}

// Put writes CompactRevKey at the root, everything else in the namespace.
func (p *prefixKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	if onlyCompactKey(clientv3.OpPut(key, val, opts...)) {
		return p.inner.Put(ctx, key, val, opts...)
	}
	return p.KV.Put(ctx, key, val, opts...)
}

// Do routes like Get and Put.
func (p *prefixKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	if onlyCompactKey(op) {
		return p.inner.Do(ctx, op)
	}
	return p.KV.Do(ctx, op)
}

// Txn runs the compactor's transaction (every compare and operation on
// CompactRevKey) at the root, any other in the namespace.
func (p *prefixKV) Txn(ctx context.Context) clientv3.Txn {
	return &routedTxn{p: p, ctx: ctx}
}

type routedTxn struct {
	p        *prefixKV
	ctx      context.Context
	cmps     []clientv3.Cmp
	thn, els []clientv3.Op
}

func (t *routedTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.cmps = append(t.cmps, cs...)
	return t
}

func (t *routedTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.thn = append(t.thn, ops...)
	return t
}

func (t *routedTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.els = append(t.els, ops...)
	return t
}

func (t *routedTxn) Commit() (*clientv3.TxnResponse, error) {
	kv := t.p.KV
	if t.compactOnly() {
		kv = t.p.inner
	}
	return kv.Txn(t.ctx).If(t.cmps...).Then(t.thn...).Else(t.els...).Commit()
}

func (t *routedTxn) compactOnly() bool {
	if len(t.cmps) == 0 {
		return false
	}
	for _, c := range t.cmps {
		if string(c.KeyBytes()) != CompactRevKey || len(c.GetCompare().GetRangeEnd()) > 0 {
			return false
		}
	}
	for _, ops := range [][]clientv3.Op{t.thn, t.els} {
		for _, op := range ops {
			if !onlyCompactKey(op) {
				return false
			}
		}
	}
	return true
}

// onlyCompactKey: op reads, writes or deletes CompactRevKey and nothing else.
func onlyCompactKey(op clientv3.Op) bool {
	return !op.IsTxn() && string(op.KeyBytes()) == CompactRevKey && len(op.RangeBytes()) == 0
}

// prefixWatcher is namespace.NewWatcher, except that a watch of
// CompactRevKey alone (the compactor's) is a watch of the root key.
type prefixWatcher struct {
	clientv3.Watcher
	inner clientv3.Watcher
}

// NewPrefixWatcher confines w to the keys under prefix, like
// namespace.NewWatcher, CompactRevKey excepted.
func NewPrefixWatcher(w clientv3.Watcher, prefix string) clientv3.Watcher {
	return &prefixWatcher{Watcher: namespace.NewWatcher(w, prefix), inner: w}
}

func (w *prefixWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	if onlyCompactKey(clientv3.OpGet(key, opts...)) {
		return w.inner.Watch(ctx, key, opts...)
	}
	return w.Watcher.Watch(ctx, key, opts...)
}

// GetStream prefixes the key and range end the way namespace's Get does,
// and strips the prefix from every returned key.
func (p *prefixKV) GetStream(ctx context.Context, key string, opts ...clientv3.OpOption) (clientv3.GetStreamChan, error) {
	op := clientv3.OpGet(key, opts...)
	pkey, pend := p.interval(op.KeyBytes(), op.RangeBytes())
	if len(pend) > 0 {
		// Options apply in order: this one overrides the range end that
		// WithPrefix/WithFromKey/WithRange computed from the bare key.
		opts = append(opts[:len(opts):len(opts)], clientv3.WithRange(string(pend)))
	}
	in, err := p.inner.GetStream(ctx, string(pkey), opts...)
	if err != nil {
		return nil, err
	}
	out := make(chan clientv3.RangeStreamResponse, 1)
	go func() {
		defer close(out)
		for r := range in {
			if r.RangeResponse != nil {
				for _, kv := range r.Kvs {
					kv.Key = kv.Key[len(p.prefix):]
				}
			}
			out <- r
		}
	}()
	return out, nil
}

// interval is namespace's prefixInterval: a single key, a range, or (end
// "\x00") everything from key on, confined to the prefix.
func (p *prefixKV) interval(key, end []byte) (pkey, pend []byte) {
	pfx := []byte(p.prefix)
	pkey = append(append([]byte{}, pfx...), key...)
	if len(end) == 0 {
		return pkey, nil
	}
	if bytes.Equal(end, []byte{0}) {
		return pkey, prefixEnd(pfx)
	}
	return pkey, append(append([]byte{}, pfx...), end...)
}

// prefixEnd is the first key past every key that starts with pfx.
func prefixEnd(pfx []byte) []byte {
	end := append([]byte{}, pfx...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}
