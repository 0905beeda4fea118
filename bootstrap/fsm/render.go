package fsm

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the transition table as `twonode fsm` shows it.
func WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM\tTO\tREASON\tCOMMAND")
	for _, r := range Table {
		cmd := string(r.Consumes)
		if cmd == "" {
			cmd = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.From, r.To, r.Reason, cmd)
	}
	fmt.Fprintln(tw, "\nIN\tCOMMAND\tREFUSED BECAUSE\tANSWER")
	for _, r := range Refusals {
		answer := "error"
		if r.NoChange {
			answer = "no change"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.State, r.Cmd, r.Why, answer)
	}
	return tw.Flush()
}

// Mermaid renders the table as a mermaid state diagram; docs/state-machine.md
// embeds it and a test fails when the two differ.
func Mermaid() string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	b.WriteString("    [*] --> starting\n")
	for _, r := range Table {
		label := strings.ReplaceAll(r.Reason, ":", " -")
		fmt.Fprintf(&b, "    %s --> %s: %s\n", r.From, r.To, label)
	}
	return b.String()
}

// DiagramDoc is the whole generated docs/state-machine.md.
func DiagramDoc() string {
	var b strings.Builder
	b.WriteString("# The agent's state machine\n\n")
	b.WriteString("Generated from `bootstrap/fsm/table.go` by `go generate ./bootstrap/fsm` (or `twonode fsm --mermaid`);\n")
	b.WriteString("`go test ./bootstrap/fsm` fails when this file is stale. Every arrow is one row of the table;\n")
	b.WriteString("its label is the reason the agent logs as `from → to: reason`.\n\n")
	b.WriteString("```mermaid\n")
	b.WriteString(Mermaid())
	b.WriteString("```\n\n")
	b.WriteString("| state | guarantee |\n|---|---|\n")
	for _, s := range States {
		fmt.Fprintf(&b, "| `%s` | %s |\n", s, Guarantee[s])
	}
	return b.String()
}

// Guarantee says what each state promises, for the docs.
var Guarantee = map[State]string{
	Starting:    "nothing decided; PostgreSQL and Kine are left as found, so an agent restart disturbs nothing",
	Joining:     "not serving writes from its own database; copying from the peer (after archiving what only it had)",
	Follower:    "a standby streaming from the leader; its Kine writes to the leader's database",
	Leader:      "the primary with its follower caught up: replication is synchronous, an acknowledged write is on both disks",
	LeaderAlone: "the primary without a healthy follower: replication is asynchronous so writes do not hang",
}
