package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twonode-edge/twonode/bootstrap/pki"
)

// The integration tests run two real PostgreSQL servers, "a" on 127.0.0.1
// and "b" on 127.0.0.2, both on port 5432, in a private network namespace:
// TestMain re-executes the test binary with CLONE_NEWNET, so nothing on the
// host is touched or in the way. Inside it, policy routes make a TCP
// connection to one server come FROM the other's address (on one host the
// kernel would pick 127.0.0.1 for every loopback destination), so that the
// contract's pg_hba, which admits the peer's /32 only, is what is tested.
// TWONODE_PGTEST_KEEP=1 keeps the servers' directories (and logs) in /tmp.

const (
	envChild = "TWONODE_PGTEST_CHILD"
	envRoot  = "TWONODE_PGTEST_ROOT"
	binDir   = "/usr/lib/postgresql/15/bin"
	testPort = 5432
	addrA    = "127.0.0.1"
	addrB    = "127.0.0.2"
	addrX    = "127.0.0.3" // neither node
)

var (
	envProblem string // why the integration tests cannot run, reported by each
	testRoot   string
	secret     = []byte("test-secret")
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		testRoot = os.Getenv(envRoot)
		if err := privateRouting(); err != nil {
			envProblem = "setting up the private network namespace: " + err.Error()
		}
		os.Exit(m.Run())
	}
	if envProblem = preflight(); envProblem != "" {
		os.Exit(m.Run()) // unit tests run; integration tests fail with the reason
	}
	os.Exit(runInNamespace(m))
}

// preflight names what is missing for the integration tests.
func preflight() string {
	if os.Geteuid() != 0 {
		return "these tests must run as root (they run PostgreSQL as the OS user postgres and use a private network namespace)"
	}
	for _, tool := range []string{"initdb", "pg_ctl", "pg_basebackup", "pg_rewind", "pg_controldata", "postgres"} {
		if _, err := os.Stat(filepath.Join(binDir, tool)); err != nil {
			return fmt.Sprintf("PostgreSQL 15 binaries missing (%s): apt-get install postgresql-15", err)
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command (iproute2) is missing"
	}
	return ""
}

// runInNamespace re-runs the test binary in a new network namespace, then
// stops any server a crashed run left behind (by the pid in its
// postmaster.pid) and removes the test directory.
func runInNamespace(m *testing.M) int {
	root, err := os.MkdirTemp("/tmp", "twonode-pgtest-")
	if err == nil {
		err = os.Chmod(root, 0o755) // postgres must traverse it
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "test root:", err)
		return 1
	}
	if os.Getenv("TWONODE_PGTEST_KEEP") == "" {
		defer os.RemoveAll(root)
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), envChild+"=1", envRoot+"="+root)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	killLeftovers(root)
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "re-running the tests in a network namespace:", err)
		return 1
	}
	return 0
}

func killLeftovers(root string) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "postmaster.pid" {
			return nil
		}
		b, _ := os.ReadFile(p)
		first, _, _ := strings.Cut(string(b), "\n")
		pid, _ := strconv.Atoi(strings.TrimSpace(first))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if pid > 1 && bytes.Contains(cmdline, []byte(root)) {
			_ = syscall.Kill(pid, syscall.SIGQUIT) // immediate shutdown
			for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(50 * time.Millisecond)
			}
		}
		return nil
	})
}

// privateRouting brings lo up and adds the source-address routes: a TCP
// connection to port 5432 on a comes from b and vice versa. The "local"
// rule moves after ours so that they are consulted first.
func privateRouting() error {
	steps := [][]string{
		{"link", "set", "lo", "up"},
		{"rule", "add", "pref", "32000", "lookup", "local"},
		{"rule", "del", "pref", "0", "lookup", "local"},
		{"route", "add", "local", "127.0.0.0/8", "dev", "lo", "src", addrB, "table", "100"},
		{"route", "add", "local", "127.0.0.0/8", "dev", "lo", "src", addrA, "table", "101"},
		{"rule", "add", "pref", "100", "to", addrA, "ipproto", "tcp", "dport", strconv.Itoa(testPort), "lookup", "100"},
		{"rule", "add", "pref", "101", "to", addrB, "ipproto", "tcp", "dport", strconv.Itoa(testPort), "lookup", "101"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

func needPostgres(t *testing.T) {
	t.Helper()
	if envProblem != "" {
		t.Fatal("integration test cannot run: " + envProblem)
	}
}

// node is one side of the test pair.
type node struct {
	name string
	s    Settings
	m    *Manager
}

func newNode(t *testing.T, name, self, peerName, peer string) *node {
	repl, kine := DerivePasswords(secret)
	dir := filepath.Join(testRoot, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := Settings{
		BinDir: binDir, DataDir: filepath.Join(dir, "data", "pgdata"), SocketDir: filepath.Join(dir, "run", "pg"),
		LogFile: filepath.Join(dir, "data", "postgresql.log"), Port: testPort, ListenAddress: self, OSUser: "postgres",
		NodeName: name, PeerName: peerName, PeerAddress: peer, ReplPassword: repl, KinePassword: kine,
		SharedBuffers: "16MB", WalSenderTimeout: 3 * time.Second, WalReceiverTimeout: 3 * time.Second,
		TLS: testTLS(t, filepath.Join(dir, "data", "tls"), name, self),
	}
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(w, nil)).With("node", name)
	n := &node{name: name, s: s, m: New(s, log)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = n.m.Stop(ctx, true)
	})
	return n
}

// testTLS writes a node's TLS files as the agent does at start, under the
// CA both test nodes derive from the one secret; the key is the
// PostgreSQL OS user's, as the server requires.
func testTLS(t *testing.T, dir, name, addr string) pki.Files {
	t.Helper()
	f := pki.Files{Dir: dir}
	if u, err := user.Lookup("postgres"); err == nil {
		f.UID, _ = strconv.Atoi(u.Uid)
		f.GID, _ = strconv.Atoi(u.Gid)
	}
	ca, err := pki.DeriveCA(secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Ensure(ca, pki.Node{Name: name, Address: net.ParseIP(addr)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return f
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// kine connects to n's server over TCP as kine, like Kine itself.
func (n *node) kine(t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := remote(ctxT(t, 10*time.Second), n.s.ListenAddress, n.s.Port, n.s.KinePassword, "", n.s.TLS.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// super connects to n's server over its socket as postgres.
func (n *node) super(t *testing.T, db string) *pgx.Conn {
	t.Helper()
	c, err := n.m.local(ctxT(t, 10*time.Second), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (n *node) status(t *testing.T) Status {
	t.Helper()
	st, err := n.m.Status(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("%s: status: %v", n.name, err)
	}
	return st
}

func (n *node) file(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.s.DataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls cond until it holds or timeout passes; it returns how long
// that took.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(start)
}

// boundDialer dials from a chosen source address.
func boundDialer(src string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.DialContext
}

// ping is one probe of a server by a fresh Pinger, the agent's probe.
func ping(ctx context.Context, host string, port int, password, caFile string) error {
	p := &Pinger{Host: host, Port: port, Password: password, CAFile: caFile}
	defer p.Close()
	return p.Ping(ctx)
}
