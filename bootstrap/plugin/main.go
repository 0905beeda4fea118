package plugin

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"
)

const usage = `agent-provider-twonode: the twonode Kairos plugin.

  agent-provider-twonode <event>   answer a Kairos bus event (the event as JSON
                                   on stdin, the answer as JSON on stdout);
                                   on agent.boot, render this node's stages
  agent-provider-twonode upgrade-begin
                                   before an upgrade: pause the pair and record
                                   the upgrade (the before-upgrade stage)
  agent-provider-twonode upgrade-finish
                                   at the first boot after it: once this node is
                                   back in the pair, end the upgrade's pause
`

// Main is the whole program; it returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	report := SystemReporter(stderr)
	say := func(problem bool, text string) { report(Line{Problem: problem, Text: text}) }
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "upgrade-begin":
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		err = NewUpgrade(say).Begin(ctx)
	case "upgrade-finish":
		err = NewUpgrade(say).Finish(ctx)
	default:
		err = New(report).Run(args[0], stdin, stdout)
	}
	if err != nil {
		say(true, err.Error())
		return 1
	}
	return 0
}
