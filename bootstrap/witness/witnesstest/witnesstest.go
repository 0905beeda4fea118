// Package witnesstest runs real etcd members for the witness's tests and
// the end-to-end harness: a CA, server and client certificates made on the
// spot, and members started from the etcd binary that scripts/build.sh
// builds (ETCD_BIN).
package witnesstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// PKI is a CA and the files signed by it, all under Dir.
type PKI struct {
	Dir    string
	CAFile string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

// NewPKI makes a CA in dir.
func NewPKI(dir string) (*PKI, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "twonode test witness CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(der)
	p := &PKI{Dir: dir, CAFile: filepath.Join(dir, "ca.pem"), ca: ca, caKey: key}
	return p, writePEM(p.CAFile, "CERTIFICATE", der)
}

// Issue writes name.pem and name-key.pem: a certificate for a server (ips
// as its addresses) and a client both.
func (p *PKI) Issue(name string, ips ...net.IP) (cert, key string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	if err != nil {
		return "", "", err
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", err
	}
	cert, key = filepath.Join(p.Dir, name+".pem"), filepath.Join(p.Dir, name+"-key.pem")
	if err := writePEM(cert, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	return cert, key, writePEM(key, "EC PRIVATE KEY", kd)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// Member is one etcd member's settings.
type Member struct {
	Name       string
	IP         net.IP
	ClientPort int
	PeerPort   int
}

// ClientURL is the member's https client URL.
func (m Member) ClientURL() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(m.IP.String(), fmt.Sprint(m.ClientPort)))
}

func (m Member) peerURL() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(m.IP.String(), fmt.Sprint(m.PeerPort)))
}

// Args are the etcd arguments for member m of the cluster members, its
// data and certificates under dir (issued by p): clients must present a
// certificate of the CA, members talk to each other over TLS too.
func (p *PKI) Args(m Member, members []Member, dir string) ([]string, error) {
	cert, key, err := p.Issue("etcd-"+m.Name, m.IP)
	if err != nil {
		return nil, err
	}
	var initial string
	for i, o := range members {
		if i > 0 {
			initial += ","
		}
		initial += o.Name + "=" + o.peerURL()
	}
	return []string{
		"--name", m.Name, "--data-dir", filepath.Join(dir, m.Name),
		"--listen-client-urls", m.ClientURL(), "--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", m.peerURL(), "--initial-advertise-peer-urls", m.peerURL(),
		"--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", "twonode-test",
		"--cert-file", cert, "--key-file", key, "--trusted-ca-file", p.CAFile, "--client-cert-auth",
		"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", p.CAFile, "--peer-client-cert-auth",
		"--logger", "zap", "--log-level", "warn",
	}, nil
}

// Binary is the etcd binary: ETCD_BIN, or bin/etcd found upwards from the
// working directory (a package's tests run in its directory).
func Binary() (string, error) {
	if b := os.Getenv("ETCD_BIN"); b != "" {
		return b, nil
	}
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if b := filepath.Join(d, "bin", "etcd"); isExec(b) {
			return b, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no etcd binary: set ETCD_BIN or run scripts/build.sh (it builds bin/etcd)")
		}
	}
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// FreePort is a TCP port on 127.0.0.1 nobody listens on right now, and
// one this process has not handed out before: the kernel may give a port
// it just freed again, and a cluster's members take theirs only once all
// are chosen, so a repeat would leave one member unable to listen.
func FreePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port, nil
		}
	}
	return 0, errors.New("witnesstest: no port not handed out before in 100 tries")
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)
