package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	nodeA  = Node{Name: "edge-1", Address: net.ParseIP("127.0.0.1")}
	now    = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
)

func files(t *testing.T) Files {
	return Files{Dir: t.TempDir() + "/tls", UID: os.Getuid(), GID: os.Getgid()}
}

func TestCADerivedFromTheSecret(t *testing.T) {
	a, err := DeriveCA(secret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DeriveCA(secret)
	if !a.key.Equal(b.key) || a.Cert.Subject.String() != b.Cert.Subject.String() {
		t.Fatal("two derivations from one secret differ")
	}
	// A certificate signed on one node verifies under the other's CA
	// certificate (their signature bytes differ, their name and key do not).
	der, _, err := a.Issue(nodeA, now)
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, der)
	if err := b.Check(c, c.PublicKey, nodeA, now); err != nil {
		t.Fatalf("a node certificate does not verify under the other node's CA: %v", err)
	}
	other, _ := DeriveCA([]byte("another secret of the same length!"))
	if other.Cert.Subject.CommonName == a.Cert.Subject.CommonName {
		t.Fatal("two secrets give CAs of one name")
	}
	if err := other.Check(c, c.PublicKey, nodeA, now); err == nil || !strings.Contains(Explain(err).Error(), "cluster secrets differ") {
		t.Fatalf("another secret's CA accepted the certificate, or said nothing clear: %v", Explain(err))
	}
	if _, err := DeriveCA(nil); err == nil {
		t.Fatal("a CA without a secret")
	}
}

func TestEnsureIssuesKeepsAndRenews(t *testing.T) {
	ca, _ := DeriveCA(secret)
	f := files(t)
	r, err := f.Ensure(ca, nodeA, now)
	if err != nil || !r.Issued {
		t.Fatalf("first Ensure: %+v %v", r, err)
	}
	if fi, err := os.Stat(f.KeyFile()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	if r, err := f.Ensure(ca, nodeA, now.Add(24*time.Hour)); err != nil || r.Issued {
		t.Fatalf("a good certificate was not kept: %+v %v", r, err)
	}
	// Near its end: renewed.
	late := now.Add(Lifetime - RenewBefore + time.Hour)
	if r, err := f.Ensure(ca, nodeA, late); err != nil || !r.Issued || !strings.Contains(r.Why, "expires") {
		t.Fatalf("not renewed near its end: %+v %v", r, err)
	}
	// Another address: reissued.
	moved := Node{Name: nodeA.Name, Address: net.ParseIP("10.0.0.9")}
	if r, err := f.Ensure(ca, moved, late); err != nil || !r.Issued || !strings.Contains(r.Why, "address") {
		t.Fatalf("not reissued for a new address: %+v %v", r, err)
	}
	// Another secret: reissued under the new CA.
	ca2, _ := DeriveCA([]byte("another secret of the same length!"))
	if r, err := f.Ensure(ca2, moved, late); err != nil || !r.Issued || !strings.Contains(r.Why, "CA") {
		t.Fatalf("not reissued under a new CA: %+v %v", r, err)
	}
}

// A process cut between writing the key and the certificate leaves a pair
// that does not match: the next Ensure replaces it.
func TestEnsureAfterACutInHalf(t *testing.T) {
	ca, _ := DeriveCA(secret)
	f := files(t)
	if _, err := f.Ensure(ca, nodeA, now); err != nil {
		t.Fatal(err)
	}
	oldCert, _ := os.ReadFile(f.CertFile())
	// Write only a new key, as a renewal cut after its first rename would.
	g := f
	g.Dir = t.TempDir()
	if _, err := g.Ensure(ca, nodeA, now); err != nil {
		t.Fatal(err)
	}
	newKey, _ := os.ReadFile(g.KeyFile())
	if err := os.WriteFile(f.KeyFile(), newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := f.Ensure(ca, nodeA, now)
	if err != nil || !r.Issued {
		t.Fatalf("a mismatched pair was kept: %+v %v", r, err)
	}
	if cur, _ := os.ReadFile(f.CertFile()); string(cur) == string(oldCert) {
		t.Fatal("the certificate was not replaced")
	}
	if _, err := tls.LoadX509KeyPair(f.CertFile(), f.KeyFile()); err != nil {
		t.Fatalf("after Ensure the pair does not match: %v", err)
	}
	// A truncated certificate file, as a crash mid-write without rename.
	if err := os.WriteFile(f.CertFile(), []byte("-----BEGIN CERT"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err := f.Ensure(ca, nodeA, now); err != nil || !r.Issued || !strings.Contains(r.Why, "unreadable") {
		t.Fatalf("a truncated certificate was kept: %+v %v", r, err)
	}
}

// The server and client halves over a real TLS connection: the right CA
// connects; a wrong CA, an expired certificate, another address and a
// plaintext client are refused, each with an error that says why.
func TestServerAndClientRefusals(t *testing.T) {
	ca, _ := DeriveCA(secret)
	f := files(t)
	if _, err := f.Ensure(ca, nodeA, now); err != nil {
		t.Fatal(err)
	}
	rl, err := NewReloader(f)
	if err != nil {
		t.Fatal(err)
	}
	// Not httptest's StartTLS: it adds a certificate of its own, which
	// crypto/tls prefers to GetCertificate when the client sends no name.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go hs.Serve(tls.NewListener(ln, rl.ServerConfig()))
	defer hs.Close()
	srv := struct{ URL string }{"https://" + ln.Addr().String()}

	get := func(cfg *tls.Config, url string) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return Explain(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "ok" {
			return errors.New("answer: " + string(b))
		}
		return nil
	}
	if err := get(ca.ClientConfig(), srv.URL); err != nil {
		t.Fatalf("the pair's own CA: %v", err)
	}
	wrong, _ := DeriveCA([]byte("another secret of the same length!"))
	if err := get(wrong.ClientConfig(), srv.URL); err == nil || !strings.Contains(err.Error(), "cluster secrets differ") {
		t.Fatalf("wrong CA: %v", err)
	}
	// The node's address is 127.0.0.1; dial it by another name.
	other := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	if err := get(ca.ClientConfig(), other); err == nil || !strings.Contains(err.Error(), "another address") {
		t.Fatalf("another address: %v", err)
	}
	// An expired certificate: what a peer serves after years switched off.
	g := files(t)
	if _, err := g.Ensure(ca, nodeA, now.Add(-2*Lifetime)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(g.CertFile(), f.CertFile()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(g.KeyFile(), f.KeyFile()); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Second)
	_ = os.Chtimes(f.CertFile(), future, future) // the reloader sees a change
	if err := get(ca.ClientConfig(), srv.URL); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired certificate: %v", err)
	}
	// Plaintext to the TLS server, and TLS to a plaintext server.
	plain := strings.Replace(srv.URL, "https://", "http://", 1)
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(plain)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTPS") {
			t.Fatalf("a plaintext request was served: %d %q", resp.StatusCode, b)
		}
	}
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer ps.Close()
	if err := get(ca.ClientConfig(), strings.Replace(ps.URL, "http://", "https://", 1)); err == nil || !strings.Contains(err.Error(), "does not speak TLS") {
		t.Fatalf("TLS to a plaintext server: %v", err)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
