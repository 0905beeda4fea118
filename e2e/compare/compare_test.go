package compare

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/e2e/fleet"
)

// lat is n latencies: 1 ms, 2 ms, ... n ms, times f.
func lat(n int, f float64) fleet.Latencies {
	var l fleet.Latencies
	for i := n; i >= 1; i-- { // in no order
		l = append(l, time.Duration(float64(i)*f*float64(time.Millisecond)))
	}
	return l
}

func cells() []Cell {
	return []Cell{
		{Backend: PairSync, Op: OpCreate, Clients: 8, Window: 10 * time.Second, Latencies: lat(200, 3)},
		{Backend: PairAsync, Op: OpCreate, Clients: 8, Window: 10 * time.Second, Latencies: lat(300, 1.5), Errors: 2},
		{Backend: Etcd, Op: OpCreate, Clients: 8, Window: 10 * time.Second, Latencies: lat(400, 2)},
		{Backend: PairSync, Op: OpList, Clients: 1, Window: 10 * time.Second, Latencies: lat(100, 0.05)},
	}
}

func TestRows(t *testing.T) {
	rows := Rows(cells())
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	// Ordered by clients, operation, backend: the list at 1 client first.
	l, s, a, e := rows[0], rows[1], rows[2], rows[3]
	// Nearest rank: the 50th of 1..100 ms is 50 ms; the 99th of 1..200 is 198.
	if s.P50() != 300 || s.P99() != 594 || s.Ops != 200 || s.OpsPerS != 20 {
		t.Errorf("pair-sync: p50 %v p99 %v ops %d ops/s %v; want 300, 594, 200, 20", s.P50(), s.P99(), s.Ops, s.OpsPerS)
	}
	if e.P50() != 400 || e.P99() != 792 || e.OpsPerS != 40 {
		t.Errorf("etcd: p50 %v p99 %v ops/s %v; want 400, 792, 40", e.P50(), e.P99(), e.OpsPerS)
	}
	check := func(name string, got *float64, want float64) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("pair-sync p50_vs_etcd", s.P50VsEtcd, 0.75)
	check("pair-sync p99_vs_etcd", s.P99VsEtcd, 0.75)
	check("pair-sync ops_per_s_vs_etcd", s.OpsPerSVsEtcd, 0.5)
	check("pair-async p50_vs_etcd", a.P50VsEtcd, 0.56) // 225 / 400
	check("etcd p50_vs_etcd", e.P50VsEtcd, 1)
	if a.Errors != 2 {
		t.Errorf("pair-async errors %d, want 2", a.Errors)
	}
	// No etcd cell for the list: no ratio, rather than one against nothing.
	if l.P50VsEtcd != nil || l.OpsPerSVsEtcd != nil {
		t.Errorf("list without an etcd cell has ratios %v %v", l.P50VsEtcd, l.OpsPerSVsEtcd)
	}
	if l.P50() != 2.5 {
		t.Errorf("list p50 %v ms, want 2.5 (hundredths kept)", l.P50())
	}
}

// An etcd cell that measured nothing gives no ratio (not a division by 0).
func TestRowsEmptyReference(t *testing.T) {
	rows := Rows([]Cell{
		{Backend: PairSync, Op: OpUpdate, Clients: 1, Window: time.Second, Latencies: lat(10, 1)},
		{Backend: Etcd, Op: OpUpdate, Clients: 1, Window: time.Second},
	})
	if rows[0].P50VsEtcd != nil || rows[0].OpsPerSVsEtcd != nil {
		t.Errorf("ratios against an empty cell: %v %v", rows[0].P50VsEtcd, rows[0].OpsPerSVsEtcd)
	}
	// A cell that answered nothing has no latency, rather than 0 ms.
	if rows[1].P50ms != nil || rows[1].P99ms != nil || rows[1].Ops != 0 {
		t.Errorf("empty etcd cell: p50 %v p99 %v ops %d", rows[1].P50ms, rows[1].P99ms, rows[1].Ops)
	}
}

// The RESULT lines name the table, and read back as written.
func TestPrintParseRows(t *testing.T) {
	rows := Rows(cells())
	var b bytes.Buffer
	b.WriteString("a line that is not a result\nRESULT {\"table\":\"other\",\"x\":1}\n")
	if err := PrintRows(&b, rows); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n")[2:] {
		if !strings.HasPrefix(line, `RESULT {"table":"datastore-vs-etcd","backend":`) {
			t.Errorf("line %q does not start with the table's name", line)
		}
	}
	back, err := ParseRows(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(rows) {
		t.Fatalf("read %d rows back, wrote %d", len(back), len(rows))
	}
	if *back[2].P50VsEtcd != *rows[2].P50VsEtcd || back[0].P50VsEtcd != nil {
		t.Errorf("ratios changed on the way: %+v", back)
	}
}

// The picture is well-formed SVG and shows every p50, every ratio and
// every group.
func TestWriteSVG(t *testing.T) {
	rows := Rows(cells())
	var b strings.Builder
	if err := WriteSVG(&b, rows, "a caption & more"); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
	}
	for _, want := range []string{">300<", ">400<", ">225<", ">2.5<", "×0.75", "×0.56", "8 clients", "1 client<", ">create<", ">list<", "a caption &amp; more"} {
		if !strings.Contains(svg, want) {
			t.Errorf("picture lacks %q", want)
		}
	}
	if err := WriteSVG(&b, nil, ""); err == nil {
		t.Error("no rows: want an error")
	}
}
