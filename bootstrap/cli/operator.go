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

func pauseCommand() *cli.Command {
	return &cli.Command{
		Name:  "pause",
		Usage: "pause probing and promotion on BOTH nodes (for upgrades); survives reboots",
		Flags: []cli.Flag{socketFlag, &cli.DurationFlag{Name: "for", Usage: "safety expiry (0 = the configured pause_expiry)", EnvVars: []string{"TWONODE_PAUSE_FOR"}}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return say(client(c).Pause(c.Context, c.Duration("for")))
		},
	}
}

func resumeCommand() *cli.Command {
	return &cli.Command{
		Name:  "resume",
		Usage: "end a pause on both nodes",
		Flags: []cli.Flag{socketFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return say(client(c).Resume(c.Context))
		},
	}
}

func promoteCommand() *cli.Command {
	return &cli.Command{
		Name:  "promote",
		Usage: "make this follower the leader now (refused while the leader's database answers, unless --force)",
		Flags: []cli.Flag{socketFlag, &cli.BoolFlag{Name: "force", Usage: "promote even though the leader answers (a split brain: the loser's writes are archived)", EnvVars: []string{"TWONODE_PROMOTE_FORCE"}}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return say(client(c).Promote(c.Context, c.Bool("force")))
		},
	}
}

func switchoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "switchover",
		Usage: "planned role swap that loses nothing (run on the leader; the follower must be caught up)",
		Flags: []cli.Flag{socketFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return say(client(c).Switchover(c.Context))
		},
	}
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
