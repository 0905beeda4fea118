package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/bootstrap/localapi"
)

func client(c *cli.Context) *localapi.Client { return localapi.NewClient(c.String("socket")) }

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show this node's role, term, peer, replication, pause and split-brain archives",
		Flags: []cli.Flag{socketFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON", EnvVars: []string{"TWONODE_STATUS_JSON"}}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			r, err := client(c).Status(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			localapi.FormatStatus(os.Stdout, r)
			return nil
		},
	}
}

// ask is an operator command that sends one request to the local agent
// and prints its answer (pause, resume, promote, switchover): the socket
// flag, no arguments, say's exit codes.
func ask(name, usage string, request func(*cli.Context) (string, error), flags ...cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: append([]cli.Flag{socketFlag}, flags...),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return say(request(c))
		},
	}
}

func pauseCommand() *cli.Command {
	return ask("pause", "pause probing and promotion on BOTH nodes (for upgrades); survives reboots",
		func(c *cli.Context) (string, error) { return client(c).Pause(c.Context, c.Duration("for")) },
		&cli.DurationFlag{Name: "for", Usage: "safety expiry (0 = the configured pause_expiry)", EnvVars: []string{"TWONODE_PAUSE_FOR"}})
}

func resumeCommand() *cli.Command {
	return ask("resume", "end a pause on both nodes",
		func(c *cli.Context) (string, error) { return client(c).Resume(c.Context) })
}

func promoteCommand() *cli.Command {
	return ask("promote", "make this follower the leader now (refused while the leader's database answers, unless --force)",
		func(c *cli.Context) (string, error) { return client(c).Promote(c.Context, c.Bool("force")) },
		&cli.BoolFlag{Name: "force", Usage: "promote even though the leader answers (a split brain: the loser's writes are archived)", EnvVars: []string{"TWONODE_PROMOTE_FORCE"}})
}

func switchoverCommand() *cli.Command {
	return ask("switchover", "planned role swap that loses nothing (run on the leader; the follower must be caught up)",
		func(c *cli.Context) (string, error) { return client(c).Switchover(c.Context) })
}

func fsmCommand() *cli.Command {
	return &cli.Command{
		Name:  "fsm",
		Usage: "print the agent's state table (no agent needed)",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "mermaid", Usage: "print the mermaid state diagram instead", EnvVars: []string{"TWONODE_FSM_MERMAID"}}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.Bool("mermaid") {
				fmt.Print(fsm.Mermaid())
				return nil
			}
			return fsm.WriteTable(os.Stdout)
		},
	}
}

// say prints a command's answer. Done on this node only (the peer did
// not answer): the answer, and exit status 3, so that scripts notice.
func say(msg string, err error) error {
	if errors.Is(err, localapi.ErrPartial) {
		fmt.Println(msg)
		return cli.Exit("", 3)
	}
	if err != nil {
		return err
	}
	fmt.Println(msg)
	return nil
}
