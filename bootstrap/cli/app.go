// Package cli is the twonode command line: the daemon (`agent`) and the
// operator commands, which reach the daemon only through its local API.
package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/twonode-edge/twonode/bootstrap/agent"
)

var socketFlag = &cli.StringFlag{
	Name:    "socket",
	Usage:   "the local agent's API socket",
	Value:   "/run/twonode/agent.sock",
	EnvVars: []string{"TWONODE_SOCKET"},
}

// App is the whole command tree.
func App() *cli.App {
	return &cli.App{
		Name:    "twonode",
		Usage:   "two-node high availability for Kine on PostgreSQL",
		Version: agent.Version,
		Commands: []*cli.Command{
			agentCommand(),
			statusCommand(),
			pauseCommand(),
			resumeCommand(),
			promoteCommand(),
			switchoverCommand(),
			fsmCommand(),
			archiveCommand(),
			waitDatastoreCommand(),
		},
	}
}

// noArgs rejects stray arguments: a typo must not be silently ignored.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit("unexpected argument "+c.Args().First()+" (see --help)", 2)
	}
	return nil
}
