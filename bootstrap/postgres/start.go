package postgres

import (
	"context"
	"fmt"
	"strconv"
)

// Settings a copy inherits from its source (pg_basebackup and pg_rewind
// copy postgresql.auto.conf): on a new primary, an inherited
// synchronous_standby_names blocks every commit.
var replicationKeys = []string{"primary_conninfo", "primary_slot_name", "synchronous_standby_names"}

// Start starts PostgreSQL as a standby of the peer or as a primary; a no-op
// when it already runs in that role. It refuses to change the role of a
// running server: that is Promote's job, or Stop then Rewind.
//
// A primary start on data that was a standby's (standby.signal present, e.g.
// a rejoin interrupted after pg_rewind) promotes it instead of just opening
// it: a plain start would continue the old timeline, and a later pg_rewind
// could not see that the two nodes diverged.
func (m *Manager) Start(ctx context.Context, standby bool) error {
	return m.start(ctx, standby, m.pgctlStart)
}

// start is Start with the way the server process is launched left open:
// pg_ctl here, the systemd unit in Systemd.
func (m *Manager) start(ctx context.Context, standby bool, launch func(context.Context) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.HasData() {
		return fmt.Errorf("postgres: start: no cluster in %s", m.s.DataDir)
	}
	if m.Running(ctx) {
		inRecovery, err := m.inRecovery(ctx)
		if err != nil {
			return fmt.Errorf("postgres: start: running, but its role is unknown: %w", err)
		}
		if inRecovery == standby {
			return nil
		}
		if standby {
			return fmt.Errorf("postgres: start as standby: it runs as a primary: stop and rewind it first")
		}
		return fmt.Errorf("postgres: start as primary: it runs as a standby: promote it instead")
	}
	if standby {
		if err := m.prepareStandby(true, false); err != nil {
			return err
		}
		return launch(ctx)
	}
	if m.exists("standby.signal") {
		m.log.Warn("starting as primary on a standby's data: promoting it to a new timeline")
		if err := m.prepareStandby(false, false); err != nil {
			return err
		}
		if err := launch(ctx); err != nil {
			return err
		}
		_, err := m.promote(ctx)
		return err
	}
	if err := m.preparePrimary(false); err != nil {
		return err
	}
	return launch(ctx)
}

// preparePrimary: our configuration, no signal files, no inherited
// replication settings.
func (m *Manager) preparePrimary(isolated bool) error {
	if err := m.writeConfig(isolated); err != nil {
		return err
	}
	if err := m.removeFile("standby.signal"); err != nil {
		return err
	}
	if err := m.removeFile("recovery.signal"); err != nil {
		return err
	}
	return m.editAutoConf(replicationKeys, nil)
}

// prepareStandby writes the standby configuration: standby.signal, and in
// postgresql.auto.conf the connection to the peer and this node's slot on
// it (stream=false: none, recovery from the local WAL only).
func (m *Manager) prepareStandby(stream, isolated bool) error {
	if err := checkName("node name", m.s.NodeName); err != nil {
		return err
	}
	if err := m.writeConfig(isolated); err != nil {
		return err
	}
	if err := m.removeFile("recovery.signal"); err != nil {
		return err
	}
	if err := m.touchOwned("standby.signal"); err != nil {
		return err
	}
	var set [][2]string
	if stream {
		set = [][2]string{
			{"primary_conninfo", m.replConninfo(m.s.NodeName, "")},
			{"primary_slot_name", slotName(m.s.NodeName)},
		}
	}
	return m.editAutoConf(replicationKeys, set)
}

// replConninfo reaches the peer as the replication user; the password is
// in the passfile. connect_timeout bounds a connection attempt into a
// partition (TCP would otherwise retry for minutes). The walreceiver's
// application_name is the node name, which synchronous_standby_names uses.
func (m *Manager) replConninfo(app, dbname string) string {
	return m.conninfo(app, dbname, max(int(m.s.WalReceiverTimeout.Seconds()), 2))
}

// toolConnectTimeout is pg_rewind's and pg_basebackup's connect_timeout.
// Longer than the walreceiver's: libpq counts it in whole seconds (2 can
// expire after just over 1 s), and a peer promoted a moment ago on a busy
// machine can take that long to accept, which would fail a rejoin for
// nothing.
const toolConnectTimeout = 10

// toolConninfo is replConninfo for pg_rewind and pg_basebackup.
func (m *Manager) toolConninfo(app, dbname string) string {
	return m.conninfo(app, dbname, toolConnectTimeout)
}

func (m *Manager) conninfo(app, dbname string, connectTimeout int) string {
	s := "host=" + conninfoQuote(m.s.PeerAddress) +
		" port=" + strconv.Itoa(m.s.Port) +
		" user=" + replUser +
		" application_name=" + conninfoQuote(app) +
		" passfile=" + conninfoQuote(m.passfile()) +
		" connect_timeout=" + strconv.Itoa(connectTimeout) +
		" " + tlsParams(m.s.TLS.CAFile())
	if dbname != "" {
		s += " dbname=" + conninfoQuote(dbname)
	}
	return s
}

// startIsolated starts the server where nobody but the agent (unix socket)
// can reach it: to finish crash recovery before pg_rewind.
func (m *Manager) startIsolated(ctx context.Context, standby bool) error {
	var err error
	if standby {
		err = m.prepareStandby(false, true)
	} else {
		err = m.preparePrimary(true)
	}
	if err != nil {
		return err
	}
	return m.pgctlStart(ctx)
}
