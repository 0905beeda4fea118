// Command twonode-lab runs the two-node lab on this machine (as root):
// `run` (form, crash the leader, rejoin), `down`, `bench`, and `compare`
// (the datastore against etcd).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/twonode-edge/twonode/e2e/compare"
	"github.com/twonode-edge/twonode/e2e/lab"
	"github.com/twonode-edge/twonode/e2e/scale"
)

func main() {
	app := &cli.App{
		Name:  "twonode-lab",
		Usage: "a real twonode pair in network namespaces on this machine (needs root)",
		Commands: []*cli.Command{
			{
				Name:  "run",
				Usage: "form a pair, write, pull the leader's power, show the timeline, rejoin",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "keep", Usage: "leave the pair running until Ctrl-C, for exploring (`make lab-down` removes what a killed lab left)", EnvVars: []string{"TWONODE_LAB_KEEP"}}},
				Action: func(c *cli.Context) error {
					return lab.Run(c.Context, lab.Options{Keep: c.Bool("keep"), Out: os.Stdout})
				},
			},
			{Name: "down", Usage: "remove a lab left running", Action: func(*cli.Context) error { return lab.Down() }},
			{
				Name:  "bench",
				Usage: "repeat the leader crash and print when each phase of the take-over ended (median, p95), with a stacked bar",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "runs", Value: 10, Usage: "how many leader crashes", EnvVars: []string{"TWONODE_BENCH_RUNS"}},
					&cli.StringFlag{Name: "svg", Usage: "draw the phases' stacked bar here (make bench: images/failover-phases.svg)"},
				},
				Action: func(c *cli.Context) error {
					return lab.Bench(c.Context, lab.BenchOptions{Runs: c.Int("runs"), SVG: c.String("svg")}, os.Stdout)
				},
			},
			{
				Name:  "compare",
				Usage: "the datastore against etcd: a kube-apiserver on a synchronous pair, an asynchronous pair and a three-member etcd, under creates, updates and lists at 1, 8 and 32 clients",
				Flags: []cli.Flag{
					&cli.DurationFlag{Name: "window", Value: 8 * time.Second, Usage: "measured time per cell"},
					&cli.IntSliceFlag{Name: "clients", Value: cli.NewIntSlice(1, 8, 32), Usage: "concurrent clients"},
					&cli.StringFlag{Name: "svg", Value: "images/datastore-vs-etcd.svg", Usage: "where to draw the picture (\"\" = nowhere)"},
					&cli.StringFlag{Name: "redraw", Usage: "instead of running, draw --svg from the RESULT lines of this log"},
				},
				Action: func(c *cli.Context) error {
					if log := c.String("redraw"); log != "" {
						return compare.Redraw(log, c.String("svg"))
					}
					return compare.Run(c.Context, compare.Options{Window: c.Duration("window"), Clients: c.IntSlice("clients"), SVG: c.String("svg")}, os.Stdout)
				},
			},
			{
				Name:  "scale",
				Usage: "leader crash RTO and restore times (rewind, base backup) at 10 MB to 1 GB of Kine rows and with 0 to 1,000 watches; draws images/scaling-*.svg",
				Flags: []cli.Flag{
					&cli.IntSliceFlag{Name: "sizes", Value: cli.NewIntSlice(10, 100, 1000), Usage: "datastore sizes, MB of Kine rows"},
					&cli.IntSliceFlag{Name: "watches", Value: cli.NewIntSlice(0, 100, 1000), Usage: "open watches, at the smallest size"},
					&cli.StringFlag{Name: "long-outage", Value: "data-removed", Usage: "how a long outage is made: data-removed (the returning node's data directory) or wal-dropped (the leader writes WAL past max_slot_wal_keep_size)"},
					&cli.DurationFlag{Name: "state-wait", Value: 10 * time.Minute, Usage: "the longest wait for a restore"},
					&cli.BoolFlag{Name: "keep-on-fail", Usage: "leave the pair in /var/tmp/twonode-scale when the run fails"},
				},
				Action: func(c *cli.Context) error {
					return scale.Run(c.Context, scale.Options{SizesMB: c.IntSlice("sizes"), Watches: c.IntSlice("watches"),
						LongOutage: c.String("long-outage"), StateWait: c.Duration("state-wait"), KeepOnFail: c.Bool("keep-on-fail")}, os.Stdout)
				},
			},
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := app.RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "twonode-lab:", err)
		os.Exit(1)
	}
}
