package compare

import (
	"cmp"
	"io"
	"math"
	"slices"
	"time"

	"github.com/twonode-edge/twonode/e2e/fleet"
	"github.com/twonode-edge/twonode/e2e/results"
)

// The backends, in the order the table and the picture show them. Etcd is
// the reference every ratio divides by.
const (
	PairSync  = "pair-sync"
	PairAsync = "pair-async"
	Etcd      = "etcd"
)

// Backends lists them in that order.
var Backends = []string{PairSync, PairAsync, Etcd}

// The operations of the load.
const (
	OpCreate = "create"
	OpUpdate = "update"
	OpList   = "list"
)

// Ops lists them in that order.
var Ops = []string{OpCreate, OpUpdate, OpList}

// Cell is what one (backend, operation, clients) measurement saw: the
// latency of every operation that started inside the measured window and
// was answered without error, and how many failed.
type Cell struct {
	Backend, Op string
	Clients     int
	Window      time.Duration // the measured time (warm-up excluded)
	Latencies   fleet.Latencies
	Errors      int
	FirstError  string // the first error's text, to say why (empty: none)
}

// Row is one RESULT line of table "datastore-vs-etcd". The ratios divide by the etcd
// cell of the same operation and clients (above 1: slower or more for
// this backend); nil when there is no etcd cell to divide by, or it
// measured nothing.
type Row struct {
	Backend       string   `json:"backend"`
	Op            string   `json:"op"`
	Clients       int      `json:"clients"`
	Ops           int      `json:"ops"`
	Errors        int      `json:"errors"`
	Seconds       float64  `json:"seconds"`
	OpsPerS       float64  `json:"ops_per_s"`
	P50ms         *float64 `json:"p50_ms"` // nil: nothing was answered
	P99ms         *float64 `json:"p99_ms"`
	P50VsEtcd     *float64 `json:"p50_vs_etcd"`
	P99VsEtcd     *float64 `json:"p99_vs_etcd"`
	OpsPerSVsEtcd *float64 `json:"ops_per_s_vs_etcd"`
}

// stats are a cell's figures before rounding.
type stats struct {
	ops      int
	opsPerS  float64
	p50, p99 time.Duration
	measured bool
}

func (c Cell) stats() stats {
	s := stats{ops: len(c.Latencies), p50: c.Latencies.Quantile(0.50), p99: c.Latencies.Quantile(0.99)}
	if c.Window > 0 {
		s.opsPerS = float64(s.ops) / c.Window.Seconds()
	}
	s.measured = s.ops > 0
	return s
}

// Rows turns the cells into the table, each with its ratios to the etcd
// cell of the same operation and clients, ordered by clients, operation
// (Ops) and backend (Backends) whatever order they ran in.
func Rows(cells []Cell) []Row {
	cells = slices.Clone(cells)
	slices.SortStableFunc(cells, func(a, b Cell) int {
		return cmp.Or(cmp.Compare(a.Clients, b.Clients), cmp.Compare(rank(Ops, a.Op), rank(Ops, b.Op)),
			cmp.Compare(rank(Backends, a.Backend), rank(Backends, b.Backend)))
	})
	type key struct {
		op      string
		clients int
	}
	ref := map[key]stats{}
	for _, c := range cells {
		if c.Backend == Etcd {
			ref[key{c.Op, c.Clients}] = c.stats()
		}
	}
	var rows []Row
	for _, c := range cells {
		s := c.stats()
		r := Row{Backend: c.Backend, Op: c.Op, Clients: c.Clients, Ops: s.ops, Errors: c.Errors,
			Seconds: round(c.Window.Seconds(), 1), OpsPerS: round(s.opsPerS, 1)}
		if s.measured {
			p50, p99 := ms(s.p50), ms(s.p99)
			r.P50ms, r.P99ms = &p50, &p99
		}
		if e, ok := ref[key{c.Op, c.Clients}]; ok && e.measured && s.measured {
			r.P50VsEtcd = ratio(float64(s.p50), float64(e.p50))
			r.P99VsEtcd = ratio(float64(s.p99), float64(e.p99))
			r.OpsPerSVsEtcd = ratio(s.opsPerS, e.opsPerS)
		}
		rows = append(rows, r)
	}
	return rows
}

// rank is s's place in order; those not in it come last.
func rank(order []string, s string) int {
	if i := slices.Index(order, s); i >= 0 {
		return i
	}
	return len(order)
}

// P50 and P99 are the row's latencies in ms, 0 when nothing was answered.
func (r Row) P50() float64 { return deref(r.P50ms) }

// P99: see P50.
func (r Row) P99() float64 { return deref(r.P99ms) }

func deref(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}

// ratio is a/b to two decimals (nil when b is 0).
func ratio(a, b float64) *float64 {
	if b == 0 {
		return nil
	}
	v := round(a/b, 2)
	return &v
}

// PrintRows writes one RESULT line per row (results.Write).
func PrintRows(w io.Writer, rows []Row) error {
	for _, r := range rows {
		if err := results.Write(w, results.DatastoreVsEtcd, "", r); err != nil {
			return err
		}
	}
	return nil
}

// ms is d in milliseconds, to a hundredth (a list on an idle machine
// takes a few milliseconds).
func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }

func round(v float64, decimals int) float64 {
	f := math.Pow(10, float64(decimals))
	return math.Round(v*f) / f
}
