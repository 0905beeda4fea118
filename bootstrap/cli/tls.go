package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/pki"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
)

// agentClock is the wall clock the agent reports and checks with: the
// machine's, moved by the configured offset (fault tests only).
func agentClock(cfg *config.Config) func() time.Time {
	off := cfg.ClockOffset
	return func() time.Time { return time.Now().Add(off) }
}

// tlsFiles is where this node keeps its TLS material: beside PostgreSQL's
// data directory, never in it (a base backup would carry the key across).
func tlsFiles(cfg *config.Config) (pki.Files, error) {
	f := pki.Files{Dir: filepath.Join(cfg.DataDir, "tls")}
	u, err := user.Lookup(cfg.Postgres.OSUser)
	if err != nil {
		return f, fmt.Errorf("TLS: the PostgreSQL OS user, who must own the key: %w", err)
	}
	f.UID, _ = strconv.Atoi(u.Uid)
	f.GID, _ = strconv.Atoi(u.Gid)
	return f, nil
}

func tlsNode(cfg *config.Config) pki.Node {
	return pki.Node{Name: cfg.Node.Name, Address: net.ParseIP(cfg.Node.Address)}
}

// ensureTLS derives the pair's CA and makes this node's certificate right
// (issued at the first start, renewed near its end, reissued when the
// secret or the address changed) before anything serves.
func ensureTLS(cfg *config.Config, secret []byte, now time.Time, log *slog.Logger) (pki.Files, *pki.CA, error) {
	f, err := tlsFiles(cfg)
	if err != nil {
		return f, nil, err
	}
	ca, err := pki.DeriveCA(secret)
	if err != nil {
		return f, nil, err
	}
	r, err := f.Ensure(ca, tlsNode(cfg), now)
	if err != nil {
		return f, nil, err
	}
	logRenewal(log, r, ca)
	return f, ca, nil
}

func logRenewal(log *slog.Logger, r pki.Renewal, ca *pki.CA) {
	if r.Issued {
		log.Info("TLS: issued this node's certificate", "why", r.Why, "valid_until", r.NotAfter.Format(time.DateOnly), "ca", ca.Cert.Subject.CommonName)
	} else {
		log.Debug("TLS: this node's certificate is kept", "valid_until", r.NotAfter.Format(time.DateOnly))
	}
}

// renewEvery is how often a running agent looks at its certificate: it is
// renewed months before its end, so a day is plenty.
const renewEvery = 24 * time.Hour

// renewTLS renews this node's certificate while the agent runs (a pair may
// run for years without a restart). The peer API serves the new one at the
// next handshake; PostgreSQL is told to reload. Kine and the tools trust
// the CA, which does not change, so nothing else restarts.
func renewTLS(ctx context.Context, f pki.Files, ca *pki.CA, node pki.Node, now func() time.Time, db *postgres.Manager, log *slog.Logger) {
	t := time.NewTicker(renewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r, err := f.Ensure(ca, node, now())
		if err != nil {
			log.Error("TLS: could not renew this node's certificate", "err", err)
			continue
		}
		logRenewal(log, r, ca)
		if !r.Issued {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := db.Reload(rctx); err != nil {
			log.Warn("TLS: PostgreSQL did not reload its certificate", "err", err)
		}
		cancel()
	}
}
