// Command yiprun is a test-only stand-in for Kairos' own `kairos-agent
// run-stage STAGE` (which the appliance root filesystem does not carry): it
// runs STAGE.before, STAGE and STAGE.after from the yip files under the
// given directories, in Kairos's order (each directory in turn, its files in
// lexical order), with yip's own executor (github.com/mudler/yip, the
// version Kairos vendors for this repository) on the real filesystem and a
// console that runs every command through sh. The appliance tests copy it
// into a node's root filesystem and run it there, where Kairos would run
// its stages. Unlike Kairos, which logs a failed step and goes on, it exits
// 1 when any step failed, so that a test sees it.
//
//	yiprun STAGE DIR...
package main

import (
	"fmt"
	"os"

	"github.com/mudler/yip/pkg/console"
	"github.com/mudler/yip/pkg/executor"
	"github.com/sirupsen/logrus"
	"github.com/twpayne/go-vfs/v5"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: yiprun STAGE DIR...")
		os.Exit(2)
	}
	stage, dirs := os.Args[1], os.Args[2:]
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.DebugLevel)
	for _, d := range dirs {
		// kairos-agent makes its cloud-config directories first (yip
		// would read a missing path as a YAML document).
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	e := executor.NewExecutor(executor.WithLogger(log))
	c := console.NewStandardConsole(console.WithLogger(log))
	failed := false
	for _, s := range []string{stage + ".before", stage, stage + ".after"} {
		if err := e.Run(s, vfs.OSFS, c, dirs...); err != nil {
			fmt.Fprintf(os.Stderr, "yiprun: stage %s: %v\n", s, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
