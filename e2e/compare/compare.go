// Package compare measures the datastore against etcd (issue 14, item 3):
// one kube-apiserver binary with the same flags writing and reading
// through (a) a twonode pair, synchronous as it runs, (b) the same pair
// with its replication switched to asynchronous, and (c) a three-member
// etcd cluster of the release go.mod pins, all in network namespaces on
// this machine, under a client-go load of ConfigMap creates, updates and
// lists at 1, 8 and 32 concurrent clients. It prints p50/p99 latency and
// throughput of each cell, and their ratios to etcd's, as RESULT lines
// (table "datastore-vs-etcd"), and draws them.
//
// The cells of one operation and client count run back to back, the
// three backends in an order that rotates from cell to cell, so that the
// rest of a shared machine's load falls on all three alike; what the
// ratios say is more robust than the absolute times.
package compare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twonode-edge/twonode/e2e/apiserver"
	"github.com/twonode-edge/twonode/e2e/harness"
)

// Options of a run; zero fields take the defaults.
type Options struct {
	Dir         string        // everything the run writes (default /var/tmp/twonode-compare), removed at the end unless it failed
	Window      time.Duration // measured time per cell (default 8 s)
	Warmup      time.Duration // unmeasured time before it (default 1 s)
	Clients     []int         // concurrent clients (default 1, 8, 32)
	ListObjects int           // ConfigMaps in the listed namespace (default 100)
	ValueSize   int           // bytes of each ConfigMap's value (default 256)
	SVG         string        // where to draw the picture ("" = nowhere)
}

func (o Options) withDefaults() Options {
	if o.Dir == "" {
		o.Dir = "/var/tmp/twonode-compare"
	}
	if o.Window == 0 {
		o.Window = 8 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if len(o.Clients) == 0 {
		o.Clients = []int{1, 8, 32}
	}
	if o.ListObjects == 0 {
		o.ListObjects = 100
	}
	if o.ValueSize == 0 {
		o.ValueSize = 256
	}
	return o
}

// AsyncMethod says how the pair runs asynchronously: it has no setting
// for it (the agent makes a healthy pair synchronous and only a leader
// alone asynchronous), so the run holds the agents still and does on the
// leader what the agent's SetSync does.
const AsyncMethod = "twonode pause on both agents, then on the leader ALTER SYSTEM SET synchronous_standby_names = '' " +
	"and pg_reload_conf(), checked with SHOW and pg_stat_replication (b streaming, sync_state async) before and after each cell; " +
	"the agent's own value is put back the same way for each synchronous cell"

// Run sets up the three backends, measures every cell and prints the
// table to out.
func Run(ctx context.Context, o Options, out io.Writer) (err error) {
	o = o.withDefaults()
	b, err := findBinaries()
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("compare needs root: network namespaces, PostgreSQL as user postgres")
	}
	if err := Down(o.Dir); err != nil {
		return err
	}
	// Traversable by the postgres user (the pair's data is under it).
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(out, "kube-apiserver: %s; etcd: %s; kine: %s\n", version(b.apiserver), version(b.etcd), version(b.kine))
	fmt.Fprintf(out, "cells: %s warm-up + %s measured; clients %v; %d listed objects; values of %d bytes; protobuf\n",
		o.Warmup, o.Window, o.Clients, o.ListObjects, o.ValueSize)

	start := time.Now()
	es, err := startEtcd(o, b)
	var p *pair
	defer func() {
		// Everything stops; the files stay after a failure (its logs say why).
		var errs []error
		if p != nil {
			errs = append(errs, p.close(err == nil))
		}
		if es != nil {
			errs = append(errs, es.close())
		}
		if err != nil {
			fmt.Fprintf(out, "keeping %s for inspection (logs: pair/{a,b}/agent.log, pair/a/kube-apiserver, etcd/)\n", o.Dir)
			return
		}
		if cerr := errors.Join(append(errs, os.RemoveAll(o.Dir))...); cerr != nil {
			err = cerr
		}
	}()
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if p, err = startPair(ctx, o, b); err != nil {
		return fmt.Errorf("the pair: %w", err)
	}
	for name, s := range map[string]*apiserver.Server{"pair": p.api, "etcd": es.api} {
		if _, err := s.WaitReady(ctx, apiserver.DefaultReadyTimeout); err != nil {
			return fmt.Errorf("%s's kube-apiserver: %w", name, err)
		}
	}
	said, err := p.hold(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "pair formed and both API servers ready in %s; %s\n", time.Since(start).Round(time.Second), said)
	fmt.Fprintf(out, "asynchronous pair: %s\n", AsyncMethod)

	apis := map[string]*api{}
	for name, s := range map[string]*apiserver.Server{PairSync: p.api, Etcd: es.api} {
		if apis[name], err = newAPI(name, s.RestConfig(), o); err != nil {
			return err
		}
		if err := apis[name].prepare(ctx); err != nil {
			return err
		}
	}
	// pair-async is the same API server with the same clients and objects.
	async := *apis[PairSync]
	async.name = PairAsync
	apis[PairAsync] = &async

	var cells []Cell
	turn := 0
	for _, clients := range o.Clients {
		for _, op := range Ops {
			for i := range Backends {
				name := Backends[(i+turn)%len(Backends)]
				if name != Etcd {
					if err := p.setSync(ctx, name == PairSync); err != nil {
						return err
					}
				}
				c := apis[name].measure(ctx, op, clients)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if name != Etcd { // still in that mode: nothing switched it back under the load
					if err := p.checkMode(ctx, name == PairSync); err != nil {
						return fmt.Errorf("after %s %s with %d clients: %w", name, op, clients, err)
					}
				}
				fmt.Fprintln(out, describe(c))
				cells = append(cells, c)
			}
			turn++
		}
	}
	if err := p.setSync(ctx, true); err != nil {
		return err
	}
	rows := Rows(cells)
	if err := PrintRows(out, rows); err != nil {
		return err
	}
	if o.SVG != "" {
		if err := drawFile(o.SVG, rows, caption(o)); err != nil {
			return err
		}
		fmt.Fprintf(out, "drew %s\n", o.SVG)
	}
	fmt.Fprintf(out, "whole run %s\n", time.Since(start).Round(time.Second))
	// Every cell is measured and printed first: a backend that failed
	// requests is a finding, and the run says so by failing.
	var failed []string
	for _, c := range cells {
		if c.Errors > 0 {
			failed = append(failed, fmt.Sprintf("%s %s with %d clients: %d failed requests (first: %s)", c.Backend, c.Op, c.Clients, c.Errors, c.FirstError))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("requests failed:\n  %s", strings.Join(failed, "\n  "))
	}
	return nil
}

func describe(c Cell) string {
	s := c.stats()
	line := fmt.Sprintf("%-10s %-6s %2d clients: %6d ops, %7.1f/s, p50 %6.2f ms, p99 %7.2f ms",
		c.Backend, c.Op, c.Clients, s.ops, s.opsPerS, ms(s.p50), ms(s.p99))
	if c.Errors > 0 {
		line += fmt.Sprintf(", %d errors (first: %s)", c.Errors, c.FirstError)
	}
	return line
}

func caption(o Options) string {
	return fmt.Sprintf("one kube-apiserver per backend, client-go from the site's client namespace; %s measured per cell; each list reads %d ConfigMaps", o.Window, o.ListObjects)
}

// drawFile writes the picture to path.
func drawFile(path string, rows []Row, caption string) error {
	var b strings.Builder
	if err := WriteSVG(&b, rows, caption); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Redraw draws the picture from the RESULT lines of a run's log.
func Redraw(log, svg string) error {
	f, err := os.Open(log)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := ParseRows(f)
	if err != nil {
		return err
	}
	return drawFile(svg, rows, "redrawn from "+filepath.Base(log))
}

// Down removes what a run killed in the middle left: processes,
// namespaces, data.
func Down(dir string) error {
	var errs []error
	for _, prefix := range []string{pairPrefix, etcdPrefix} {
		for _, n := range []string{"a", "b", "c", "w1", "w2", "w3"} {
			_ = harness.KillNamespace(prefix+"-"+n, syscall.SIGKILL)
		}
		errs = append(errs, harness.CleanupStale(prefix))
	}
	return errors.Join(append(errs, os.RemoveAll(dir))...)
}
