// Package postgres manages this node's PostgreSQL: the cluster Kine stores
// its rows in, one primary and one streaming standby across the pair. It
// runs the PostgreSQL tools as the OS user that owns the data, renders the
// whole configuration before every start (so a copy taken from the peer
// never brings the peer's settings along) and answers the agent's SQL
// questions over the local unix socket.
//
// Every TCP connection is TLS 1.3 with the server's certificate checked
// against the pair's CA (sslmode=verify-full) and SCRAM bound to the channel
// (channel_binding=require), so that nobody on the link reads a row or
// takes over a session; pg_hba admits the peer only over TLS.
//
// Secrets: the replication and Kine passwords reach the tools only through
// 0600 passfiles or the environment, and the server only as SCRAM
// verifiers; they never appear in argv, logs or errors.
package postgres

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twonode-edge/twonode/bootstrap/pki"
)

// Settings describe this node's PostgreSQL and its peer's.
type Settings struct {
	BinDir, DataDir, SocketDir, LogFile string
	Port                                int    // TCP port (5432 in production)
	ListenAddress                       string // node IP; PostgreSQL listens only there
	// OSUser runs initdb, pg_ctl, pg_basebackup and pg_rewind; the data and
	// socket directories belong to it (mode 0700).
	OSUser                          string
	NodeName, PeerName, PeerAddress string
	ReplPassword, KinePassword      string // derived from the cluster secret by the caller
	SharedBuffers                   string // e.g. "32MB"; "" = PostgreSQL's default
	// The agent passes about its detection window, so that a partition is
	// noticed by PostgreSQL itself as fast as by the agent.
	WalSenderTimeout, WalReceiverTimeout time.Duration
	// TLS holds the node's certificate and key, which the server presents,
	// and the pair's CA certificate, which every client of the peer's
	// server checks it against (sslmode=verify-full); see package pki.
	TLS pki.Files
	// TestEnv is added to the environment of every PostgreSQL tool and so
	// of the server (FOR FAULT TESTS ONLY: libfaketime's LD_PRELOAD and
	// FAKETIME move the server's wall clock; see FaketimeEnv).
	TestEnv []string
}

// Database roles and objects (see the design contract).
const (
	replUser       = "twonode_repl"
	kineUser       = "kine"
	kineDB         = "kine"
	superUser      = "postgres"
	slotPrefix     = "twonode_"
	fenceName      = "/twonode/revision-fence"
	compactRevKey  = "compact_rev_key"
	appName        = "twonode-agent"
	defaultMargin  = 1_000_000
	defaultTimeout = 2 * time.Minute // pg_ctl -t when the caller gave no deadline
)

// Manager drives one node's PostgreSQL. Lifecycle operations (start, stop,
// copy, rewind) are serialised; queries may run concurrently with them.
type Manager struct {
	s   Settings
	log *slog.Logger

	mu sync.Mutex // lifecycle operations

	probeMu   sync.Mutex // ProbeCommit's connection, kept between probes
	probeConn *pgx.Conn

	keptMu sync.Mutex           // local's connections, one per database
	kept   map[string]*pgx.Conn // not lent out

	idMu     sync.Mutex
	uid, gid uint32
	idOK     bool
}

// New returns a Manager; it touches nothing until a method is called.
func New(s Settings, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if s.Port == 0 {
		s.Port = 5432
	}
	if s.BinDir == "" {
		s.BinDir = "/usr/lib/postgresql/15/bin"
	}
	if s.OSUser == "" {
		s.OSUser = "postgres"
	}
	return &Manager{s: s, log: log}
}

// HasData reports whether the data directory holds a cluster. InitDB and
// BaseBackup only make it true once they have completed.
func (m *Manager) HasData() bool {
	_, err := os.Stat(filepath.Join(m.s.DataDir, "PG_VERSION"))
	return err == nil
}

// ids resolves OSUser once: every tool runs with these credentials.
func (m *Manager) ids() (uint32, uint32, error) {
	m.idMu.Lock()
	defer m.idMu.Unlock()
	if m.idOK {
		return m.uid, m.gid, nil
	}
	name := m.s.OSUser
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: OS user %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return 0, 0, fmt.Errorf("postgres: OS user %q: unusable uid %s / gid %s (PostgreSQL refuses to run as root)", name, u.Uid, u.Gid)
	}
	m.uid, m.gid, m.idOK = uint32(uid), uint32(gid), true
	return m.uid, m.gid, nil
}

// nameRE is what a node name may be (as the config allows): it becomes part
// of a replication slot name, with '-' mapped to '_' (slot names allow only
// lowercase letters, digits and underscore, at most 63 bytes).
var nameRE = regexp.MustCompile(`^[a-z0-9-]{1,55}$`)

func checkName(what, n string) error {
	if !nameRE.MatchString(n) {
		return fmt.Errorf("postgres: %s %q: must be 1-55 of [a-z0-9-] (it names replication slots)", what, n)
	}
	return nil
}

// SlotName is the slot the given node streams through, on the leader. Names
// cannot collide: '_' is not allowed in node names.
func SlotName(node string) string { return slotPrefix + strings.ReplaceAll(node, "-", "_") }

func slotName(node string) string { return SlotName(node) }

var slotRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func (m *Manager) path(name string) string { return filepath.Join(m.s.DataDir, name) }

func (m *Manager) passfile() string { return filepath.Join(m.s.SocketDir, "twonode-repl.pgpass") }
