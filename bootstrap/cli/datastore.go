package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/twonode-edge/twonode/bootstrap/localapi"
)

// wait-datastore runs before k3s (the image's k3s.service drop-in): k3s
// keeps the cluster's data in this node's Kine, which serves only once the
// pair has formed, and k3s waits for it without a limit. provider-k3s
// starts k3s synchronously in the boot.before stage, so a node whose pair
// cannot form (a new node whose peer is down) would hold the boot, and
// the console login, for ever. This says why on the console while it
// waits, and gives up after --for: k3s then starts and waits on its own,
// bounded by the unit's TimeoutStartSec, and systemd tries it again in the
// background.
func waitDatastoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "wait-datastore",
		Usage: "before k3s: wait (bounded) until this node's Kine accepts connections, saying on the console why it does not",
		Flags: []cli.Flag{socketFlag,
			&cli.StringFlag{Name: "kine", Usage: "Kine's listen address (kine.listen)", Value: "127.0.0.1:2379", EnvVars: []string{"TWONODE_WAIT_KINE"}},
			&cli.DurationFlag{Name: "for", Usage: "give up after this long (k3s then starts anyway)", Value: 90 * time.Second, EnvVars: []string{"TWONODE_WAIT_FOR"}},
			&cli.DurationFlag{Name: "every", Usage: "time between two explanations", Value: 15 * time.Second, EnvVars: []string{"TWONODE_WAIT_EVERY"}},
			&cli.StringFlag{Name: "console", Usage: "also write the explanations here (\"\": standard error only)", Value: "/dev/console", EnvVars: []string{"TWONODE_WAIT_CONSOLE"}},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			out := io.Writer(os.Stderr)
			if p := c.String("console"); p != "" {
				if f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0); err == nil {
					defer f.Close()
					out = io.MultiWriter(os.Stderr, f)
				}
			}
			cl := client(c)
			w := datastoreWait{Kine: c.String("kine"), For: c.Duration("for"), Every: c.Duration("every"), Status: cl.Status, Out: out}
			w.Run(c.Context)
			return nil // k3s starts either way: it must not be refused for good
		},
	}
}

// datastoreWait is wait-datastore's loop, apart from the command line.
type datastoreWait struct {
	Kine       string
	For, Every time.Duration
	Status     func(context.Context) (localapi.StatusReport, error)
	Out        io.Writer
}

// Run returns true once Kine accepts a connection, false after w.For.
func (w datastoreWait) Run(ctx context.Context) bool {
	start := time.Now()
	var said time.Time
	for {
		if kineUp(ctx, w.Kine) {
			if !said.IsZero() {
				fmt.Fprintf(w.Out, "twonode: this node's datastore serves after %s: k3s starts\n", time.Since(start).Round(time.Second))
			}
			return true
		}
		waited := time.Since(start)
		if waited >= w.For {
			fmt.Fprintf(w.Out, "twonode: no datastore after %s: k3s starts anyway and waits for it on its own (the boot goes on; `twonode status` says why)\n", waited.Round(time.Second))
			return false
		}
		if said.IsZero() || time.Since(said) >= w.Every {
			fmt.Fprintf(w.Out, "twonode: k3s waits for this node's datastore (Kine at %s), which serves once the pair has formed: %s\n", w.Kine, w.why(ctx))
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// why is the agent's own account of the pair, in one line.
func (w datastoreWait) why(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := w.Status(ctx)
	if err != nil {
		return fmt.Sprintf("the twonode agent does not answer (%v)", err)
	}
	peer := "answers"
	if !st.PeerReachable {
		peer = "does not answer"
	}
	s := fmt.Sprintf("this node is %s, its peer %s %s", st.State, st.Peer, peer)
	if st.Waiting != "" {
		s += "; " + st.Waiting
	}
	return s
}

// kineUp: Kine accepts a TCP connection (it listens only once it serves).
func kineUp(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
