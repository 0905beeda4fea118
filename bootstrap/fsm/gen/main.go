// Command gen writes docs/state-machine.md from the transition table.
package main

import (
	"log"
	"os"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

func main() {
	if err := os.WriteFile(os.Args[1], []byte(fsm.DiagramDoc()), 0o644); err != nil {
		log.Fatal(err)
	}
}
