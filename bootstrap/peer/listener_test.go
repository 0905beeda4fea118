package peer

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// A source over its limit has its new connections closed at once; closing
// one frees a slot; the peer's address is never limited.
func TestLimitPerSource(t *testing.T) {
	for _, exempt := range []bool{false, true} {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peer := netip.Addr{}
		if exempt {
			peer = netip.MustParseAddr("127.0.0.1")
		}
		ln := LimitPerSource(raw, 3, 100, peer)
		accepted := make(chan net.Conn, 10)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
		var clients []net.Conn
		for range 4 {
			c, err := net.Dial("tcp", raw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
		got := collect(accepted, 4)
		want := 3
		if exempt {
			want = 4
		}
		if len(got) != want {
			t.Fatalf("exempt %t: %d of 4 connections accepted, want %d", exempt, len(got), want)
		}
		if !exempt {
			// The fourth was closed by the server: reading it ends.
			_ = clients[3].SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := clients[3].Read(make([]byte, 1)); err == nil {
				t.Fatal("the connection over the limit was not closed")
			}
			got[0].Close()
			got[0].Close() // twice: one slot back, not two
			for range 2 {
				c, err := net.Dial("tcp", raw.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				clients = append(clients, c)
			}
			if n := len(collect(accepted, 2)); n != 1 {
				t.Fatalf("%d connections accepted after one was closed, want 1", n)
			}
		}
		for _, c := range clients {
			c.Close()
		}
		ln.Close()
	}
}

// collect takes what arrives on ch within a short wait, at most n.
func collect(ch chan net.Conn, n int) []net.Conn {
	var out []net.Conn
	for len(out) < n {
		select {
		case c := <-ch:
			out = append(out, c)
		case <-time.After(500 * time.Millisecond):
			return out
		}
	}
	return out
}
