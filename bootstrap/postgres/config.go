package postgres

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// WriteConfig renders postgresql.conf (the whole file is ours) and
// pg_hba.conf, and the replication passfile the walreceiver reads. It runs
// before every start: a base backup or pg_rewind copies the peer's files,
// whose listen address is the peer's.
func (m *Manager) WriteConfig() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writeConfig(false)
}

// writeConfig with isolated=true listens on no TCP address: used to let a
// crashed copy finish recovery where neither the peer nor Kine can reach it.
func (m *Manager) writeConfig(isolated bool) error {
	if !m.HasData() {
		return fmt.Errorf("postgres: write config: no cluster in %s", m.s.DataDir)
	}
	hba, err := m.renderHBA()
	if err != nil {
		return err
	}
	if err := m.checkTLS(); err != nil {
		return err
	}
	if err := m.ensureDir(m.s.SocketDir); err != nil {
		return err
	}
	if err := m.writeOwned(m.path("postgresql.conf"), m.renderConf(isolated)); err != nil {
		return fmt.Errorf("postgres: write postgresql.conf: %w", err)
	}
	if err := m.writeOwned(m.path("pg_hba.conf"), hba); err != nil {
		return fmt.Errorf("postgres: write pg_hba.conf: %w", err)
	}
	return m.writePassfile()
}

func (m *Manager) renderConf(isolated bool) string {
	listen := m.s.ListenAddress
	if isolated {
		listen = ""
	}
	var b strings.Builder
	set := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	b.WriteString("# Rendered by twonode before every start: edits here are lost.\n" +
		"# Replication and synchronous settings live in postgresql.auto.conf (ALTER SYSTEM).\n")
	set("listen_addresses", confQuote(listen))
	set("port", fmt.Sprint(m.s.Port))
	set("unix_socket_directories", confQuote(m.s.SocketDir))
	set("unix_socket_permissions", "0700")
	set("max_connections", "100")
	set("password_encryption", "scram-sha-256")
	// TLS for every TCP client (pg_hba says hostssl for all but loopback);
	// the files are read again on every reload, so a renewal needs none.
	set("ssl", "on")
	set("ssl_cert_file", confQuote(m.s.TLS.CertFile()))
	set("ssl_key_file", confQuote(m.s.TLS.KeyFile()))
	set("ssl_min_protocol_version", "'TLSv1.3'")
	if m.s.SharedBuffers != "" {
		set("shared_buffers", confQuote(m.s.SharedBuffers))
	}
	set("cluster_name", confQuote("twonode-"+m.s.NodeName))
	// Durability: an acknowledged Kine write is on disk (and, in sync mode,
	// on the standby's disk).
	set("fsync", "on")
	// A start after a crash first syncs the data directory: one syncfs(2)
	// per filesystem instead of opening and fsyncing every file (1.7 s at
	// 1 GB, before every rejoin of a crashed node).
	set("recovery_init_sync_method", "syncfs")
	set("full_page_writes", "on")
	set("synchronous_commit", "on")
	// Replication. wal_log_hints (on top of the checksums) is what pg_rewind
	// needs; wal_keep_size keeps the WAL it reads after a short split; the
	// slot limit stops a dead follower from filling the disk.
	set("wal_level", "replica")
	set("max_wal_senders", "5")
	set("max_replication_slots", "5")
	set("wal_log_hints", "on")
	set("wal_keep_size", "256MB")
	// pg_rewind (PostgreSQL 15) copies every file in the source's pg_wal,
	// recycled segments too: kept for reuse after a busy hour, up to
	// max_wal_size of them, they made a rewind copy as much as a base
	// backup. Removed instead of recycled, a new segment is created when
	// needed (one per 16 MB of WAL).
	set("wal_recycle", "off")
	set("max_slot_wal_keep_size", "1GB")
	set("hot_standby", "on")
	set("hot_standby_feedback", "on")
	set("recovery_target_timeline", "'latest'")
	set("wal_receiver_status_interval", "1s")
	set("wal_retrieve_retry_interval", "1s") // a rejoining standby retries its leader every second
	if d := timeoutMS(m.s.WalSenderTimeout); d != "" {
		set("wal_sender_timeout", d)
	}
	if d := timeoutMS(m.s.WalReceiverTimeout); d != "" {
		set("wal_receiver_timeout", d)
	}
	// Commit timestamps tell which side wrote last.
	set("track_commit_timestamp", "on")
	// pg_ctl -l sends the server log to LogFile.
	set("logging_collector", "off")
	set("log_timezone", "'UTC'")
	set("timezone", "'UTC'")
	set("lc_messages", "'C'")
	set("datestyle", "'iso, mdy'")
	set("default_text_search_config", "'pg_catalog.english'")
	return b.String()
}

// timeoutMS renders a replication timeout, at least 2 s: the standby
// reports every second (wal_receiver_status_interval), so a shorter
// timeout would cut healthy connections. 0 keeps PostgreSQL's default.
func timeoutMS(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	d = max(d, 2*time.Second)
	return fmt.Sprintf("'%dms'", d.Milliseconds())
}

// renderHBA is the contract's pg_hba: the agent over the socket; Kine from
// loopback, this node and the peer; replication and pg_rewind from the peer.
// Everything that arrives on the node's address must be TLS (hostssl): a
// plaintext attempt finds no entry and is refused before any password.
func (m *Manager) renderHBA() (string, error) {
	self, err := hostCIDR(m.s.ListenAddress)
	if err != nil {
		return "", fmt.Errorf("postgres: pg_hba: listen address: %w", err)
	}
	peer, err := hostCIDR(m.s.PeerAddress)
	if err != nil {
		return "", fmt.Errorf("postgres: pg_hba: peer address: %w", err)
	}
	var b strings.Builder
	b.WriteString("# Rendered by twonode before every start: edits here are lost.\n")
	line := func(f ...string) { fmt.Fprintf(&b, "%-7s %-15s %-13s %-20s %s\n", f[0], f[1], f[2], f[3], f[4]) }
	line("local", "all", superUser, "", "trust")
	line("host", "kine,postgres", kineUser, "127.0.0.1/32", "scram-sha-256")
	line("hostssl", "kine,postgres", kineUser, self, "scram-sha-256")
	line("hostssl", "kine,postgres", kineUser, peer, "scram-sha-256")
	line("hostssl", "replication", replUser, peer, "scram-sha-256")
	line("hostssl", "postgres", replUser, peer, "scram-sha-256") // pg_rewind's source connection
	return b.String(), nil
}

// checkTLS fails early, naming the file, when the server could not start
// with TLS (PostgreSQL would only say so in its log).
func (m *Manager) checkTLS() error {
	if m.s.TLS.Dir == "" {
		return fmt.Errorf("postgres: no TLS directory configured")
	}
	for _, f := range []string{m.s.TLS.CertFile(), m.s.TLS.KeyFile(), m.s.TLS.CAFile()} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("postgres: TLS: %w (the agent writes it at start)", err)
		}
	}
	return nil
}

func hostCIDR(addr string) (string, error) {
	ip := net.ParseIP(addr)
	if ip == nil || ip.IsUnspecified() {
		return "", fmt.Errorf("%q is not a host IP address", addr)
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String() + "/32", nil
	}
	return ip.String() + "/128", nil
}

// writePassfile writes the replication passfile (0600, OSUser's): libpq in
// the walreceiver, pg_basebackup and pg_rewind read the password there.
func (m *Manager) writePassfile() error {
	line := fmt.Sprintf("*:*:*:%s:%s\n", replUser, pgpassEscape(m.s.ReplPassword))
	if err := m.ensureDir(m.s.SocketDir); err != nil {
		return err
	}
	if err := m.writeOwned(m.passfile(), line); err != nil {
		return fmt.Errorf("postgres: write replication passfile: %w", err)
	}
	return nil
}

func pgpassEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s)
}

// confQuote quotes a postgresql.conf string value.
func confQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// conninfoQuote quotes a libpq keyword value.
func conninfoQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, ` '\`) {
		return s
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// sqlLiteral quotes an SQL string literal (standard_conforming_strings=on).
func sqlLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// editAutoConf removes keys from postgresql.auto.conf and appends set (in
// order) while the server is stopped: the file ALTER SYSTEM maintains, which
// overrides postgresql.conf and which copies inherit from their source.
func (m *Manager) editAutoConf(remove []string, set [][2]string) error {
	p := m.path("postgresql.auto.conf")
	old, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("postgres: read postgresql.auto.conf: %w", err)
	}
	drop := map[string]bool{}
	for _, k := range remove {
		drop[k] = true
	}
	for _, kv := range set {
		drop[kv[0]] = true
	}
	var b strings.Builder
	if len(old) == 0 {
		b.WriteString("# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n")
	}
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if line == "" {
			continue
		}
		t := strings.TrimSpace(line)
		if k, _, ok := strings.Cut(t, "="); ok && !strings.HasPrefix(t, "#") && drop[strings.ToLower(strings.TrimSpace(k))] {
			continue
		}
		b.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			b.WriteString("\n")
		}
	}
	for _, kv := range set {
		fmt.Fprintf(&b, "%s = %s\n", kv[0], confQuote(kv[1]))
	}
	if err := m.writeOwned(p, b.String()); err != nil {
		return fmt.Errorf("postgres: write postgresql.auto.conf: %w", err)
	}
	return nil
}
