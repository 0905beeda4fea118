package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/twonode-edge/twonode/bootstrap/agent"
	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/httpserver"
	"github.com/twonode-edge/twonode/bootstrap/kine"
	"github.com/twonode-edge/twonode/bootstrap/localapi"
	"github.com/twonode-edge/twonode/bootstrap/peer"
	"github.com/twonode-edge/twonode/bootstrap/pki"
	"github.com/twonode-edge/twonode/bootstrap/postgres"
	"github.com/twonode-edge/twonode/bootstrap/vip"
	"github.com/twonode-edge/twonode/bootstrap/watchdog"
	"github.com/twonode-edge/twonode/bootstrap/witness"
)

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run the daemon on this node (config file plus flags; every flag has a TWONODE_ environment twin)",
		Flags: config.Flags(),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := config.FromCLI(c)
			if err != nil {
				// An invalid config changes nothing: we have not touched the node yet.
				return cli.Exit("invalid configuration, nothing was changed:\n"+err.Error(), 2)
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runAgent(ctx, cfg)
		},
	}
}

func newLogger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// runAgent wires the real actors and serves the two APIs and the metrics.
func runAgent(ctx context.Context, cfg *config.Config) error {
	log := newLogger(cfg).With("node", cfg.Node.Name)
	secret, err := cfg.ReadSecret()
	if err != nil {
		return cli.Exit("invalid configuration, nothing was changed:\n"+err.Error(), 2)
	}
	replPW, kinePW := postgres.DerivePasswords(secret)
	pgTestEnv, err := postgres.FaketimeEnv(cfg.ClockOffset)
	if err != nil {
		return cli.Exit("invalid configuration, nothing was changed:\n"+err.Error(), 2)
	}
	if v := os.Getenv(postgres.SlowSyncEnv); v != "" {
		if pgTestEnv, err = postgres.WithSlowSync(pgTestEnv, v); err != nil {
			return cli.Exit(err.Error(), 2)
		}
		log.Warn("FOR FAULT TESTS ONLY: PostgreSQL's fsyncs are delayed as a control file says", "env", postgres.SlowSyncEnv)
	}
	fault, err := agent.ParseFault(os.Getenv(agent.FaultEnv))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if fault != (agent.Fault{}) {
		log.Warn("FOR FAULT TESTS ONLY: the agent will die inside a transition", "fault", os.Getenv(agent.FaultEnv))
	}
	if cfg.ClockOffset != 0 {
		log.Warn("FOR FAULT TESTS ONLY: the agent's and PostgreSQL's wall clocks are moved", "offset", cfg.ClockOffset)
	}
	if err := os.MkdirAll(cfg.RunDir, 0o755); err != nil {
		return err
	}
	pairTLS, ca, err := ensureTLS(cfg, secret, agentClock(cfg)(), log)
	if err != nil {
		return err
	}
	db := postgres.New(postgres.Settings{
		BinDir: cfg.Postgres.BinDir, DataDir: cfg.DataDir + "/pgdata", SocketDir: cfg.RunDir + "/pg",
		LogFile: cfg.DataDir + "/postgresql.log", Port: cfg.Postgres.Port, ListenAddress: cfg.Node.Address,
		OSUser: cfg.Postgres.OSUser, NodeName: cfg.Node.Name, PeerName: cfg.Peer.Name, PeerAddress: cfg.Peer.Address,
		ReplPassword: replPW, KinePassword: kinePW, SharedBuffers: cfg.Postgres.SharedBuffers,
		WalSenderTimeout: cfg.DetectionWindow(), WalReceiverTimeout: cfg.DetectionWindow(),
		TLS: pairTLS, TestEnv: pgTestEnv,
	}, log.With("actor", "postgres"))
	var pg agent.Database = db
	if cfg.Postgres.Supervisor == "systemd" {
		pg = postgres.NewSystemd(db, postgres.SystemdUnit, cfg.RunDir+"/postgres.env")
	}
	ks := kine.Settings{Binary: cfg.Kine.Binary, Listen: cfg.Kine.Listen, Port: cfg.Postgres.Port, Password: kinePW, RunDir: cfg.RunDir, CAFile: pairTLS.CAFile(),
		CompactMinRetain: cfg.Kine.CompactMinRetain}
	var kr kine.Runner
	if cfg.Kine.Supervisor == "systemd" {
		kr = kine.NewSystemd(ks, cfg.Kine.Unit, log.With("actor", "kine"))
	} else {
		kr = kine.NewProcess(ks, log.With("actor", "kine"))
	}
	peerURL := "https://" + net.JoinHostPort(cfg.Peer.Address, strconv.Itoa(cfg.API.PeerPort))
	now := agentClock(cfg)
	names := peer.Names{Self: cfg.Node.Name, Peer: cfg.Peer.Name}
	pc := peer.NewClient(peerURL, secret, cfg.Timers.ProbeTimeout, names)
	pc.UseTLS(ca.ClientConfig())
	pc.Now = now // offsets are measured on the clock the agent reports
	var wc agent.WitnessClient
	var wd agent.Watchdog
	if cfg.Witness.On() {
		w, err := witness.New(cfg.Witness, cfg.Node.Name, cfg.Peer.Name)
		if err != nil {
			return cli.Exit("invalid configuration, nothing was changed:\n"+err.Error(), 2)
		}
		defer w.Close()
		w.SetClock(now) // leases are timed on the clock the agent checks them with
		wc = w
		log.Info("the witness decides with the pair", "endpoints", cfg.Witness.Endpoints, "prefix", cfg.Witness.Prefix,
			"unreachable", cfg.Witness.Unreachable)
		if cfg.Witness.Watchdog == "" {
			log.Warn("no watchdog: an agent that hangs while this node leads alone cannot stop its Kine before the witness's lease expires")
		} else {
			wd = watchdog.New(cfg.Witness.Watchdog, cfg.Witness.WatchdogTimeout, log.With("actor", "watchdog"))
		}
	}
	var addr agent.Address
	if cfg.VIP.On() {
		v, err := newVIP(cfg, log.With("actor", "vip"))
		if err != nil {
			return cli.Exit("invalid configuration, nothing was changed:\n"+err.Error(), 2)
		}
		defer v.Close()
		addr = v
	}
	pinger := &postgres.Pinger{Host: cfg.Peer.Address, Port: cfg.Postgres.Port, Password: kinePW, CAFile: pairTLS.CAFile()}
	defer pinger.Close()
	a, err := agent.New(cfg, log, agent.Deps{
		Secret:        secret,
		Now:           now,
		DB:            pg,
		Kine:          kr,
		Peer:          pc,
		PingPeer:      pinger.Ping,
		PeerLastWrite: db.PeerLastWrite,
		Fault:         fault,
		Witness:       wc,
		Watchdog:      wd,
		VIP:           addr,
		ProbeCommit:   db.ProbeCommit,
	})
	if err != nil {
		return err
	}
	ph, lh := a.Handlers()

	peerLn, err := net.Listen("tcp", net.JoinHostPort(cfg.Node.Address, strconv.Itoa(cfg.API.PeerPort)))
	if err != nil {
		return fmt.Errorf("peer API: %w", err)
	}
	// The port is on the node network: the hardened server (header size,
	// read, idle and write limits), a connection cap per source and in all,
	// and challenges kept apart for the peer, so that nothing else on the
	// LAN can crowd it out.
	peerAddr := netip.MustParseAddr(cfg.Peer.Address)
	peerLog := log.With("actor", "peer-api")
	peerSrv := peer.NewHTTPServer(peer.NewServer(secret, names, ph, peerLog, peerAddr), peerLog)
	certs, err := pki.NewReloader(pairTLS)
	if err != nil {
		return fmt.Errorf("peer API: %w", err)
	}
	// TLS inside the connection limits: a connection over a limit is
	// closed before it costs a handshake.
	limited := peer.LimitPerSource(peerLn, peer.MaxConnsPerSource, peer.MaxConns, peerAddr)
	go httpserver.Serve(log, "peer API", peerSrv, tls.NewListener(limited, certs.ServerConfig()))
	go renewTLS(ctx, pairTLS, ca, tlsNode(cfg), now, db, log)

	localLn, err := localapi.Listen(cfg.API.Socket)
	if err != nil {
		return fmt.Errorf("local API: %w", err)
	}
	localSrv := localapi.NewHTTPServer(localapi.NewServer(lh, log.With("actor", "local-api")))
	go httpserver.Serve(log, "local API", localSrv, localLn)

	if cfg.API.Metrics != "" {
		msrv, err := a.ServeMetrics(cfg.API.Metrics)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer msrv.Close()
	}
	stopNotify := systemdNotify(ctx, log, a.Alive)
	defer stopNotify()

	err = a.Run(ctx)
	shut, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = peerSrv.Shutdown(shut)
	_ = localSrv.Shutdown(shut)
	return err
}

// newVIP checks the pair's address against this machine's interfaces
// (config.Validate checked the rest) and prepares it; nothing changes yet.
func newVIP(cfg *config.Config, log *slog.Logger) (*vip.VIP, error) {
	c := vip.Config{Address: netip.MustParsePrefix(cfg.VIP.Address), Interface: cfg.VIP.Interface, Lifetime: cfg.AddressLifetime()}
	self, peerAddr := netip.MustParseAddr(cfg.Node.Address), netip.MustParseAddr(cfg.Peer.Address)
	if err := c.Validate(self, peerAddr); err != nil {
		return nil, err
	}
	return vip.New(c, self, log)
}
