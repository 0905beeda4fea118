package kine

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// A socket that accepts but serves nothing (what the agent holds between
// two Kines) is not "serving"; a gRPC server is.
func TestWaitServingNeedsAnHTTP2Answer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := waitServing(context.Background(), ln.Addr().String(), 300*time.Millisecond); err == nil {
		t.Fatal("a bound socket nobody serves counted as Kine serving")
	}
	srv := grpc.NewServer()
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	start := time.Now()
	if err := waitServing(context.Background(), ln.Addr().String(), 2*time.Second); err != nil {
		t.Fatalf("a gRPC server on the socket: %v", err)
	}
	t.Logf("gRPC server answered in %s", time.Since(start))
}
