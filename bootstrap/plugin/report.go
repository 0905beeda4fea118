package plugin

import (
	"fmt"
	"io"
	"os"

	"github.com/coreos/go-systemd/v22/journal"
)

// Identifier names the plugin in the journal and the kernel log:
// journalctl -t agent-provider-twonode.
const Identifier = "agent-provider-twonode"

// SystemReporter reports each line on stderr and in the journal. Kairos
// runs the plugin from its initramfs stage, where the journal's socket may
// not be reachable: the line then goes to the kernel log (/dev/kmsg), which
// the journal imports once it runs. Problems are logged as errors.
func SystemReporter(stderr io.Writer) func(Line) {
	useJournal := journal.Enabled()
	return func(l Line) {
		fmt.Fprintf(stderr, "%s: %s\n", Identifier, l.Text)
		prio := journal.PriInfo
		if l.Problem {
			prio = journal.PriErr
		}
		if useJournal && journal.Send(l.Text, prio, map[string]string{"SYSLOG_IDENTIFIER": Identifier}) == nil {
			return
		}
		kmsg(prio, l.Text)
	}
}

// kmsg writes one record to the kernel log, best effort.
func kmsg(prio journal.Priority, text string) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	const max = 900 // a kernel log record holds about 1 KiB
	if len(text) > max {
		text = text[:max] + "..."
	}
	fmt.Fprintf(f, "<%d>%s: %s\n", prio, Identifier, text)
}
