// Command twonode is the two-node HA agent (`twonode agent`) and the
// operator's CLI, which talks to the local agent over its unix socket.
package main

import (
	"fmt"
	"os"

	"github.com/twonode-edge/twonode/bootstrap/cli"
)

func main() {
	if err := cli.App().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "twonode:", err)
		os.Exit(1)
	}
}
