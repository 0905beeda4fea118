package scale

import (
	"io"
	"math"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/e2e/results"
)

// How the run fills the datastore, as the rows say it (fill).
const (
	// Kine-shaped rows (one create each: a unique name, created=1, a 768-byte
	// value under PostgreSQL's TOAST threshold, so stored as is) inserted
	// with SQL on the leader in batches, then Kine restarted on both nodes
	// (restartKines): a fill through Kine would take longer than the whole
	// measurement at 1 GB.
	fillHow = "sql-insert"
)

// Row is one measurement, printed as a RESULT line of table "scaling"
// (results.Write; field order is the struct's).
type Row struct {
	Curve   string  `json:"curve"` // "datastore" (0 watches) or "watches"
	SizeMB  int     `json:"size_mb"`
	Watches int     `json:"watches"`
	DataMB  float64 `json:"data_mb"` // pg_total_relation_size('kine') when measured
	Rows    int64   `json:"rows"`    // Kine rows then
	// Fault (the leader's power off) to the first write acknowledged by
	// the pair again (harness.Writer, 50 writes/s through both nodes' Kine).
	LeaderCrashRTOms int64 `json:"leader_crash_rto_ms"`
	// Fault to the moment every open watch (on the survivor's Kine) had
	// delivered a write acknowledged after it; nil without watches or
	// when not all did within the wait.
	WatchesResumedMs *int64 `json:"watches_resumed_ms"`
	WatchesResumed   int    `json:"watches_resumed"`
	// The crashed leader's start to the pair synchronous again (the
	// survivor in state leader, the returning node follower), and the copy
	// the returning node's agent logged ("rewind", "base backup", "none").
	RewindRestoreMs int64  `json:"rewind_restore_ms"`
	RewindPath      string `json:"rewind_path"`
	// The same after a long outage (curve datastore only).
	BaseBackupRestoreMs *int64   `json:"basebackup_restore_ms"`
	BaseBackupPath      string   `json:"basebackup_path,omitempty"`
	RewindVsBaseBackup  *float64 `json:"rewind_vs_basebackup"`
	Fill                string   `json:"fill"`
	LongOutage          string   `json:"long_outage,omitempty"`
}

// Ratio is rewind over base backup, to two places; nil when either is
// missing.
func Ratio(rewind time.Duration, baseBackup *time.Duration) *float64 {
	if baseBackup == nil || *baseBackup <= 0 || rewind <= 0 {
		return nil
	}
	r := math.Round(float64(rewind)/float64(*baseBackup)*100) / 100
	return &r
}

func ms(d *time.Duration) *int64 {
	if d == nil {
		return nil
	}
	v := d.Milliseconds()
	return &v
}

// Print writes the row's RESULT line.
func (r Row) Print(w io.Writer) error { return results.Write(w, results.Scaling, "", r) }

// copyPath names the copy an agent's log (the part written since the node
// started) says it made: a base backup whenever one ran (a rewind that
// fell back to one included), else a rewind, else none (it streamed).
func copyPath(log string) string {
	switch {
	case strings.Contains(log, `msg="base backup done"`):
		return "base backup"
	case strings.Contains(log, `msg="rewind done"`):
		return "rewind"
	}
	return "none"
}
