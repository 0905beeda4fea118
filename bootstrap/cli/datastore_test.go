package cli

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/localapi"
)

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// The wait before k3s is bounded, says why on each round, and ends as
// soon as Kine listens.
func TestDatastoreWait(t *testing.T) {
	waiting := localapi.StatusReport{State: "starting", Peer: "edge-2",
		Waiting: "boot grace over and the leader unreachable: this node was never a member"}
	status := func(context.Context) (localapi.StatusReport, error) { return waiting, nil }

	t.Run("never: gives up after For", func(t *testing.T) {
		var out strings.Builder
		w := datastoreWait{Kine: freeAddr(t), For: 1200 * time.Millisecond, Every: 500 * time.Millisecond, Status: status, Out: &out}
		start := time.Now()
		if w.Run(context.Background()) {
			t.Fatal("Run reported a datastore where none listens")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("gave up after %s, want about 1.2 s", d)
		}
		text := out.String()
		if n := strings.Count(text, "this node is starting, its peer edge-2 does not answer; boot grace over"); n < 2 {
			t.Errorf("%d explanations in 1.2 s every 0.5 s, want at least 2:\n%s", n, text)
		}
		if !strings.Contains(text, "no datastore after") || !strings.Contains(text, "k3s starts anyway") {
			t.Errorf("no word of giving up:\n%s", text)
		}
	})
	t.Run("later: ends when Kine listens", func(t *testing.T) {
		addr := freeAddr(t)
		go func() {
			time.Sleep(700 * time.Millisecond)
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return
			}
			time.Sleep(5 * time.Second)
			ln.Close()
		}()
		var out strings.Builder
		w := datastoreWait{Kine: addr, For: 10 * time.Second, Every: time.Minute, Status: status, Out: &out}
		if !w.Run(context.Background()) {
			t.Fatalf("Run gave up though Kine listened after 0.7 s:\n%s", out.String())
		}
		if !strings.Contains(out.String(), "serves after") {
			t.Errorf("no word of the end of the wait:\n%s", out.String())
		}
	})
	t.Run("at once: nothing said", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var out strings.Builder
		w := datastoreWait{Kine: ln.Addr().String(), For: time.Second, Every: time.Second, Status: status, Out: &out}
		if !w.Run(context.Background()) || out.Len() > 0 {
			t.Errorf("Run with Kine listening: said %q", out.String())
		}
	})
	t.Run("no agent", func(t *testing.T) {
		var out strings.Builder
		down := func(context.Context) (localapi.StatusReport, error) {
			return localapi.StatusReport{}, errors.New("no socket")
		}
		w := datastoreWait{Kine: freeAddr(t), For: 100 * time.Millisecond, Every: time.Second, Status: down, Out: &out}
		w.Run(context.Background())
		if !strings.Contains(out.String(), "the twonode agent does not answer (no socket)") {
			t.Errorf("said %q", out.String())
		}
	})
}
