// Package pki gives the pair its TLS: a certificate authority both nodes
// derive from the cluster secret, and a certificate for each node signed by
// it, with no operator step and nothing exchanged.
//
// Why derived: the cluster secret is already what makes a machine a member
// (the peer API's MACs and the PostgreSQL passwords come from it), so a CA
// derived from it trusts exactly who the pair already trusts, and a node
// that is reset and re-formed gets the same CA back. Each node signs its own
// certificate with the derived key; the CA certificate each node writes may
// differ in its signature bytes (ECDSA signs with a random nonce), never in
// its name or its key, which is all that verification looks at.
//
// Clocks: edge machines boot with a wrong clock (a flat RTC battery) more
// often than one would like, and a node that refused its peer's certificate
// over a date would see the peer as gone. A node certificate is therefore
// valid from 1970 (never "not yet valid", whatever the verifier's clock
// says) and for Lifetime after it was issued; a running node renews it when
// less than RenewBefore is left, at start and every day after, so a peer's
// clock must be a year ahead before it finds a running node's certificate
// expired. An expired certificate is refused, and counts as no answer
// (without a witness a follower would then promote): it means the peer has
// not run for years, or one of the two clocks is wrong by a year or more.
// A short lifetime would buy nothing here: there is no revocation, and
// whoever could use a stolen node key is root on a node, or holds the
// secret, which is the CA.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Validity of a node certificate, and how long before its end it is renewed
// (see the package comment): renewed about every two years, and never less
// than a year from its end while its node runs.
const (
	Lifetime    = 3 * 365 * 24 * time.Hour
	RenewBefore = 365 * 24 * time.Hour
)

// epoch is every certificate's NotBefore (see the package comment).
var epoch = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// caNotAfter: the CA lives as long as the secret it is derived from.
var caNotAfter = time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC)

// CAName is the derived CA's common name; a verifier's error names it.
const CAName = "twonode pair CA"

// CA is the pair's certificate authority, derived from the cluster secret.
type CA struct {
	Cert *x509.Certificate
	DER  []byte
	key  *ecdsa.PrivateKey
}

// DeriveCA derives the pair's CA from the cluster secret: the same key and
// name on both nodes, and on every start.
func DeriveCA(secret []byte) (*CA, error) {
	if len(secret) == 0 {
		return nil, errors.New("pki: no cluster secret")
	}
	key, err := deriveKey(secret, "twonode/pki/ca")
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("pki: CA public key: %w", err)
	}
	sum := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(sum[:16]),
		// The key's digest in the name: a node whose secret differs has a
		// CA of another name, and the verifier's error says which.
		Subject:               pkix.Name{Organization: []string{"twonode"}, CommonName: fmt.Sprintf("%s %x", CAName, sum[:4])},
		NotBefore:             epoch,
		NotAfter:              caNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          sum[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	return &CA{Cert: cert, DER: der, key: key}, nil
}

// deriveKey turns the secret into a P-256 private key: HKDF-SHA256 to 32
// bytes, taken as the scalar (retried with a counter in the vanishing case
// that it is not below the curve's order).
func deriveKey(secret []byte, label string) (*ecdsa.PrivateKey, error) {
	for i := 0; i < 16; i++ {
		b, err := hkdf.Key(sha256.New, secret, []byte("twonode"), fmt.Sprintf("%s/%d", label, i), 32)
		if err != nil {
			return nil, fmt.Errorf("pki: derive key: %w", err)
		}
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("pki: derive key: no usable scalar")
}

// Pool is a pool holding only this CA: what every client of the pair's
// connections trusts, and nothing else (not the system's roots).
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Node names the certificate a node serves: its name and its address on
// the pair's link (what the peer connects to and verify-full checks).
type Node struct {
	Name    string
	Address net.IP
}

// Issue signs a new certificate for node with a fresh key, valid from epoch
// to now+Lifetime, for serving and for client use.
func (ca *CA) Issue(node Node, now time.Time) (certDER []byte, key *ecdsa.PrivateKey, err error) {
	if node.Address == nil {
		return nil, nil, errors.New("pki: issue: no node address")
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"twonode"}, CommonName: node.Name},
		NotBefore:    epoch,
		NotAfter:     now.Add(Lifetime).UTC().Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{node.Address},
	}
	if node.Name != "" {
		tmpl.DNSNames = []string{node.Name}
	}
	certDER, err = x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: node certificate: %w", err)
	}
	return certDER, key, nil
}

// Check says why cert (with its key) is not one this node should serve at
// now, or nil: signed by this CA, for this node's address and name, the key
// its own, and more than RenewBefore left.
func (ca *CA) Check(cert *x509.Certificate, key crypto.PublicKey, node Node, now time.Time) error {
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("not valid under this pair's CA: %w", err)
	}
	if err := cert.VerifyHostname(node.Address.String()); err != nil {
		return fmt.Errorf("not for this node's address: %w", err)
	}
	if cert.Subject.CommonName != node.Name {
		return fmt.Errorf("issued to %q, not to this node (%q)", cert.Subject.CommonName, node.Name)
	}
	if pk, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pk.Equal(key) {
		return errors.New("its key is not the key beside it")
	}
	if left := cert.NotAfter.Sub(now); left < RenewBefore {
		return fmt.Errorf("expires %s, in less than %d days", cert.NotAfter.Format(time.DateOnly), int(RenewBefore.Hours()/24))
	}
	return nil
}

// TLSCertificate issues a certificate for node and returns it ready to
// serve, held in memory only (tests: a server that stands in for a node).
func (ca *CA) TLSCertificate(node Node, now time.Time) (tls.Certificate, error) {
	der, key, err := ca.Issue(node, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
