package agent

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/httpserver"
)

// metrics are the agent's Prometheus series, on their own registry so that
// only twonode's series (and the Go runtime's) are exported.
type metrics struct {
	reg               *prometheus.Registry
	state             *prometheus.GaugeVec
	term              prometheus.Gauge
	peerReachable     prometheus.Gauge
	peerProbes        prometheus.Counter
	peerProbeFailures prometheus.Counter
	sync              prometheus.Gauge
	lagBytes          prometheus.Gauge
	commitSeconds     prometheus.Gauge
	peerFlushSeconds  prometheus.Gauge
	slow              *prometheus.GaugeVec
	paused            prometheus.Gauge
	lastFailover      prometheus.Gauge
	promoteSeconds    prometheus.Gauge
	failoverPhase     *prometheus.GaugeVec
	archivedRows      prometheus.Counter
	transitions       *prometheus.CounterVec
	failedTransitions prometheus.Counter
	waiting           *prometheus.GaugeVec
	witnessReachable  prometheus.Gauge
	witnessLease      prometheus.Gauge
	witnessOnce       sync.Once
	addrHeld          prometheus.Gauge
	addrFailing       prometheus.Gauge
	addrOnce          sync.Once
}

func newMetrics() *metrics {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "twonode", Name: name, Help: help})
	}
	m := &metrics{
		reg:               prometheus.NewRegistry(),
		state:             prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "twonode", Name: "state", Help: "1 for the agent's current state."}, []string{"state"}),
		term:              g("term", "Current term: bumped at every change of who writes."),
		peerReachable:     g("peer_reachable", "1 when the peer's agent answered the last probe."),
		peerProbes:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: "twonode", Name: "peer_probes_total", Help: "Ticks that probed the peer's agent."}),
		peerProbeFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "twonode", Name: "peer_probe_failures_total", Help: "Ticks whose probe of the peer's agent got no believable answer."}),
		sync:              g("replication_synchronous", "1 when replication to the follower is synchronous."),
		lagBytes:          g("replication_lag_bytes", "Leader: WAL bytes the follower has not flushed yet (-1 when not streaming)."),
		commitSeconds:     g("commit_seconds", "Leader: the last tiny commit's time on this node's disk, or the one in flight's age if longer (0 on a follower)."),
		peerFlushSeconds:  g("peer_flush_lag_seconds", "Leader: from flushing recent WAL here to the follower's report that it flushed it (0 when idle or unknown)."),
		slow: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "twonode", Name: "disk_slow",
			Help: "1 while a disk is judged slow (timers.slow_commit for timers.slow_for): disk=local, this node's (a leader's commits; a follower's flushes, as its leader judges them); disk=follower, the follower's flushes (on the leader)."}, []string{"disk"}),
		paused:         g("paused", "1 while probing and promotion are paused."),
		lastFailover:   g("last_failover_seconds", "Last promotion: first failed probe to serving writes."),
		promoteSeconds: g("last_pg_promote_seconds", "Duration of the last pg_promote."),
		failoverPhase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "twonode", Name: "last_failover_phase_seconds",
			Help: "Last promotion: when each phase ended, in seconds after the last probe the peer answered (the log's \"failover timeline\")."}, []string{"phase"}),
		archivedRows:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: "twonode", Name: "archived_rows_total", Help: "Rows saved to split-brain archives by this node."}),
		transitions:       prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "twonode", Name: "transitions_total", Help: "State transitions."}, []string{"from", "to"}),
		failedTransitions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "twonode", Name: "failed_transitions_total", Help: "Transitions whose actions failed (retried)."}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "twonode", Name: "waiting",
			Help: "1 while a take-over or going alone waits: for an operator (failover: manual) or for the witness."}, []string{"for"}),
		witnessReachable: g("witness_reachable", "1 when the witness answered (absent: no witness configured)."),
		witnessLease:     g("witness_lease", "1 while this node holds the witness's lease to lead alone."),
		addrHeld:         g("address_held", "1 while this node's decisions put the pair's address here (absent: no vip configured)."),
		addrFailing:      g("address_failing", "1 while the pair's address cannot be taken or given up as decided (see the log)."),
	}
	m.reg.MustRegister(m.state, m.term, m.peerReachable, m.peerProbes, m.peerProbeFailures, m.sync, m.lagBytes, m.commitSeconds, m.peerFlushSeconds, m.slow, m.paused, m.lastFailover,
		m.promoteSeconds, m.failoverPhase, m.archivedRows, m.transitions, m.failedTransitions, m.waiting, prometheus.NewGoCollector())
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *metrics) update(a *Agent, obs observed) {
	mach, _, st := a.snapshot()
	for _, s := range fsm.States {
		m.state.WithLabelValues(string(s)).Set(b2f(mach.State == s))
	}
	m.term.Set(float64(st.Term))
	m.peerReachable.Set(b2f(obs.o.Peer.AgentUp))
	m.peerProbes.Inc()
	if !obs.o.Peer.AgentUp {
		m.peerProbeFailures.Inc()
	}
	m.sync.Set(b2f(mach.State == fsm.Leader))
	m.lagBytes.Set(float64(obs.pg.PeerFlushLagBytes))
	m.commitSeconds.Set(a.commitLatency(obs.pg).Seconds())
	m.peerFlushSeconds.Set(obs.pg.PeerFlushLag.Seconds())
	m.slow.WithLabelValues("local").Set(b2f(obs.o.Self.CommitSlow || obs.o.Peer.AgentUp && obs.peer.FollowerSlow))
	m.slow.WithLabelValues("follower").Set(b2f(obs.o.Self.FollowerSlow))
	m.paused.Set(b2f(obs.o.Now.Before(obs.o.Self.PausedUntil)))
	a.mu.Lock()
	m.lastFailover.Set(a.failover.Seconds())
	waitsFor := a.waitsFor
	a.mu.Unlock()
	for _, k := range []fsm.WaitKind{fsm.WaitOperator, fsm.WaitWitness} {
		m.waiting.WithLabelValues(string(k)).Set(b2f(waitsFor == k))
	}
	if w := obs.o.Witness; w.On {
		m.witnessOnce.Do(func() { m.reg.MustRegister(m.witnessReachable, m.witnessLease) })
		m.witnessReachable.Set(b2f(w.Reachable))
		m.witnessLease.Set(b2f(w.Lease))
	}
	if a.d.VIP != nil {
		m.addrOnce.Do(func() { m.reg.MustRegister(m.addrHeld, m.addrFailing) })
		a.mu.Lock()
		want, failing := a.addrWant, a.addrErr != ""
		a.mu.Unlock()
		m.addrHeld.Set(b2f(want && !failing))
		m.addrFailing.Set(b2f(failing))
	}
}

// ServeMetrics serves /metrics on addr until the listener closes.
func (a *Agent) ServeMetrics(addr string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.met.reg, promhttp.HandlerOpts{}))
	srv := httpserver.New(mux, 10*time.Second, nil)
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
