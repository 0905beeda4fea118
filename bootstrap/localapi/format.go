package localapi

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// FormatStatus writes the report as an aligned table, for `twonode status`.
func FormatStatus(w io.Writer, r StatusReport) {
	formatStatus(w, r, time.Now())
}

const timeLayout = "2006-01-02 15:04:05 UTC"

// formatStatus takes now so tests get stable "ago" and "left" columns.
func formatStatus(w io.Writer, r StatusReport, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, a...)...) }

	row("Node", "%s", r.Node)
	row("Role", "%s (term %d)", orDash(r.Role), r.Term)
	row("State", "%s", orDash(r.State))
	if r.PeerReachable {
		row("Peer", "%s: %s, term %d", r.Peer, orDash(r.PeerState), r.PeerTerm)
	} else if r.PeerProblem != "" {
		row("Peer", "%s: UNREACHABLE: %s", r.Peer, r.PeerProblem)
	} else {
		row("Peer", "%s: UNREACHABLE", r.Peer)
	}
	row("Replication", "%s", replication(r))
	row("PostgreSQL", "%s", upDown(r.PGUp))
	if r.KineEndpoint != "" {
		row("Kine writes to", "%s", r.KineEndpoint)
	} else {
		row("Kine writes to", "nowhere (Kine stopped)")
	}
	if r.Address != "" {
		row("API address", "%s", r.Address)
	}
	row("Failover", "%s", pauseText(r, now))
	if r.LastTransition != "" {
		row("Last transition", "%s (%s)", r.LastTransition, when(r.LastTransitionAt, now))
	} else {
		row("Last transition", "none since the agent started")
	}
	if r.LastFailover > 0 {
		row("Last failover", "%s from detection to serving", r.LastFailover.Round(time.Millisecond))
	}
	row("Peer clock", "%s", offsetText(r.ClockOffset))
	row("Version", "%s", orDash(r.Version))
	row("Split-brain archives", "%d", len(r.Archives))
	if r.Unfinished != "" {
		row("Unfinished", "%s", r.Unfinished)
	}
	if r.RecentSplits > 0 {
		row("Recent splits", "%d lost in the last hour: promotion waits longer (flap damping)", r.RecentSplits)
	}
	if r.CommitLatency > 0 || r.PeerFlushLag > 0 {
		row("Disk latency", "%s", diskLatency(r))
	}
	if r.DiskSlow != "" {
		row("Disk", "SLOW: %s", r.DiskSlow)
	}
	if r.DiskFull {
		row("Disk", "FULL: a leader hands over to its follower; free space in the data directory")
	}
	if r.Witness != "" {
		row("Witness", "%s", r.Witness)
	}
	if r.Waiting != "" {
		row("Waiting", "%s", r.Waiting)
	}
	tw.Flush()

	if len(r.Archives) == 0 {
		return
	}
	// A table of its own: its columns must not stretch the one above.
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PATH\tROWS\tTERM\tWINNER\tCREATED")
	for _, a := range r.Archives {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\n", a.Path, a.Rows, a.Term, a.Winner, a.Created.UTC().Format(timeLayout))
	}
	tw.Flush()
}

func replication(r StatusReport) string {
	switch r.Replication {
	case "", "none":
		return "none"
	case "streaming":
		return "streaming from the leader"
	}
	return fmt.Sprintf("%s, lag %s", r.Replication, bytesText(r.LagBytes))
}

func pauseText(r StatusReport, now time.Time) string {
	if !r.Paused {
		return "automatic"
	}
	if r.PausedUntil.IsZero() {
		return "PAUSED"
	}
	return fmt.Sprintf("PAUSED until %s (%s left)", r.PausedUntil.UTC().Format(timeLayout), r.PausedUntil.Sub(now).Round(time.Second))
}

func offsetText(d time.Duration) string {
	switch {
	case d == 0:
		return "not measured or in step"
	case d > 0:
		return fmt.Sprintf("%s ahead of this node", d.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s behind this node", (-d).Round(time.Millisecond))
}

func when(t, now time.Time) string {
	if t.IsZero() {
		return "time unknown"
	}
	return fmt.Sprintf("%s, %s ago", t.UTC().Format(timeLayout), now.Sub(t).Round(time.Second))
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "DOWN"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// diskLatency is what a write waits for on each disk, as the leader
// measures it (a follower measures nothing: it does not commit).
func diskLatency(r StatusReport) string {
	here := "commit here " + r.CommitLatency.Round(time.Millisecond).String()
	if r.PeerFlushLag <= 0 {
		return here + ", the follower's flush idle or unknown"
	}
	return here + ", flush on " + r.Peer + " " + r.PeerFlushLag.Round(time.Millisecond).String()
}
