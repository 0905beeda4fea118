// Package apiserver runs a real kube-apiserver inside a node's network
// namespace against that node's local Kine, as k3s would: etcd at
// http://127.0.0.1:2379 (Kine listens on the node's loopback only), served
// on the node's address at :6443, with throwaway credentials. It also runs
// k8s.io/apiserver's etcd3 storage tests against a node's Kine.
//
// The binaries are built from pinned modules by scripts/build-apiserver.sh
// (tools/kube-apiserver, tools/storage-conformance) and named by
// KUBE_APISERVER_BIN and STORAGE_CONFORMANCE_BIN.
package apiserver

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/twonode-edge/twonode/e2e/harness"
)

const (
	// Port is the API server's secure port (k3s and kubeadm use it too).
	Port = 6443
	// EtcdServers is the node's Kine, as every API server of a pair sees it.
	EtcdServers = "http://" + harness.KineAddr
	// ServiceCIDR is k3s's default service range; ServiceIP is the
	// "kubernetes" service's address in it (also in the serving cert).
	ServiceCIDR = "10.43.0.0/16"
	ServiceIP   = "10.43.0.1"

	// DefaultReadyTimeout bounds the wait for /readyz (about 3 s on Kine
	// when the machine is idle; much more when it is busy compiling).
	DefaultReadyTimeout = 2 * time.Minute
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout = 15 * time.Second
)

// Options describe one API server.
type Options struct {
	Bin  string // kube-apiserver binary
	NS   string // the node's network namespace
	Addr string // the node's address: bind, advertise, serving cert
	Dir  string // credentials and log (created)
	// ClientNS is the namespace clients dial from; "" = NS. The site's
	// client namespace ("c") reaches the node over the LAN, like kubectl on
	// an operator's laptop would.
	ClientNS string
	// ExtraArgs are appended to the command line (a later flag wins).
	ExtraArgs []string
	// PKI, if set, is used instead of credentials of this server's own:
	// the two servers of a pair share one, as k3s's servers share the
	// cluster's CA and keys through the datastore, so that a client of the
	// pair's address trusts whichever answers.
	PKI *PKI
	// Bind is the address to listen on ("" = Addr); 0.0.0.0 takes the
	// pair's address too while this node holds it.
	Bind string
	// Etcd is --etcd-servers ("" = EtcdServers, the node's Kine): an etcd
	// cluster's client URLs, for comparing with one (e2e/compare).
	Etcd string
}

// Server is a running kube-apiserver.
type Server struct {
	Opts    Options
	PKI     *PKI
	LogPath string
	URL     string // https://<addr>:6443
	proc    *harness.Proc
}

// Args is the command line for o with credentials p: etcd is the node's
// Kine; a static admin token and the service-account keys are the
// throwaway ones; admission is reduced to NamespaceLifecycle (no
// controller-manager runs, so plugins that rely on its controllers, or
// that only matter for pods, are left out); authorization is k3s's
// Node,RBAC.
func Args(o Options, p *PKI) []string {
	a := []string{
		"--etcd-servers=" + cmp.Or(o.Etcd, EtcdServers),
		"--storage-backend=etcd3",
		"--advertise-address=" + o.Addr,
		"--bind-address=" + cmp.Or(o.Bind, o.Addr),
		"--secure-port=" + strconv.Itoa(Port),
		"--tls-cert-file=" + p.CertFile,
		"--tls-private-key-file=" + p.KeyFile,
		"--client-ca-file=" + p.CAFile,
		"--token-auth-file=" + p.TokenFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + p.SAPubFile,
		"--service-account-signing-key-file=" + p.SAKeyFile,
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NamespaceLifecycle",
		"--disable-admission-plugins=" + strings.Join(disabledAdmission, ","),
		"--cert-dir=" + filepath.Join(o.Dir, "certs"),
		"--profiling=false",
		"--v=1",
	}
	return append(a, o.ExtraArgs...)
}

// disabledAdmission is every plugin kube-apiserver v1.37 enables by default
// (`kube-apiserver -h`, --enable-admission-plugins) except
// NamespaceLifecycle. A name it does not know is a start-up error, so a
// new Kubernetes minor may need this list updated.
var disabledAdmission = []string{
	"LimitRanger", "ServiceAccount", "TaintNodesByCondition", "PodSecurity",
	"Priority", "DefaultTolerationSeconds", "DefaultStorageClass",
	"StorageObjectInUseProtection", "PodGroupProtection",
	"PersistentVolumeClaimResize", "RuntimeClass", "CertificateApproval",
	"CertificateSigning", "ClusterTrustBundleAttest",
	"CertificateSubjectRestriction", "DefaultIngressClass",
	"PodTopologyLabels", "NodeDeclaredFeatureValidator", "PodResizeValidator",
	"MutatingAdmissionPolicy", "MutatingAdmissionWebhook",
	"ValidatingAdmissionPolicy", "ValidatingAdmissionWebhook", "ResourceQuota",
}

// Start generates credentials and starts kube-apiserver in o.NS. It does
// not wait for readiness (WaitReady).
func Start(o Options) (*Server, error) {
	if o.Bin == "" || o.NS == "" || o.Addr == "" || o.Dir == "" {
		return nil, errors.New("apiserver: Bin, NS, Addr and Dir are required")
	}
	if o.ClientNS == "" {
		o.ClientNS = o.NS
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	p := o.PKI
	if p == nil {
		var err error
		if p, err = NewPKI(filepath.Join(o.Dir, "pki"), o.Addr); err != nil {
			return nil, fmt.Errorf("apiserver: credentials: %w", err)
		}
	}
	s := &Server{
		Opts:    o,
		PKI:     p,
		LogPath: filepath.Join(o.Dir, "kube-apiserver.log"),
		URL:     "https://" + net.JoinHostPort(o.Addr, strconv.Itoa(Port)),
	}
	if err := s.spawn(); err != nil {
		return nil, err
	}
	return s, nil
}

// spawn starts the process with the server's credentials (again, after a
// node restart: the same PKI, so clients keep trusting it).
func (s *Server) spawn() error {
	proc, err := harness.Start(harness.Spec{
		NS:      s.Opts.NS,
		Name:    "kube-apiserver",
		LogPath: s.LogPath,
		Dir:     s.Opts.Dir,
		Argv:    append([]string{s.Opts.Bin}, Args(s.Opts, s.PKI)...),
	})
	if err != nil {
		return err
	}
	s.proc = proc
	return nil
}

// dial opens connections from the client namespace.
func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return harness.DialInNetns(ctx, s.Opts.ClientNS, network, addr)
}

// RestConfig is a client-go config for the admin user, dialling from the
// client namespace.
func (s *Server) RestConfig() *rest.Config {
	return &rest.Config{
		Host:            s.URL,
		BearerToken:     s.PKI.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.PKI.CACert},
		Dial:            s.dial,
		Timeout:         30 * time.Second,
		QPS:             -1, // no client-side throttling: tests measure the server
	}
}

// RestConfigAt is RestConfig for another address of the server (the
// pair's, with a shared PKI that names it), with a timeout per request.
func (s *Server) RestConfigAt(host string, timeout time.Duration) *rest.Config {
	c := s.RestConfig()
	c.Host = "https://" + net.JoinHostPort(host, strconv.Itoa(Port))
	c.Timeout = timeout
	return c
}

// Clientset is a typed client-go clientset for the admin user.
func (s *Server) Clientset() (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(s.RestConfig())
}

// httpClient is a plain HTTPS client for the health endpoints.
func (s *Server) httpClient(timeout time.Duration) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.PKI.CACert)
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       s.dial,
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
}

// Readyz asks /readyz once; nil when the server answers 200 "ok".
func (s *Server) Readyz(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.PKI.Token)
	resp, err := s.httpClient(5 * time.Second).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// WaitReady polls /readyz until it answers ok, the process exits, or
// timeout passes; it returns how long it took.
func (s *Server) WaitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	var last error
	for {
		if !s.proc.Running() {
			return time.Since(start), fmt.Errorf("apiserver: kube-apiserver exited (%v) before ready; see %s", s.proc.ExitErr(), s.LogPath)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = s.Readyz(rctx)
		cancel()
		if last == nil {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("apiserver: not ready after %v: %w (log %s)", timeout, last, s.LogPath)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (s *Server) current() *harness.Proc { return s.proc }

// Running reports whether the process is alive.
func (s *Server) Running() bool { return s.proc != nil && s.proc.Running() }

// Stop terminates kube-apiserver (SIGTERM, SIGKILL after StopTimeout). Stop
// it before the node's Kine: an API server whose etcd vanished logs errors
// and retries for a long time.
func (s *Server) Stop() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.StopTimeout(StopTimeout)
}

// BuildScript builds both binaries and links them into bin/.
const BuildScript = "scripts/build-apiserver.sh"

// APIServerBinary is $KUBE_APISERVER_BIN, checked.
func APIServerBinary() (string, error) { return binaryFromEnv("KUBE_APISERVER_BIN", "kube-apiserver") }

// ConformanceBinary is $STORAGE_CONFORMANCE_BIN (k8s.io/apiserver's etcd3
// storage tests, compiled by BuildScript), checked.
func ConformanceBinary() (string, error) {
	return binaryFromEnv("STORAGE_CONFORMANCE_BIN", "etcd3-storage.test")
}

// binaryFromEnv fails with the command that builds the binary when the
// variable is unset or names no executable: a missing binary is a
// failure, never a reason to skip.
func binaryFromEnv(env, name string) (string, error) {
	p := os.Getenv(env)
	if p == "" {
		return "", fmt.Errorf("%s is not set: run %s (it builds into /var/cache/twonode and links bin/%s), then export %s=$PWD/bin/%s",
			env, BuildScript, name, env, name)
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w (run %s)", env, err, BuildScript)
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s=%s is not an executable file (run %s)", env, p, BuildScript)
	}
	return p, nil
}
