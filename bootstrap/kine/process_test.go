package kine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// TestMain doubles as a fake Kine: the runner starts this test binary
// (kine.test: its name says kine, as isKine wants) with LISTEN_FDS=1 and
// Kine's environment, and the fake serves gRPC on the inherited fd 3, as
// the patched Kine does (tools/kine-patches/0005).
func TestMain(m *testing.M) {
	if os.Getenv("LISTEN_FDS") == "1" && os.Getenv("KINE_LISTEN_ADDRESS") != "" {
		f := os.NewFile(3, "inherited")
		ln, err := net.FileListener(f)
		if err != nil {
			os.Exit(3)
		}
		time.Sleep(50 * time.Millisecond) // a start's work, while clients queue
		_ = grpc.NewServer().Serve(ln)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Between one Kine and the next, the port stays bound: a client that
// connects during Point's swap waits for the new Kine instead of being
// refused. Stop closes it.
func TestPointKeepsThePortBoundAcrossTheSwap(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("not read by the fake"), 0o600); err != nil {
		t.Fatal(err)
	}
	probe, err := net.Listen("tcp", "127.0.0.1:0") // a free port
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	p := NewProcess(Settings{Binary: os.Args[0], Listen: addr, Port: 5432, CAFile: ca, RunDir: dir},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	if err := p.Point(ctx, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(ctx)

	var dials, refused atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			dials.Add(1)
			if errors.Is(err, syscall.ECONNREFUSED) {
				refused.Add(1)
			} else if err == nil {
				c.Close()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for _, host := range []string{"10.0.0.2", "10.0.0.1"} {
		if err := p.Point(ctx, host); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Point(ctx, "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	if refused.Load() != 0 {
		t.Fatalf("%d of %d connections refused while Kine was replaced", refused.Load(), dials.Load())
	}
	t.Logf("%d connections during three swaps, none refused", dials.Load())

	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// A process leaves /proc's cmdline (isKine) a moment before its files
	// are closed: allow that moment.
	deadline := time.Now().Add(time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if err == nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("Kine's port still accepts connections 1 s after Stop (%v)", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
