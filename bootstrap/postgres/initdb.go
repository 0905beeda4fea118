package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// InitDB creates a new cluster and leaves it running as a primary: roles,
// database kine (owned by kine) and table twonode_terms. It refuses when
// data exists: a restart never runs initdb over existing data.
//
// The cluster is built in a sibling directory and renamed into place once
// complete, so that a failure half-way (no roles yet) never leaves a
// DataDir that HasData reports and that a retry would refuse to repair.
func (m *Manager) InitDB(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.HasData() {
		return fmt.Errorf("postgres: initdb: refusing: %s already holds a cluster", m.s.DataDir)
	}
	if m.s.ReplPassword == "" || m.s.KinePassword == "" {
		return errors.New("postgres: initdb: the replication and kine passwords must be set")
	}
	tmp := &Manager{s: m.s, log: m.log}
	tmp.s.DataDir = m.s.DataDir + ".initdb"
	if err := tmp.stop(ctx, true); err != nil { // left running by a crashed attempt
		return err
	}
	if err := os.RemoveAll(tmp.s.DataDir); err != nil {
		return fmt.Errorf("postgres: initdb: remove an earlier attempt: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(m.s.DataDir), 0o755); err != nil {
		return fmt.Errorf("postgres: initdb: %w", err)
	}
	if err := tmp.ensureDir(tmp.s.DataDir); err != nil {
		return err
	}
	out, err := tmp.run(ctx, nil, "initdb", "-D", tmp.s.DataDir, "--data-checksums", "-U", superUser,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions")
	if err != nil {
		return toolErr("initdb", err, out)
	}
	if err := tmp.startIsolated(ctx, false); err != nil {
		return err
	}
	if err := tmp.createObjects(ctx); err != nil {
		_ = tmp.stop(ctx, true)
		return err
	}
	if err := tmp.stop(ctx, false); err != nil {
		return err
	}
	if err := os.Remove(m.s.DataDir); err != nil && !os.IsNotExist(err) {
		// Only an empty directory is removed: anything else is not ours.
		return fmt.Errorf("postgres: initdb: %s exists and is not empty: %w", m.s.DataDir, err)
	}
	if err := os.Rename(tmp.s.DataDir, m.s.DataDir); err != nil {
		return fmt.Errorf("postgres: initdb: move the new cluster into place: %w", err)
	}
	syncDir(filepath.Dir(m.s.DataDir))
	m.log.Info("new cluster created", "data_dir", m.s.DataDir)
	if err := m.preparePrimary(false); err != nil {
		return err
	}
	return m.pgctlStart(ctx)
}

// createObjects creates the contract's roles, database and table. Passwords
// are sent as SCRAM verifiers: the plain text never reaches the server, so
// not even a failed statement in the server log can show it.
func (m *Manager) createObjects(ctx context.Context) error {
	replV, err := scramVerifier(m.s.ReplPassword)
	if err != nil {
		return err
	}
	kineV, err := scramVerifier(m.s.KinePassword)
	if err != nil {
		return err
	}
	c, err := m.local(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("postgres: initdb: %w", err)
	}
	defer m.release(c)
	if err := execAll(ctx, c, "initdb: create roles and database",
		"CREATE ROLE "+replUser+" WITH LOGIN REPLICATION PASSWORD "+sqlLiteral(replV),
		// What pg_rewind reads on its source, without superuser rights.
		// pg_rewind reads the source's timeline from its control file, which a
		// just-promoted server updates only at its end-of-recovery checkpoint:
		// the rejoining node asks for that checkpoint first (Rewind).
		"GRANT pg_checkpoint TO "+replUser,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO "+replUser,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO "+replUser,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO "+replUser,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO "+replUser,
		"CREATE ROLE "+kineUser+" WITH LOGIN PASSWORD "+sqlLiteral(kineV),
		"CREATE DATABASE "+kineDB+" OWNER "+kineUser,
	); err != nil {
		return err
	}
	k, err := m.local(ctx, kineDB)
	if err != nil {
		return fmt.Errorf("postgres: initdb: %w", err)
	}
	defer m.release(k)
	return execAll(ctx, k, "initdb: create twonode_terms", termsDDL)
}

// scramVerifier is what PostgreSQL stores for a SCRAM-SHA-256 password
// (RFC 5802/7677; it stores a verifier it is given as it is).
func scramVerifier(password string) (string, error) {
	const iterations = 4096
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("postgres: scram salt: %w", err)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("postgres: scram: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}

// syncDir makes a rename durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
