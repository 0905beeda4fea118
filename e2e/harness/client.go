package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// InNetns runs fn on an OS thread that has joined network namespace ns.
// Sockets created by fn stay in ns for their whole life, whatever thread
// later uses them; so fn should only create sockets (dial, listen) and
// return them. fn runs on a fresh goroutine, which keeps the caller's thread
// untouched.
//
// Why the dance: setns changes the namespace of the calling thread only.
// The goroutine is locked to its thread while the thread is in ns, so no
// other goroutine runs there; if switching back fails the thread stays
// locked and dies with the goroutine (the Go runtime then discards it)
// instead of being reused in the wrong namespace. The Go runtime creates new
// threads from a clean template thread when the creator is locked, so ns
// does not leak into new threads either.
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join(NetnsDir, ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("harness: netns %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("harness: setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Do not unlock: the thread exits with this goroutine.
			errc <- fmt.Errorf("harness: setns back from %s: %w (fn: %v)", ns, err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DialInNetns dials addr from inside namespace ns.
func DialInNetns(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := InNetns(ns, func() error {
		var d net.Dialer
		var err error
		// The socket is created by this call, on the locked thread; waiting
		// for the connect parks the goroutine but it resumes on the same
		// thread (locked).
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}

// ListenPacketInNetns opens a packet listener (e.g. "udp", ":9999") in ns.
func ListenPacketInNetns(ns, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := InNetns(ns, func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// ListenInNetns opens a stream listener (e.g. "tcp", "10.99.0.2:7000") in ns.
func ListenInNetns(ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := InNetns(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// NewEtcdClient returns an etcd v3 client whose connections are made inside
// namespace ns, e.g. NewEtcdClient(net.NS("a"), "127.0.0.1:2379", 2*time.Second)
// reaches node a's kine. The connection is lazy (the first request dials);
// dialTimeout bounds each connection attempt. Reconnection backoff is capped
// at 500 ms (gRPC's default grows to 120 s, which would swamp RTO figures
// after a kine restart). Close the client when done.
func NewEtcdClient(ns, endpoint string, dialTimeout time.Duration) (*clientv3.Client, error) {
	if dialTimeout <= 0 {
		dialTimeout = 2 * time.Second
	}
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		return DialInNetns(ctx, ns, "tcp", addr)
	}
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: dialTimeout,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{
			grpc.WithContextDialer(dialer),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  50 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   500 * time.Millisecond,
				},
				MinConnectTimeout: dialTimeout,
			}),
		},
	})
}

// Target is a named etcd endpoint, usually one node's kine.
type Target struct {
	Node   string // "a" or "b"
	Client *clientv3.Client
}

// NodeClients opens one kine client per node ("a", "b") through the node's
// namespace. Close them with CloseTargets.
func (n *Network) NodeClients(dialTimeout time.Duration) ([]Target, error) {
	var ts []Target
	for _, name := range []string{"a", "b"} {
		c, err := NewEtcdClient(n.NS(name), KineAddr, dialTimeout)
		if err != nil {
			CloseTargets(ts)
			return nil, err
		}
		ts = append(ts, Target{Node: name, Client: c})
	}
	return ts, nil
}

// CloseTargets closes every client of ts.
func CloseTargets(ts []Target) {
	for _, t := range ts {
		if t.Client != nil {
			t.Client.Close()
		}
	}
}

// KineAddr is where kine listens inside each node (design contract).
const KineAddr = "127.0.0.1:2379"

// HTTPClient returns an HTTP client whose TCP connections are made inside
// namespace ns (e.g. to reach a node's peer API at <addr>:8760 from node c).
// timeout bounds each request. The agent's local API is a unix socket,
// which is reachable from any network namespace and needs no such client.
func HTTPClient(ns string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return DialInNetns(ctx, ns, network, addr)
			},
			DisableKeepAlives: true, // a fault must not hide behind a pooled connection
		},
	}
}
