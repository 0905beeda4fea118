package scale

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRatio(t *testing.T) {
	bb := 40 * time.Second
	if r := Ratio(6*time.Second, &bb); r == nil || *r != 0.15 {
		t.Errorf("Ratio(6 s, 40 s) = %v, want 0.15", r)
	}
	if r := Ratio(6*time.Second, nil); r != nil {
		t.Errorf("a ratio without a base backup: %v", *r)
	}
	zero := time.Duration(0)
	if r := Ratio(6*time.Second, &zero); r != nil {
		t.Errorf("a ratio over a zero base backup: %v", *r)
	}
}

// The RESULT line names its table (results.sh selects rows by it)
// and says null for what was not measured.
func TestRowPrint(t *testing.T) {
	var b bytes.Buffer
	bb := int64(41000)
	r := 0.15
	if err := (Row{Curve: "datastore", SizeMB: 1000, DataMB: 1003.2, LeaderCrashRTOms: 2100,
		RewindRestoreMs: 6150, RewindPath: "rewind", BaseBackupRestoreMs: &bb, RewindVsBaseBackup: &r, Fill: fillHow}).Print(&b); err != nil {
		t.Fatal(err)
	}
	line := b.String()
	for _, want := range []string{`RESULT {"table":"scaling","curve":"datastore","size_mb":1000,`, `"watches_resumed_ms":null`,
		`"basebackup_restore_ms":41000`, `"rewind_vs_basebackup":0.15`, `"fill":"sql-insert"`} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Errorf("not one line: %q", line)
	}
}

func TestCopyPath(t *testing.T) {
	for log, want := range map[string]string{
		`level=INFO msg="rewind done" from=10.106.0.2 took=1.2s`:                                                                         "rewind",
		`level=WARN msg="pg_rewind impossible: falling back to a full base backup"` + "\n" + `level=INFO msg="base backup done" took=9s`: "base backup",
		`level=INFO msg="postgresql started"`:                                                                                            "none",
	} {
		if got := copyPath(log); got != want {
			t.Errorf("copyPath(%q) = %q, want %q", log, got, want)
		}
	}
}

// Each curve's rows become its chart's points, in order; a point not
// measured is NaN (not drawn).
func TestCharts(t *testing.T) {
	bb := int64(900)
	resumed := int64(2500)
	rows := []Row{
		{Curve: "datastore", DataMB: 10.4, LeaderCrashRTOms: 2000, RewindRestoreMs: 3000, BaseBackupRestoreMs: &bb},
		{Curve: "watches", Watches: 0, LeaderCrashRTOms: 2010},
		{Curve: "watches", Watches: 100, LeaderCrashRTOms: 2020, WatchesResumedMs: &resumed},
		{Curve: "datastore", DataMB: 1002.6, LeaderCrashRTOms: 2200, RewindRestoreMs: 5000},
	}
	ds, ws := Charts(rows, "test")
	if got := strings.Join(ds.X, " "); got != "10.4 1,003" {
		t.Errorf("datastore points %q, want \"10.4 1,003\"", got)
	}
	if got := strings.Join(ws.X, " "); got != "0 100" {
		t.Errorf("watch points %q, want \"0 100\"", got)
	}
	if len(ds.Series) != 3 || ds.Series[2].Y[0] != 900 || !math.IsNaN(ds.Series[2].Y[1]) || ds.Series[1].Y[1] != 5000 {
		t.Errorf("datastore series %+v", ds.Series)
	}
	if len(ws.Series) != 2 || ws.Series[0].Y[1] != 2020 || !math.IsNaN(ws.Series[1].Y[0]) || ws.Series[1].Y[1] != 2500 {
		t.Errorf("watch series %+v", ws.Series)
	}
	var b bytes.Buffer
	if err := ds.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
}

// A fill's batches stop near the size asked for: bounded both ways, and
// sized by what a row has taken so far.
func TestBatchFor(t *testing.T) {
	for _, tc := range []struct {
		mb     float64
		rows   int64
		size   int
		want   int64
		reason string
	}{
		{0.1, 2, 10, 7985, "before any row is measured: 1,300 bytes a row"},
		{0.1, 2, 1000, fillBatch, "at most a batch"},
		{9.99, 8000, 10, 1000, "at least 1,000"},
		{50, 40000, 60, 8000, "10 MB more at 1,310.72 bytes a row"},
	} {
		if got := batchFor(tc.mb, tc.rows, tc.size); got != tc.want {
			t.Errorf("%s: batchFor(%v, %d, %d) = %d, want %d", tc.reason, tc.mb, tc.rows, tc.size, got, tc.want)
		}
	}
}
