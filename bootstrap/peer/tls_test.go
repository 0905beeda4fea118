package peer

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/pki"
)

// The peer API as the agent serves it: TLS with a certificate of the pair's
// CA. A client of the same pair talks; a client of another pair (another
// secret, so another CA), a plaintext client and a client dialling an
// address the certificate does not name are refused, each saying why, and
// the refusal is one status reports (pki.Refused).
func TestPeerAPIOverTLS(t *testing.T) {
	f := newFixture(t)
	ca, err := pki.DeriveCA(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.TLSCertificate(pki.Node{Name: "b", Address: net.ParseIP("127.0.0.1")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(f.srv, nil)
	go func() {
		_ = srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}))
	}()
	defer srv.Close()
	addr := ln.Addr().String()

	c := NewClient("https://"+addr, testSecret, 2*time.Second, clientNames)
	c.UseTLS(ca.ClientConfig())
	if _, _, _, err := c.Status(t.Context()); err != nil {
		t.Fatalf("the pair's own client: %v", err)
	}

	other, _ := pki.DeriveCA([]byte("another pair's secret, as long!!"))
	c = NewClient("https://"+addr, testSecret, 2*time.Second, clientNames)
	c.UseTLS(other.ClientConfig())
	_, _, _, err = c.Status(t.Context())
	if !pki.Refused(err) || !strings.Contains(err.Error(), "cluster secrets differ") {
		t.Fatalf("another pair's CA: %v", err)
	}

	c = NewClient("https://"+strings.Replace(addr, "127.0.0.1", "localhost", 1), testSecret, 2*time.Second, clientNames)
	c.UseTLS(ca.ClientConfig())
	if _, _, _, err := c.Status(t.Context()); !pki.Refused(err) || !strings.Contains(err.Error(), "another address") {
		t.Fatalf("a name the certificate does not hold: %v", err)
	}

	// Plaintext to the TLS port: the server answers 400 and nothing more.
	resp, err := http.Get("http://" + addr + "/v1/challenge")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a plaintext request got HTTP %d", resp.StatusCode)
		}
	}
	// An https client without the pair's CA trusts the system's roots,
	// which never signed a node: refused, nothing sent.
	c = NewClient("https://"+addr, testSecret, 2*time.Second, clientNames)
	if _, _, _, err := c.Status(t.Context()); !pki.Refused(err) {
		t.Fatalf("a client without the pair's CA: %v", err)
	}
	f.h.mu.Lock()
	n := f.h.calls
	f.h.mu.Unlock()
	if n != 1 {
		t.Fatalf("the handler ran %d times, want once (only the pair's client)", n)
	}
}
