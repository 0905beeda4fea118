package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twonode-edge/twonode/bootstrap/pki"
)

// connectTimeout bounds a connection attempt when ctx has no deadline.
const connectTimeout = 5 * time.Second

// local lends a connection to the local server as the superuser, to be
// given back with release: the one kept for db from an earlier call when
// it still answers a ping, else a new one. A new server process per call
// was most of the agent's cost at rest (a status every tick) and about
// 3 ms for each of the four steps of a take-over (the failover timeline).
// One is kept per database; a second borrower meanwhile gets its own.
func (m *Manager) local(ctx context.Context, db string) (*pgx.Conn, error) {
	m.keptMu.Lock()
	c := m.kept[db]
	delete(m.kept, db)
	m.keptMu.Unlock()
	if c != nil {
		// A server restarted since closed it; a frozen one lets the ping
		// run into ctx's deadline, as a new connection would.
		if err := c.Ping(ctx); err == nil {
			return c, nil
		}
		closeQuietly(c)
	}
	return m.dial(ctx, db)
}

// release gives back a connection from local: kept for the next call when
// it is healthy and outside a transaction, closed otherwise.
func (m *Manager) release(c *pgx.Conn) {
	if c.IsClosed() || c.PgConn().TxStatus() != 'I' {
		closeQuietly(c)
		return
	}
	db := c.Config().Database
	m.keptMu.Lock()
	if m.kept == nil {
		m.kept = map[string]*pgx.Conn{}
	}
	if m.kept[db] == nil {
		m.kept[db], c = c, nil
	}
	m.keptMu.Unlock()
	if c != nil {
		closeQuietly(c)
	}
}

// dial connects as the superuser over the unix socket (pg_hba: trust;
// the socket directory is 0700, so only root and OSUser reach it).
func (m *Manager) dial(ctx context.Context, db string) (*pgx.Conn, error) {
	cfg, err := baseConfig()
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port = m.s.SocketDir, uint16(m.s.Port)
	cfg.User, cfg.Database = superUser, db
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect to the local server (db %s): %w", db, err)
	}
	return c, nil
}

// remote connects to host as kine, database kine, over TLS checked against
// the pair's CA in caFile (verify-full: the certificate must name host) with
// SCRAM bound to the channel. bind, when an address of this node, is the
// source address: the peer's pg_hba admits this node's address only, and a
// multi-homed host might otherwise pick another one.
func remote(ctx context.Context, host string, port int, password, bind, caFile string) (*pgx.Conn, error) {
	cfg, err := tlsConfig(host, port, caFile)
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Database, cfg.Password = kineUser, kineDB, password
	d := &net.Dialer{KeepAlive: 5 * time.Second}
	if ip := net.ParseIP(bind); ip != nil && !ip.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	cfg.DialFunc = d.DialContext
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		// pgconn's error names host, user and database, never the password.
		return nil, fmt.Errorf("postgres: connect to %s as %s: %w", net.JoinHostPort(host, fmt.Sprint(port)), kineUser, pki.Explain(err))
	}
	return c, nil
}

// baseConfig is an empty configuration for the unix socket: no fallbacks
// to default hosts, no TLS (nothing leaves the machine).
func baseConfig() (*pgx.ConnConfig, error) {
	return scrub(pgx.ParseConfig("sslmode=disable"))
}

// tlsConfig is the configuration for a server on the link: TLS 1.3 with
// the pair's CA only, the name checked, SCRAM bound to the channel, and no
// plaintext fallback (verify-full has none).
func tlsConfig(host string, port int, caFile string) (*pgx.ConnConfig, error) {
	if caFile == "" {
		return nil, fmt.Errorf("postgres: connect to %s: no CA file for TLS", host)
	}
	cfg, err := scrub(pgx.ParseConfig("host=" + conninfoQuote(host) + " port=" + fmt.Sprint(port) + " " + tlsParams(caFile)))
	if err != nil {
		return nil, err
	}
	if cfg.TLSConfig == nil {
		return nil, fmt.Errorf("postgres: connect to %s: no TLS in the configuration", host)
	}
	cfg.TLSConfig.MinVersion = tls.VersionTLS13
	return cfg, nil
}

// tlsParams are the TLS keywords of every connection to a server on the
// link, the same for libpq (the walreceiver, pg_rewind, pg_basebackup) and
// pgx (the agent): the certificate checked against the pair's CA and the
// address dialled, SCRAM bound to the channel.
func tlsParams(caFile string) string {
	return "sslmode=verify-full sslrootcert=" + conninfoQuote(caFile) + " channel_binding=require"
}

// scrub clears what a parsed configuration took from the agent's
// environment and sets our defaults.
func scrub(cfg *pgx.ConnConfig, err error) (*pgx.ConnConfig, error) {
	if err != nil {
		return nil, fmt.Errorf("postgres: connection config: %w", err)
	}
	// Nothing from the agent's environment (PGHOST, PGTARGETSESSIONATTRS,
	// ~/.pgpass...) may change where or how we connect: one host, the one
	// given, and with verify-full no plaintext second try.
	cfg.Fallbacks = nil
	cfg.ValidateConnect, cfg.AfterConnect = nil, nil
	cfg.Password = ""
	cfg.ConnectTimeout = connectTimeout
	cfg.RuntimeParams = map[string]string{"application_name": appName}
	return cfg, nil
}

// closeQuietly closes a connection within a bounded time (a peer behind a
// partition must not hold the caller).
func closeQuietly(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

func selectOne(ctx context.Context, c *pgx.Conn, host string) error {
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("postgres: ping %s: %w", host, err)
	}
	return nil
}

// Pinger is the agent's probe of the peer's server: SELECT 1 as kine
// (database kine) within ctx's deadline, on a connection kept between probes: the agent probes
// twice a second, and a new connection each time cost a TLS handshake, a
// SCRAM exchange (4,096 rounds of HMAC on each side) and a server process
// on the peer. A kept connection that fails is dropped and a new one tried
// within the same deadline, so a peer whose server restarted answers the
// very probe that found the old connection gone; through a partition the
// kept one times out and there is no time left for another, as before.
type Pinger struct {
	Host, Password, CAFile string
	Port                   int

	mu   sync.Mutex
	conn *pgx.Conn
}

// Ping implements the agent's probe of the peer's server.
func (p *Pinger) Ping(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil && !p.conn.IsClosed() {
		err := selectOne(ctx, p.conn, p.Host)
		if err == nil {
			return nil
		}
		p.drop()
		if ctx.Err() != nil {
			return err
		}
	}
	c, err := remote(ctx, p.Host, p.Port, p.Password, "", p.CAFile)
	if err != nil {
		return err
	}
	if err := selectOne(ctx, c, p.Host); err != nil {
		go closeQuietly(c)
		return err
	}
	p.conn = c
	return nil
}

// drop closes the kept connection without waiting for it (a peer behind a
// partition would hold the probe for the close's whole bound).
func (p *Pinger) drop() {
	if p.conn != nil {
		go closeQuietly(p.conn)
		p.conn = nil
	}
}

// Close drops the kept connection.
func (p *Pinger) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop()
}

// DerivePasswords derives the replication and Kine passwords from the
// cluster secret, so that both nodes agree without exchanging them.
func DerivePasswords(secret []byte) (repl, kine string) {
	derive := func(label string) string {
		h := hmac.New(sha256.New, secret)
		h.Write([]byte(label))
		return hex.EncodeToString(h.Sum(nil))
	}
	return derive("twonode/replication"), derive("twonode/kine")
}

// inRecovery asks the running server for its role; while it does not yet
// accept connections (starting up), standby.signal tells what it will be.
func (m *Manager) inRecovery(ctx context.Context) (bool, error) {
	c, err := m.local(ctx, "postgres")
	if err != nil {
		return m.exists("standby.signal"), nil
	}
	defer m.release(c)
	var r bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&r); err != nil {
		return false, fmt.Errorf("postgres: pg_is_in_recovery: %w", err)
	}
	return r, nil
}

// kineTableExists: Kine creates its table at its first start.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func kineTableExists(ctx context.Context, q querier) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('kine') IS NOT NULL").Scan(&ok); err != nil {
		return false, fmt.Errorf("postgres: look for the kine table: %w", err)
	}
	return ok, nil
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
