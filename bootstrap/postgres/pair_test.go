package postgres

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/twonode-edge/twonode/bootstrap/archive"
	"github.com/twonode-edge/twonode/bootstrap/pki"
)

const kineSchema = `CREATE TABLE kine (id BIGSERIAL PRIMARY KEY, name text COLLATE "C", created INTEGER, deleted INTEGER,
	create_revision BIGINT, prev_revision BIGINT, lease INTEGER, value bytea, old_value bytea)`

// put inserts a row the way Kine creates a key; it returns the revision.
func put(ctx context.Context, c *pgx.Conn, key, val string) (int64, error) {
	var id int64
	err := c.QueryRow(ctx, `INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value)
		VALUES ($1, 1, 0, 0, 0, 0, $2, '') RETURNING id`, key, []byte(val)).Scan(&id)
	return id, err
}

func mustPut(t *testing.T, c *pgx.Conn, key, val string) int64 {
	t.Helper()
	id, err := put(ctxT(t, 5*time.Second), c, key, val)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return id
}

func maxRev(t *testing.T, n *node) int64 {
	t.Helper()
	r, err := n.m.MaxRevision(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPair walks one pair through its life: form, clone, synchronous
// replication, failover, split brain, rewind. Each step relies on the
// previous ones, so the first failure stops the walk.
func TestPair(t *testing.T) {
	needPostgres(t)
	a := newNode(t, "a", addrA, "b", addrB)
	b := newNode(t, "b", addrB, "a", addrA)
	timings := map[string]time.Duration{}
	defer func() { t.Logf("timings: %v", timings) }()
	var sysID uint64
	var fork int64
	var splitIDs []int64

	steps := []struct {
		name string
		f    func(t *testing.T)
	}{
		{"initdb creates a running primary and refuses to run twice", func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			if a.m.HasData() || a.m.Running(ctx) {
				t.Fatal("fresh node claims data or a server")
			}
			start := time.Now()
			if err := a.m.InitDB(ctx); err != nil {
				t.Fatal(err)
			}
			timings["initdb"] = time.Since(start)
			if !a.m.HasData() || !a.m.Running(ctx) {
				t.Fatal("after InitDB: no data or not running")
			}
			if err := a.m.InitDB(ctx); err == nil || !strings.Contains(err.Error(), "refusing") {
				t.Fatalf("second InitDB: %v, want a refusal", err)
			}
			if _, err := os.Stat(a.s.DataDir + ".initdb"); !os.IsNotExist(err) {
				t.Fatalf("initdb work directory left behind: %v", err)
			}
			for _, d := range []string{a.s.DataDir, a.s.SocketDir} {
				fi, err := os.Stat(d)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid == 0 {
					t.Fatalf("%s: mode %v uid %d, want 0700 owned by postgres", d, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid)
				}
			}
			st := a.status(t)
			if !st.Up || st.InRecovery || st.Timeline != 1 || st.CurrentLSN == 0 || st.PeerFlushLagBytes != -1 {
				t.Fatalf("status of a new primary: %+v", st)
			}
			c := a.super(t, "postgres")
			if err := c.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&sysID); err != nil {
				t.Fatal(err)
			}
			var owner string
			if err := c.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'kine'").Scan(&owner); err != nil || owner != "kine" {
				t.Fatalf("database kine owner %q, %v", owner, err)
			}
			var repl bool
			if err := c.QueryRow(ctx, "SELECT rolreplication FROM pg_roles WHERE rolname = 'twonode_repl'").Scan(&repl); err != nil || !repl {
				t.Fatalf("twonode_repl replication=%v, %v", repl, err)
			}
			// Kine has not run yet: no revisions, nothing to fence.
			if r := maxRev(t, a); r != 0 {
				t.Fatalf("max revision without a kine table: %d", r)
			}
			if f, err := a.m.RevisionFence(ctx, 1000, 0); f != 0 || err != nil {
				t.Fatalf("fence without a kine table: %d, %v", f, err)
			}
		}},
		{"local connections are kept, one per database, and outlive a restart", func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			backend := func() int {
				c, err := a.m.local(ctx, "postgres")
				if err != nil {
					t.Fatal(err)
				}
				defer a.m.release(c)
				var pid int
				if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
					t.Fatal(err)
				}
				return pid
			}
			first := backend()
			if again := backend(); again != first {
				t.Fatalf("a second call got a new server process (%d, then %d)", first, again)
			}
			// Lent out meanwhile: a second borrower gets its own.
			c, err := a.m.local(ctx, "postgres")
			if err != nil {
				t.Fatal(err)
			}
			if other := backend(); other == first {
				t.Fatal("the connection lent out was lent twice")
			}
			a.m.release(c)
			// One left inside a transaction is not kept.
			c, err = a.m.local(ctx, "postgres")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			a.m.release(c)
			if !c.IsClosed() {
				t.Fatal("a connection given back inside a transaction stayed open")
			}
			kept := backend()
			if err := a.m.Stop(ctx, false); err != nil {
				t.Fatal(err)
			}
			if st := a.status(t); st.Up {
				t.Fatal("status up through a kept connection after the stop")
			}
			if err := a.m.Start(ctx, false); err != nil {
				t.Fatal(err)
			}
			if now := backend(); now == kept {
				t.Fatal("the same server process after a restart")
			}
			if st := a.status(t); !st.Up || st.InRecovery {
				t.Fatalf("status after the restart: %+v", st)
			}
		}},
		{"a restart reuses the data", func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			if err := a.m.Stop(ctx, false); err != nil {
				t.Fatal(err)
			}
			if a.m.Running(ctx) || a.status(t).Up {
				t.Fatal("still running after Stop")
			}
			if err := a.m.Stop(ctx, false); err != nil {
				t.Fatalf("Stop when stopped: %v", err)
			}
			if err := a.m.Start(ctx, false); err != nil {
				t.Fatal(err)
			}
			if err := a.m.Start(ctx, false); err != nil {
				t.Fatalf("Start when running as primary: %v", err)
			}
			// No commit since the restart: found among recent xids.
			if st := a.status(t); st.LastCommit.IsZero() || time.Since(st.LastCommit) > time.Minute {
				t.Fatalf("last commit after a restart: %v", st.LastCommit)
			}
			if err := a.m.Start(ctx, true); err == nil {
				t.Fatal("Start as standby of a running primary: no error")
			}
			var id uint64
			if err := a.super(t, "postgres").QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&id); err != nil || id != sysID {
				t.Fatalf("system identifier %d after restart, was %d (%v): re-initialised?", id, sysID, err)
			}
		}},
		{"kine's table and terms", func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			k := a.kine(t)
			if _, err := k.Exec(ctx, kineSchema); err != nil {
				t.Fatal(err)
			}
			if _, err := k.Exec(ctx, `INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value)
				VALUES ('compact_rev_key', 1, 0, 0, 0, 0, '', '')`); err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				mustPut(t, k, fmt.Sprintf("/registry/k%02d", i), fmt.Sprintf("v%d", i))
			}
			if r := maxRev(t, a); r != 51 {
				t.Fatalf("max revision %d, want 51", r)
			}
			for range 2 {
				if err := a.m.RecordTerm(ctx, 1, "form", "a", 0); err != nil {
					t.Fatal(err)
				}
			}
			var n int
			if err := a.super(t, "kine").QueryRow(ctx, "SELECT count(*) FROM twonode_terms WHERE term = 1 AND kind = 'form'").Scan(&n); err != nil || n != 1 {
				t.Fatalf("terms rows %d, %v", n, err)
			}
		}},
		{"a clone streams and does not inherit synchronous replication", func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			// Synchronous already on at the source: the copy inherits it in
			// postgresql.auto.conf unless BaseBackup clears it.
			if err := a.m.SetSync(ctx, true); err != nil {
				t.Fatal(err)
			}
			if st := a.status(t); st.SyncStandbyNames != `FIRST 1 ("b")` {
				t.Fatalf("synchronous_standby_names %q", st.SyncStandbyNames)
			}
			for range 2 {
				if err := a.m.EnsureSlot(ctx, "twonode_b"); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.m.EnsureSlot(ctx, "bad-name"); err == nil {
				t.Fatal("EnsureSlot accepted an invalid slot name")
			}
			start := time.Now()
			if err := b.m.BaseBackup(ctx); err != nil {
				t.Fatal(err)
			}
			timings["basebackup"] = time.Since(start)
			auto := b.file(t, "postgresql.auto.conf")
			if strings.Contains(auto, "synchronous_standby_names") || !strings.Contains(auto, "application_name=b ") ||
				!strings.Contains(auto, "host=127.0.0.1 ") || !strings.Contains(auto, "primary_slot_name = 'twonode_b'") {
				t.Fatalf("standby auto.conf:\n%s", auto)
			}
			if !strings.Contains(b.file(t, "postgresql.conf"), "listen_addresses = '127.0.0.2'") {
				t.Fatal("the clone kept the source's postgresql.conf")
			}
			if _, err := os.Stat(filepath.Join(b.s.DataDir, "standby.signal")); err != nil {
				t.Fatal(err)
			}
			for _, sfx := range []string{".new", ".old"} {
				if _, err := os.Stat(b.s.DataDir + sfx); !os.IsNotExist(err) {
					t.Fatalf("%s left behind", sfx)
				}
			}
			if err := b.m.Start(ctx, true); err != nil {
				t.Fatal(err)
			}
			timings["stream after start"] = waitFor(t, 15*time.Second, "a streams to b, b receives", func() bool {
				sa, sb := a.status(t), b.status(t)
				return sa.Streaming && sa.PeerFlushLagBytes == 0 && sb.ReceiverStreaming && sb.InRecovery
			})
			sb := b.status(t)
			if sb.Timeline != 1 || sb.ReplayLSN == 0 || sb.ReceiveLSN == 0 || sb.LastCommit.IsZero() {
				t.Fatalf("standby status: %+v", sb)
			}
			if err := b.m.Start(ctx, true); err != nil {
				t.Fatalf("Start when running as standby: %v", err)
			}
			// The commit probe commits on the primary, is refused on the
			// standby, and its WAL gives the follower's flush a time.
			if d, err := b.m.ProbeCommit(ctx); err == nil {
				t.Fatalf("a commit probe on the standby took %v and did not fail", d)
			}
			timings["flush lag measured"] = waitFor(t, 10*time.Second, "a measures b's flush", func() bool {
				d, err := a.m.ProbeCommit(ctx)
				if err != nil || d <= 0 {
					t.Fatalf("commit probe on the primary: %v, %v", d, err)
				}
				return a.status(t).PeerFlushLag > 0
			})
			// Both flush positions are read, and the follower's reaches
			// this server's once it caught up.
			waitFor(t, 10*time.Second, "b flushed what a flushed", func() bool {
				st := a.status(t)
				if st.FlushLSN == 0 || st.FlushLSN > st.CurrentLSN {
					t.Fatalf("flush position %d, write position %d", st.FlushLSN, st.CurrentLSN)
				}
				return st.PeerFlushLSN >= st.FlushLSN
			})
			if r := maxRev(t, b); r != 51 {
				t.Fatalf("standby max revision %d, want 51", r)
			}
			// The leader's terms reach the standby with the WAL.
			if term, err := b.m.MaxTerm(ctx); err != nil || term != 1 {
				t.Fatalf("standby max term %d, %v; want 1", term, err)
			}
			mustPut(t, a.kine(t), "/registry/sync", "acknowledged by both")
		}},
		{"pg_hba admits replication from the peer only, over TLS only", func(t *testing.T) {
			ctx := ctxT(t, 20*time.Second)
			replConnWith := func(src, conninfo string) error {
				cfg, err := pgconn.ParseConfig("host=" + addrA + " " + conninfo)
				if err != nil {
					return err
				}
				cfg.Port, cfg.User, cfg.Password = testPort, replUser, a.s.ReplPassword
				cfg.Fallbacks = nil
				cfg.RuntimeParams = map[string]string{"replication": "true"}
				cfg.DialFunc = boundDialer(src)
				c, err := pgconn.ConnectConfig(ctx, cfg)
				if err != nil {
					return err
				}
				defer c.Close(ctx)
				_, err = c.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
				return err
			}
			replConn := func(src string) error {
				return replConnWith(src, "sslmode=verify-full channel_binding=require sslrootcert="+a.s.TLS.CAFile())
			}
			if err := replConn(addrB); err != nil {
				t.Fatalf("replication from the peer: %v", err)
			}
			// Plaintext from the peer's own address: no entry, refused
			// before any password is asked.
			err := replConnWith(addrB, "sslmode=disable")
			if err == nil || !strings.Contains(err.Error(), "no encryption") {
				t.Fatalf("plaintext replication from the peer: %v, want refused by pg_hba (no encryption)", err)
			}
			// A client that trusts another CA (a node with another
			// secret, or an impostor's server): the certificate is refused.
			other := t.TempDir()
			wrong, _ := pki.DeriveCA([]byte("another secret"))
			of := pki.Files{Dir: other, UID: os.Getuid(), GID: os.Getgid()}
			if _, err := of.Ensure(wrong, pki.Node{Name: "x", Address: net.ParseIP(addrX)}, time.Now()); err != nil {
				t.Fatal(err)
			}
			err = replConnWith(addrB, "sslmode=verify-full channel_binding=require sslrootcert="+of.CAFile())
			if err == nil || !strings.Contains(pki.Explain(err).Error(), "cluster secrets differ") {
				t.Fatalf("replication trusting another CA: %v", err)
			}
			err = replConn(addrX)
			if err == nil || !strings.Contains(err.Error(), "no pg_hba.conf entry") {
				t.Fatalf("replication from %s: %v, want refused by pg_hba", addrX, err)
			}
			// Nor may kine connect from a third address.
			k, err := remote(ctx, addrA, testPort, a.s.KinePassword, addrX, a.s.TLS.CAFile())
			if err == nil {
				k.Close(ctx)
				t.Fatalf("kine from %s admitted", addrX)
			}
		}},
		{"a renewed certificate is served after a reload, with no restart", func(t *testing.T) {
			ctx := ctxT(t, 20*time.Second)
			served := func() string {
				c, err := remote(ctx, addrA, testPort, a.s.KinePassword, "", a.s.TLS.CAFile())
				if err != nil {
					t.Fatal(err)
				}
				defer closeQuietly(c)
				tc, ok := c.PgConn().Conn().(*tls.Conn)
				if !ok {
					t.Fatalf("the connection is not TLS: %T", c.PgConn().Conn())
				}
				return tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
			}
			before := served()
			ca, err := pki.DeriveCA(secret)
			if err != nil {
				t.Fatal(err)
			}
			// The renewal a running agent makes four months before the end.
			late := time.Now().Add(pki.Lifetime - pki.RenewBefore + time.Hour)
			r, err := a.s.TLS.Ensure(ca, pki.Node{Name: a.name, Address: net.ParseIP(addrA)}, late)
			if err != nil || !r.Issued {
				t.Fatalf("renewal: %+v %v", r, err)
			}
			if served() != before {
				t.Fatal("the new certificate is served before the reload: the test would prove nothing")
			}
			if err := a.m.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the renewed certificate served", func() bool { return served() != before })
		}},
		{"ping", func(t *testing.T) {
			if err := ping(ctxT(t, 5*time.Second), addrA, testPort, a.s.KinePassword, a.s.TLS.CAFile()); err != nil {
				t.Fatalf("ping the primary: %v", err)
			}
			if err := ping(ctxT(t, 5*time.Second), addrB, testPort, b.s.KinePassword, b.s.TLS.CAFile()); err != nil {
				t.Fatalf("ping the standby: %v", err)
			}
			err := ping(ctxT(t, 5*time.Second), addrA, testPort, "wrong", a.s.TLS.CAFile())
			if err == nil || strings.Contains(err.Error(), "wrong") {
				t.Fatalf("ping with a wrong password: %v", err)
			}
			// The kept connection: reused while it works; when its server
			// process is gone the same probe answers on a new one.
			p := &Pinger{Host: addrA, Port: testPort, Password: a.s.KinePassword, CAFile: a.s.TLS.CAFile()}
			defer p.Close()
			for i := 0; i < 3; i++ {
				if err := p.Ping(ctxT(t, 5*time.Second)); err != nil {
					t.Fatalf("pinger, probe %d: %v", i, err)
				}
			}
			kept := p.conn
			pid := kept.PgConn().PID()
			if err := execAll(ctxT(t, 5*time.Second), a.super(t, "postgres"), "terminate", fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid)); err != nil {
				t.Fatal(err)
			}
			if err := p.Ping(ctxT(t, 5*time.Second)); err != nil {
				t.Fatalf("pinger after its connection was terminated: %v", err)
			}
			if p.conn == kept || p.conn.PgConn().PID() == pid {
				t.Fatal("the terminated connection is still the kept one")
			}
			// A server that accepts and never answers: the deadline holds.
			ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", addrX+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					defer c.Close()
				}
			}()
			port := ln.Addr().(*net.TCPAddr).Port
			start := time.Now()
			if err := ping(ctxT(t, 300*time.Millisecond), addrX, port, "x", a.s.TLS.CAFile()); err == nil {
				t.Fatal("ping of a silent server succeeded")
			}
			if d := time.Since(start); d > 1500*time.Millisecond {
				t.Fatalf("ping ignored its deadline: %s", d)
			}
		}},
		{"a status cut short by its deadline says slow, never down", func(t *testing.T) {
			// Deadlines from 50 µs to 40 ms fall before the connection, inside
			// one query or between two: each answer is either complete or a
			// timeout, never "down" and never another error (measured before:
			// a query cut by the deadline closed the connection and the next
			// one's "conn closed" made a starved follower count its running
			// server down, and take over).
			for _, n := range []*node{a, b} {
				cut := 0
				for d := 50 * time.Microsecond; d < 40*time.Millisecond; d += d/4 + 25*time.Microsecond {
					ctx, cancel := context.WithTimeout(context.Background(), d)
					st, err := n.m.Status(ctx)
					cancel()
					switch {
					case err == nil && !st.Up:
						t.Fatalf("%s: status within %s: down, without an error, while the server runs", n.name, d)
					case err != nil && !errors.Is(err, context.DeadlineExceeded):
						t.Fatalf("%s: status within %s: %v, want a timeout", n.name, d, err)
					case err != nil:
						cut++
					}
				}
				if cut == 0 {
					t.Fatalf("%s: no deadline from 50 µs up cut a status short: the test tests nothing", n.name)
				}
			}
		}},
		{"synchronous commit blocks without the standby and SetSync(false) releases it", func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			if err := b.m.Stop(ctx, false); err != nil {
				t.Fatal(err)
			}
			k := a.kine(t)
			done := make(chan error, 1)
			go func() { _, err := put(ctx, k, "/registry/blocked", "waits for b"); done <- err }()
			select {
			case err := <-done:
				t.Fatalf("write returned without the synchronous standby: %v", err)
			case <-time.After(700 * time.Millisecond):
			}
			var waiting int
			if err := a.super(t, "postgres").QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'").Scan(&waiting); err != nil || waiting != 1 {
				t.Fatalf("backends waiting on SyncRep: %d, %v", waiting, err)
			}
			// A leader going alone records its new term first: that commit
			// must not wait for the standby that is gone.
			recordCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := a.m.RecordTerm(recordCtx, 2, "alone", "a", 0); err != nil {
				t.Fatalf("recording a term with the synchronous standby gone: %v", err)
			}
			cancel()
			start := time.Now()
			if err := a.m.SetSync(ctx, false); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				timings["sync-off release"] = time.Since(start)
			case <-time.After(time.Second):
				t.Fatal("write still blocked 1 s after SetSync(false)")
			}
			if err := b.m.Start(ctx, true); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 15*time.Second, "b streams again", func() bool { return a.status(t).Streaming })
			if err := a.m.SetSync(ctx, true); err != nil {
				t.Fatal(err)
			}
			mustPut(t, k, "/registry/sync2", "both again")
			waitFor(t, 5*time.Second, "b replays everything", func() bool { return maxRev(t, b) == maxRev(t, a) })
		}},
		{"promote the standby after the leader crashed", func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			if err := a.m.Stop(ctx, true); err != nil {
				t.Fatal(err)
			}
			// As if b had been cloned with pg_basebackup -R from a
			// synchronous leader: the trap Promote must clear.
			if err := execAll(ctx, b.super(t, "postgres"), "inherit", `ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ("a")'`, "SELECT pg_reload_conf()"); err != nil {
				t.Fatal(err)
			}
			fork = maxRev(t, b)
			took, err := b.m.Promote(ctx)
			if err != nil {
				t.Fatal(err)
			}
			timings["pg_promote"] = took
			st := b.status(t)
			if st.InRecovery || st.Timeline != 2 || st.SyncStandbyNames != "" {
				t.Fatalf("after promote: %+v", st)
			}
			if auto := b.file(t, "postgresql.auto.conf"); strings.Contains(auto, "primary_conninfo") || strings.Contains(auto, `"a"`) {
				t.Fatalf("auto.conf after promote:\n%s", auto)
			}
			wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if _, err := put(wctx, b.kine(t), "/registry/after-promote", "no standby to wait for"); err != nil {
				t.Fatalf("write after promote: %v", err)
			}
			if d, err := b.m.Promote(ctx); err != nil || d != 0 {
				t.Fatalf("second Promote: %s, %v", d, err)
			}
			if err := b.m.RecordTerm(ctx, 2, "promote", "b", fork); err != nil {
				t.Fatal(err)
			}
			if err := b.m.EnsureSlot(ctx, "twonode_a"); err != nil {
				t.Fatal(err)
			}
		}},
		{"revision fence", func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			before := maxRev(t, b)
			f, err := b.m.RevisionFence(ctx, 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			if f < before+1000 || f > before+1000+40 { // the sequence may run ahead of max(id) by its cache
				t.Fatalf("fence %d, max revision was %d", f, before)
			}
			k := b.kine(t)
			var name string
			var deleted int
			if err := k.QueryRow(ctx, "SELECT name, deleted FROM kine WHERE id = $1", f).Scan(&name, &deleted); err != nil || name != fenceName || deleted != 1 {
				t.Fatalf("filler row: %q deleted=%d %v", name, deleted, err)
			}
			var compact int64
			if err := k.QueryRow(ctx, "SELECT prev_revision FROM kine WHERE name = 'compact_rev_key'").Scan(&compact); err != nil || compact != f {
				t.Fatalf("compact revision %d, want %d (%v)", compact, f, err)
			}
			var between int
			if err := k.QueryRow(ctx, "SELECT count(*) FROM kine WHERE id > $1 AND id < $2", before, f).Scan(&between); err != nil || between != 0 {
				t.Fatalf("%d rows inside the fence gap, %v", between, err)
			}
			if id := mustPut(t, k, "/registry/winner", "written after the fence"); id != f+1 {
				t.Fatalf("first revision after the fence %d, want %d", id, f+1)
			}
			// A second promotion fences again (Kine's unique index on
			// (name, prev_revision) must not refuse the second filler row).
			f2, err := b.m.RevisionFence(ctx, 1000, 0)
			if err != nil || f2 < f+1000 {
				t.Fatalf("second fence %d after %d: %v", f2, f, err)
			}
			if id := mustPut(t, k, "/registry/winner2", "written after the second fence"); id != f2+1 {
				t.Fatalf("first revision after the second fence %d, want %d", id, f2+1)
			}
			// Past a split's loser: a floor below this database's revisions
			// changes nothing; one above is passed by the margin.
			if f3, err := b.m.RevisionFence(ctx, 1000, f2); f3 != 0 || err != nil {
				t.Fatalf("fence past a lower floor: %d, %v", f3, err)
			}
			floor := f2 + 50_000
			f4, err := b.m.RevisionFence(ctx, 1000, floor)
			if err != nil || f4 != floor+1000 {
				t.Fatalf("fence past floor %d: %d, %v (want %d)", floor, f4, err, floor+1000)
			}
			if id := mustPut(t, k, "/registry/winner3", "written after the split's fence"); id != f4+1 {
				t.Fatalf("first revision after the split's fence %d, want %d", id, f4+1)
			}
		}},
		{"the last write skips rows written on a timer", func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			k := b.kine(t)
			id := mustPut(t, k, "/registry/configmaps/default/real", "a decision")
			var want time.Time
			if err := k.QueryRow(ctx, "SELECT pg_xact_commit_timestamp(xmin) FROM kine WHERE id = $1", id).Scan(&want); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond) // commit times differ visibly
			for _, key := range []string{"/registry/leases/kube-system/apiserver-x", "/registry/masterleases/10.0.0.1",
				"/registry/events/default/e1", "gap-99", "/registry/services/endpoints/default/kubernetes",
				"/registry/peerserverleases/apiserver-x"} {
				mustPut(t, k, key, "on a timer")
			}
			if _, err := b.m.RevisionFence(ctx, 10, 0); err != nil {
				t.Fatal(err)
			}
			got, key, err := b.m.LastWrite(ctx)
			if err != nil || !got.Equal(want) || key != "/registry/configmaps/default/real" {
				t.Fatalf("last write %v of %q (%v), want %v, the configmap's commit", got, key, err, want)
			}
			st, err := b.m.Status(ctx)
			if err != nil || !st.LastCommit.After(want) {
				t.Fatalf("last commit of any kind %v (%v) should be after the configmap's %v", st.LastCommit, err, want)
			}
		}},
		{"split brain: the loser archives exactly its divergent rows", func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			// b leads without a follower: it says where its oldest WAL begins.
			if st := b.status(t); st.OldestWAL == 0 || st.OldestWAL > st.CurrentLSN || st.OldestWAL%(16<<20) != 0 {
				t.Fatalf("oldest WAL of a leader without its follower: %#x (current %#x), want a segment start at or before the current LSN",
					st.OldestWAL, st.CurrentLSN)
			}
			// The crashed old leader comes back as a primary, isolated from b:
			// it accepts writes b never sees.
			if err := a.m.Start(ctx, false); err != nil {
				t.Fatal(err)
			}
			k := a.kine(t)
			for i := range 5 {
				splitIDs = append(splitIDs, mustPut(t, k, fmt.Sprintf("/split/k%d", i), fmt.Sprintf("only on a %d", i)))
			}
			// Same id as on b, different value: divergent too.
			if _, err := k.Exec(ctx, "UPDATE kine SET value = 'changed on a' WHERE id = 10"); err != nil {
				t.Fatal(err)
			}
			splitIDs = append(splitIDs, 10)
			// Never archived: Kine's bookkeeping rows.
			if _, err := k.Exec(ctx, `INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease)
				VALUES ('gap-123', 0, 1, 0, 0, 0)`); err != nil {
				t.Fatal(err)
			}
			if _, err := k.Exec(ctx, "UPDATE kine SET prev_revision = 42 WHERE name = 'compact_rev_key'"); err != nil {
				t.Fatal(err)
			}
			slices.Sort(splitIDs)
			var buf bytes.Buffer
			created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			n, err := a.m.Archive(ctx, fork, &buf, ArchiveHeader{Node: "a", Winner: "b", Term: 1, Created: created})
			if err != nil {
				t.Fatal(err)
			}
			h, rows, err := archive.Read(&buf) // the one reader of the format
			if err != nil {
				t.Fatal(err)
			}
			want := ArchiveHeader{Kind: "header", Node: "a", Winner: "b", Term: 1, ForkRev: fork, Count: len(splitIDs), Created: created}
			if h != want || n != len(splitIDs) {
				t.Fatalf("header %+v (n=%d), want %+v", h, n, want)
			}
			var got []int64
			for _, r := range rows {
				got = append(got, r.ID)
				if r.ID == 10 && string(r.Value) != "changed on a" {
					t.Fatalf("row 10 value %q", r.Value)
				}
				if r.ID != 10 && !strings.HasPrefix(string(r.Value), "only on a") {
					t.Fatalf("row %d value %q", r.ID, r.Value)
				}
			}
			if !slices.Equal(got, splitIDs) {
				t.Fatalf("archived ids %v, want %v", got, splitIDs)
			}
		}},
		{"rewind the crashed old leader into a standby of the new one", func(t *testing.T) {
			ctx := ctxT(t, 90*time.Second)
			// Told to quit at once, not waited for (a hand-over from a slow
			// disk): Rewind waits for it to be gone and recovers it first.
			if err := a.m.Crash(ctx); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := a.m.Rewind(ctx); err != nil {
				t.Fatal(err)
			}
			timings["rewind (incl. crash recovery)"] = time.Since(start)
			if !strings.Contains(a.file(t, "postgresql.auto.conf"), "host=127.0.0.2") {
				t.Fatal("rewound node does not point at b")
			}
			if err := a.m.Start(ctx, true); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 15*time.Second, "a streams from b", func() bool {
				sb, sa := b.status(t), a.status(t)
				return sb.Streaming && sa.ReceiverStreaming && maxRev(t, a) == maxRev(t, b)
			})
			if st := a.status(t); st.Timeline != 2 || !st.InRecovery {
				t.Fatalf("rewound standby: %+v", st)
			}
			var n int
			if err := a.super(t, "kine").QueryRow(ctx, "SELECT count(*) FROM kine WHERE name LIKE '/split/%' OR value = 'changed on a'").Scan(&n); err != nil || n != 0 {
				t.Fatalf("divergent rows survived the rewind: %d, %v", n, err)
			}
			// The terms table replicated.
			if err := a.super(t, "kine").QueryRow(ctx, "SELECT count(*) FROM twonode_terms").Scan(&n); err != nil || n != 2 {
				t.Fatalf("terms on the standby: %d, %v", n, err)
			}
		}},
		{"a primary start on a standby's data promotes it to a new timeline", func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			if err := b.m.Stop(ctx, false); err != nil {
				t.Fatal(err)
			}
			if err := a.m.Start(ctx, false); err == nil {
				t.Fatal("Start as primary of a running standby: no error")
			}
			if err := a.m.Stop(ctx, false); err != nil {
				t.Fatal(err)
			}
			if err := a.m.Start(ctx, false); err != nil {
				t.Fatal(err)
			}
			if st := a.status(t); st.InRecovery || st.Timeline != 3 {
				t.Fatalf("after a primary start of standby data: %+v", st)
			}
			mustPut(t, a.kine(t), "/registry/a-again", "writable")
		}},
		{"no password in any file but the passfiles", func(t *testing.T) {
			for _, pw := range []string{a.s.ReplPassword, a.s.KinePassword} {
				_ = filepath.WalkDir(testRoot, func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() || strings.HasSuffix(p, ".pgpass") || !d.Type().IsRegular() {
						return nil
					}
					if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(pw)) {
						t.Errorf("a password appears in %s", p)
					}
					return nil
				})
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.f) {
			return
		}
	}
}
