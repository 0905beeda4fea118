// Command agent-provider-twonode is the twonode Kairos plugin, installed as
// /system/providers/agent-provider-twonode (see bootstrap/plugin).
package main

import (
	"os"

	"github.com/twonode-edge/twonode/bootstrap/plugin"
)

func main() {
	os.Exit(plugin.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
