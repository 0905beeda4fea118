// Package fleet simulates a fleet of pairs sharing one witness (issue 11):
// many pairs' witness clients, the real bootstrap/witness code, against a
// real etcd cluster started on this machine, with TLS and client
// certificates as in production. The pairs are simulated: no PostgreSQL,
// Kine or agent, only the calls the agent makes to the witness, when it
// makes them.
//
// It measures what a healthy fleet costs the witness (reads only: a
// healthy pair must write nothing) and how fast and how correctly the
// witness decides when many pairs lose their link at the same moment (one
// winner per pair, the loser told so). `make fleet` runs the full sizes
// (scripts/fleet.sh); `go test ./e2e/fleet` a short variant that the test
// suite runs.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/witness"
	"github.com/twonode-edge/twonode/bootstrap/witness/witnesstest"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// Witness is an etcd cluster on loopback, started as the witness tests
// start theirs (witnesstest's binary, certificates and arguments), and the
// settings every simulated node reaches it with (one client certificate
// for all: etcd's cost of a TLS client does not depend on its name).
type Witness struct {
	Dir     string
	Members []witnesstest.Member
	Config  config.Witness // Prefix left empty: each pair has its own
	procs   []*harness.Proc
	metrics []string // each member's plain-HTTP /metrics URL
}

// StartWitness starts a cluster of n members under dir and waits until it
// answers. A missing etcd binary is an error, not a reason to skip.
func StartWitness(dir string, n int) (w *Witness, err error) {
	bin, err := witnesstest.Binary()
	if err != nil {
		return nil, err
	}
	pki, err := witnesstest.NewPKI(dir)
	if err != nil {
		return nil, err
	}
	w = &Witness{Dir: dir}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	metricsPorts := make([]int, n)
	for i := range n {
		cp, err1 := witnesstest.FreePort()
		pp, err2 := witnesstest.FreePort()
		mp, err3 := witnesstest.FreePort()
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, err
		}
		w.Members = append(w.Members, witnesstest.Member{Name: fmt.Sprintf("w%d", i+1), IP: net.IPv4(127, 0, 0, 1), ClientPort: cp, PeerPort: pp})
		metricsPorts[i] = mp
	}
	var eps []string
	for i, m := range w.Members {
		args, err := pki.Args(m, w.Members, dir)
		if err != nil {
			return nil, err
		}
		// Metrics on a plain-HTTP listener of their own, as a fleet's
		// Prometheus would scrape them: the client port asks for a client
		// certificate.
		mu := fmt.Sprintf("http://127.0.0.1:%d", metricsPorts[i])
		args = append(args, "--listen-metrics-urls", mu)
		p, err := harness.Start(harness.Spec{Name: "etcd-" + m.Name, LogPath: filepath.Join(dir, m.Name+".log"), Argv: append([]string{bin}, args...)})
		if err != nil {
			return nil, err
		}
		w.procs = append(w.procs, p)
		w.metrics = append(w.metrics, mu+"/metrics")
		eps = append(eps, m.ClientURL())
	}
	cert, key, err := pki.Issue("fleet-node", net.IPv4(127, 0, 0, 1))
	if err != nil {
		return nil, err
	}
	w.Config = config.Default().Witness
	w.Config.Endpoints, w.Config.CAFile, w.Config.CertFile, w.Config.KeyFile = strings.Join(eps, ","), pki.CAFile, cert, key
	if err := w.waitReady(30 * time.Second); err != nil {
		// The members' own words, or a failure here says nothing of why.
		return w, fmt.Errorf("%w\n%s", err, w.Logs())
	}
	return w, nil
}

// waitReady waits until a read through every member answers: the cluster
// has a leader and each member its certificates loaded.
func (w *Witness) waitReady(d time.Duration) error {
	end := time.Now().Add(d)
	for _, m := range w.Members {
		one := w.Config
		one.Endpoints = m.ClientURL()
		cli, err := witness.Connect(one)
		if err != nil {
			return err
		}
		c := witness.NewWithClient(cli, "/fleet/ready/", "a", "b", one.RequestTimeout, one.LeaseTTL)
		for {
			_, err = c.Read(context.Background())
			if err == nil || time.Now().After(end) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		_ = cli.Close()
		if err != nil {
			return fmt.Errorf("fleet: etcd member %s did not answer within %v: %w", m.Name, d, err)
		}
	}
	return nil
}

// Scrape reads every member's /metrics: the named series, summed over
// their labels, one map per member in Members' order.
func (w *Witness) Scrape(ctx context.Context, names ...string) ([]map[string]float64, error) {
	out := make([]map[string]float64, len(w.metrics))
	for i, u := range w.metrics {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fleet: metrics of %s: %w", w.Members[i].Name, err)
		}
		out[i], err = parseMetrics(resp.Body, names...)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("fleet: metrics of %s: %w", w.Members[i].Name, err)
		}
	}
	return out, nil
}

// Logs is the end of each member's log, for a failed test to show.
func (w *Witness) Logs() string {
	var b strings.Builder
	for _, m := range w.Members {
		data, _ := os.ReadFile(filepath.Join(w.Dir, m.Name+".log"))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fmt.Fprintf(&b, "--- etcd %s (last lines)\n%s\n", m.Name, strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
	return b.String()
}

// Close kills the members.
func (w *Witness) Close() {
	for _, p := range w.procs {
		_ = p.Kill()
	}
}
