package pki

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Files is where a node keeps its TLS material: the CA certificate (what
// every client of the pair trusts), the node's certificate and its key.
// Owner (uid, gid) owns the key: PostgreSQL serves with it and refuses a key
// it does not own. The directory is outside PostgreSQL's data directory, so
// that no base backup or rewind carries a key to the other node.
type Files struct {
	Dir      string
	UID, GID int
}

func (f Files) CAFile() string   { return filepath.Join(f.Dir, "ca.crt") }
func (f Files) CertFile() string { return filepath.Join(f.Dir, "node.crt") }
func (f Files) KeyFile() string  { return filepath.Join(f.Dir, "node.key") }

// Renewal says what Ensure did.
type Renewal struct {
	Issued   bool      // a new certificate was written
	Why      string    // why the old one was not kept (empty when kept)
	NotAfter time.Time // the end of the certificate now in place
}

// Ensure makes the files right for node at now: the CA certificate written
// when missing or not this CA's, the node certificate issued anew when
// missing, unreadable, not this CA's, not this node's or near its end.
// Each file is replaced by a rename, key before certificate; a process cut
// between the two leaves a pair that does not match, which the next Ensure
// sees and replaces. Safe to call at every start and on a timer.
func (f Files) Ensure(ca *CA, node Node, now time.Time) (Renewal, error) {
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return Renewal{}, fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(f.Dir, 0o755); err != nil {
		return Renewal{}, fmt.Errorf("pki: %w", err)
	}
	if err := f.ensureCA(ca); err != nil {
		return Renewal{}, err
	}
	cert, key, err := f.load()
	if err == nil {
		err = ca.Check(cert, &key.PublicKey, node, now)
	}
	if err == nil {
		return Renewal{NotAfter: cert.NotAfter}, nil
	}
	der, nk, ierr := ca.Issue(node, now)
	if ierr != nil {
		return Renewal{}, ierr
	}
	kb, merr := x509.MarshalPKCS8PrivateKey(nk)
	if merr != nil {
		return Renewal{}, fmt.Errorf("pki: node key: %w", merr)
	}
	if werr := f.write(f.KeyFile(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); werr != nil {
		return Renewal{}, werr
	}
	if werr := f.write(f.CertFile(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); werr != nil {
		return Renewal{}, werr
	}
	c, _ := x509.ParseCertificate(der)
	return Renewal{Issued: true, Why: err.Error(), NotAfter: c.NotAfter}, nil
}

func (f Files) ensureCA(ca *CA) error {
	if b, err := os.ReadFile(f.CAFile()); err == nil {
		if c, err := parseCert(b); err == nil && c.Subject.String() == ca.Cert.Subject.String() && c.PublicKey.(*ecdsa.PublicKey).Equal(ca.Cert.PublicKey) {
			return nil
		}
	}
	return f.write(f.CAFile(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.DER}), 0o644)
}

// load reads the node's certificate and key; an error when either is
// missing or unreadable, or they do not belong together.
func (f Files) load() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(f.CertFile(), f.KeyFile())
	if err != nil {
		return nil, nil, fmt.Errorf("unreadable: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("not an ECDSA key")
	}
	return pair.Leaf, key, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, errors.New("not an ECDSA certificate")
	}
	return c, nil
}

// write replaces path atomically, owned by f's owner with mode perm.
func (f Files) write(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := os.Chown(tmp, f.UID, f.GID); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("pki: chown %s: %w", path, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("pki: chmod %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}

// Reloader serves the node's certificate from its files, read again when
// they change (a renewal takes effect on the next handshake, no restart).
type Reloader struct {
	f Files

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
}

// NewReloader loads the files once; an error when they are unusable.
func NewReloader(f Files) (*Reloader, error) {
	r := &Reloader{f: f}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) get() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fi, err := os.Stat(r.f.CertFile())
	if err == nil && r.cert != nil && fi.ModTime().Equal(r.modTime) {
		return r.cert, nil
	}
	pair, lerr := tls.LoadX509KeyPair(r.f.CertFile(), r.f.KeyFile())
	if lerr != nil {
		if r.cert != nil {
			return r.cert, nil // keep serving the last good one
		}
		return nil, fmt.Errorf("pki: node certificate: %w", lerr)
	}
	r.cert = &pair
	if fi != nil {
		r.modTime = fi.ModTime()
	}
	return r.cert, nil
}

// ServerConfig is the TLS configuration of a server of the pair: TLS 1.3
// only, this node's certificate.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.get()
		},
	}
}

// ClientConfig is the TLS configuration of a client of the pair: TLS 1.3,
// only this CA trusted; the server's name is checked against the address
// dialled (the transport sets ServerName from it).
func (ca *CA) ClientConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool()}
}
