// Package kine runs Kine, the etcd shim, as a process of its own, so that
// an agent crash never stops the datastore: the agent only decides which
// PostgreSQL Kine writes to ("re-pointing" = restarting it with another
// endpoint). Two supervisors: a detached process with a pid file (the lab
// and tests) and a systemd unit (the appliance).
package kine

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Runner is what the agent needs of Kine.
type Runner interface {
	// Point makes Kine write to the PostgreSQL at host; a no-op when it
	// already does and is alive.
	Point(ctx context.Context, host string) error
	// Stop stops Kine: no client writes through this node.
	Stop(ctx context.Context) error
	// Kill stops Kine at once (SIGKILL), without StopGrace.
	Kill(ctx context.Context) error
	// Ensure restarts Kine if it died while it should run.
	Ensure(ctx context.Context) error
	// Target is the host Kine writes to, "" when stopped.
	Target() string
}

// StopGrace is how long Kine may take to exit after SIGTERM before it is
// killed. Kine holds no state: a write it carries is decided by PostgreSQL
// whether Kine answers or not. Its graceful stop waits for the API
// server's watch streams to end (measured: 2.6 s), and every promotion and
// hand-over stops it first: that wait was 2.6 s more of refused writes.
// The appliance's unit says the same (TimeoutStopSec).
const StopGrace = 300 * time.Millisecond

// Settings describe the Kine this node runs.
type Settings struct {
	Binary   string // kine executable
	Listen   string // loopback host:port (validated by config)
	Port     int    // PostgreSQL port on the target host
	Password string // the kine role's password (derived from the cluster secret)
	CAFile   string // the pair's CA certificate, which the server's must be signed by
	RunDir   string // pid file, passfile, env file, log
	// CompactMinRetain is how many of the newest revisions compaction keeps.
	CompactMinRetain int
}

// Endpoint is the DSN Kine gets through its environment (never argv). It
// holds no password: that is in the 0600 passfile named by PGPASSFILE.
// TLS with the server's certificate checked against the pair's CA (named by
// PGSSLROOTCERT, which pgx reads) and SCRAM bound to the channel: the rows
// Kine carries are every Secret of the cluster.
// target_session_attrs=read-write makes pgx refuse a standby: a Kine whose
// database turned read-only would otherwise acknowledge writes it never
// stored (measured with kine v0.17.5).
//
// connect_timeout is long on purpose. PostgreSQL's postmaster accepts and
// forks connections one at a time; on a busy machine (a Kine re-pointed at
// the new leader while its API server relists everything) a start-up took
// about 3 s. With 2 s every attempt was abandoned before its answer, Kine
// retried at once, and the postmaster spent itself on connections nobody
// waited for: 66 in its accept queue and no connection of the old leader's
// Kine succeeded for 28 s, long enough for the controller manager to lose
// its lease. A partitioned leader is not waited for: the agent re-points or
// stops Kine when the peer is gone, which ends every attempt.
func Endpoint(host string, port int) string {
	u := url.URL{Scheme: "postgres", User: url.User("kine"), Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: "/kine"}
	u.RawQuery = "sslmode=verify-full&channel_binding=require&target_session_attrs=read-write&connect_timeout=" + strconv.Itoa(connectTimeout)
	return u.String()
}

const (
	// connectTimeout is pgx's connect_timeout, in seconds (see Endpoint).
	connectTimeout = 10
	// maxOpen bounds Kine's connections to PostgreSQL (its default is no
	// bound): a burst of requests then waits for a pooled connection
	// instead of opening dozens at once, which is what filled the
	// postmaster's queue. Two Kines at this bound, the agents and the
	// walsender stay well under max_connections (100).
	maxOpen = 16
)

// env is Kine's whole configuration.
func (s Settings) env(host string) []string {
	return []string{
		"KINE_LISTEN_ADDRESS=" + s.Listen,
		"KINE_ENDPOINT=" + Endpoint(host, s.Port),
		"KINE_METRICS_BIND_ADDRESS=0",
		"KINE_COMPACT_MIN_RETAIN=" + strconv.Itoa(s.CompactMinRetain),
		"KINE_DATASTORE_MAX_OPEN_CONNECTIONS=" + strconv.Itoa(maxOpen),
		"PGPASSFILE=" + s.passfile(),
		"PGSSLROOTCERT=" + s.caCopy(),
	}
}

func (s Settings) passfile() string { return filepath.Join(s.RunDir, "kine.pgpass") }

// caCopy is where Kine reads the CA certificate: a copy in the run
// directory, beside the passfile, which the appliance's unit hands to
// Kine's own user the same way (LoadCredential).
func (s Settings) caCopy() string { return filepath.Join(s.RunDir, "kine-ca.crt") }

// writeFiles writes the passfile for any host and the CA's copy, mode 0600.
func (s Settings) writeFiles() error {
	if err := os.MkdirAll(s.RunDir, 0o700); err != nil {
		return fmt.Errorf("kine: run dir: %w", err)
	}
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		return fmt.Errorf("kine: the pair's CA certificate: %w", err)
	}
	if err := writeAtomic(s.caCopy(), ca); err != nil {
		return err
	}
	line := fmt.Sprintf("*:%d:*:kine:%s\n", s.Port, pgpassEscape(s.Password))
	return writeAtomic(s.passfile(), []byte(line))
}

// writeAtomic replaces path with b, mode 0600.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("kine: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("kine: %w", err)
	}
	return nil
}

func pgpassEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == ':' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
