package fleet

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/twonode-edge/twonode/bootstrap/witness"
)

// The checks that count wrong decisions must be able to fail: each case
// below breaks one thing a right decision has, and judge must see it.
func TestJudgeCountsWrongDecisions(t *testing.T) {
	p := Pairs("race-1", 1)[0] // node a leads term 1; b follows
	p.Term = 4
	a, b := p.Names[0], p.Names[1]
	const lease = clientv3.LeaseID(0x51)
	now := time.Now()
	// b took over: term 5, alone under b's lease; a's swap was refused.
	won := witness.State{Term: witness.Seen{Term: witness.Term{Term: 5, By: b}, Rev: 9}, Alone: &witness.Alone{Term: 5, By: b}}
	right := func() (*RaceRun, map[string]*record) {
		r := &RaceRun{Pairs: []Pair{p}, Nodes: [][2]nodeRun{{
			{claim: 4, decided: true, st: won, asked: now.Add(-1100 * time.Millisecond), at: now.Add(-time.Second)},
			{claim: 5, decided: true, won: true, st: won, at: now.Add(-2 * time.Second), lease: witness.Lease{ID: lease, TTL: 10 * time.Second, Deadline: now.Add(time.Minute)}},
		}}}
		kvs := map[string]*record{
			p.Prefix + "term":  {value: []byte(`{"term":5,"by":"` + b + `"}`)},
			p.Prefix + "alone": {value: []byte(`{"term":5,"by":"` + b + `"}`), lease: int64(lease)},
		}
		return r, kvs
	}
	if r, kvs := right(); judge(r, kvs, now).Wrong != 0 {
		t.Fatalf("a right decision was counted wrong: %v", judge(r, kvs, now).WrongWhy)
	}
	for _, tc := range []struct {
		name   string
		break_ func(r *RaceRun, kvs map[string]*record)
	}{
		{"two winners at once", func(r *RaceRun, _ map[string]*record) {
			r.Nodes[0][0] = nodeRun{claim: 4, decided: true, won: true, at: now.Add(-time.Second), lease: witness.Lease{ID: 0x52, Deadline: now.Add(time.Minute)},
				st: witness.State{Term: witness.Seen{Term: witness.Term{Term: 4, By: a}, Rev: 8}, Alone: &witness.Alone{Term: 4, By: a}}}
		}},
		{"the loser was answered without the alone record while the winner's lease ran", func(r *RaceRun, _ map[string]*record) {
			r.Nodes[0][0].st.Alone = nil
		}},
		{"no winner", func(r *RaceRun, _ map[string]*record) { r.Nodes[0][1].won = false }},
		{"the loser was answered a stale record", func(r *RaceRun, _ map[string]*record) {
			r.Nodes[0][0].st = witness.State{Term: witness.Seen{Term: witness.Term{Term: 4, By: a}, Rev: 3}}
		}},
		{"the winner holds no lease", func(r *RaceRun, _ map[string]*record) { r.Nodes[0][1].lease = witness.Lease{} }},
		{"the witness records the loser", func(_ *RaceRun, kvs map[string]*record) {
			kvs[p.Prefix+"term"].value = []byte(`{"term":5,"by":"` + a + `"}`)
		}},
		{"the witness records an older term", func(_ *RaceRun, kvs map[string]*record) {
			kvs[p.Prefix+"term"].value = []byte(`{"term":4,"by":"` + b + `"}`)
		}},
		{"the alone record hangs on another lease", func(_ *RaceRun, kvs map[string]*record) { kvs[p.Prefix+"alone"].lease = 0x52 }},
		{"no alone record while the winner's lease runs", func(_ *RaceRun, kvs map[string]*record) { delete(kvs, p.Prefix+"alone") }},
		{"the winner claimed the wrong term", func(r *RaceRun, _ map[string]*record) { r.Nodes[0][1].claim = 6 }},
	} {
		r, kvs := right()
		tc.break_(r, kvs)
		if v := judge(r, kvs, now); v.Wrong != 1 {
			t.Errorf("%s: counted %d wrong decisions, want 1", tc.name, v.Wrong)
		}
	}
	// Not wrong: the alone record gone once the winner's own deadline
	// passed (it stopped serving before the witness could expire it).
	r, kvs := right()
	delete(kvs, p.Prefix+"alone")
	if v := judge(r, kvs, now.Add(2*time.Minute)); v.Wrong != 0 {
		t.Errorf("an expired lease was counted a wrong decision: %v", v.WrongWhy)
	}
	// Not wrong: the second node won only after the first one's lease had
	// lapsed (it stopped serving), and the records name the second.
	r, kvs = right()
	r.Nodes[0][0] = nodeRun{claim: 4, decided: true, won: true, at: now.Add(-time.Minute), lease: witness.Lease{ID: 0x52, Deadline: now.Add(-50 * time.Second)},
		st: witness.State{Term: witness.Seen{Term: witness.Term{Term: 4, By: a}, Rev: 8}, Alone: &witness.Alone{Term: 4, By: a}}}
	if v := judge(r, kvs, now); v.Wrong != 0 || v.AfterLapse != 1 {
		t.Errorf("a take-over after a lapsed lease: wrong %d (%v), after_lapse %d; want 0, 1", v.Wrong, v.WrongWhy, v.AfterLapse)
	}
	// Not wrong: the loser answered without the alone record after the
	// winner's lease had lapsed.
	r, kvs = right()
	r.Nodes[0][1].lease.Deadline = now.Add(-3 * time.Second)
	r.Nodes[0][0].st.Alone = nil
	delete(kvs, p.Prefix+"alone")
	if v := judge(r, kvs, now); v.Wrong != 0 {
		t.Errorf("a loser answered after the winner's lease lapsed was counted wrong: %v", v.WrongWhy)
	}
	// Not wrong: the loser asked before the winner's claim was answered,
	// and saw its term without the alone record (an earlier claim of the
	// winner's, whose answer was lost, had lapsed).
	r, kvs = right()
	r.Nodes[0][0].asked, r.Nodes[0][0].at = now.Add(-3*time.Second), now.Add(-2500*time.Millisecond)
	r.Nodes[0][0].st.Alone = nil
	if v := judge(r, kvs, now); v.Wrong != 0 {
		t.Errorf("a loser that asked before the winner won was counted wrong: %v", v.WrongWhy)
	}
	// Undecided is not decided, and not wrong either: the test asserts it apart.
	r, kvs = right()
	r.Nodes[0][0].decided = false
	if v := judge(r, kvs, now); v.Decided != 0 || v.Wrong != 0 {
		t.Errorf("an undecided pair: decided %d, wrong %d; want 0, 0", v.Decided, v.Wrong)
	}
}

// A node that reads the other node ahead claims nothing.
func TestConceded(t *testing.T) {
	st := func(term uint64, by string, alone string) witness.State {
		s := witness.State{Term: witness.Seen{Term: witness.Term{Term: term, By: by}, Rev: 7}}
		if alone != "" {
			s.Alone = &witness.Alone{Term: term, By: alone}
		}
		return s
	}
	for _, tc := range []struct {
		st    witness.State
		self  string
		claim uint64
		want  bool
	}{
		{st(4, "a", ""), "b", 5, false},  // the follower, before anyone claimed
		{st(4, "a", ""), "a", 4, false},  // the leader, before anyone claimed
		{st(4, "a", "a"), "b", 5, true},  // the leader went alone first
		{st(5, "b", "b"), "a", 4, true},  // the follower took over first
		{st(5, "b", "b"), "b", 5, false}, // its own claim, answered late: claim again
		{st(4, "a", "a"), "a", 4, false}, // likewise for the leader
		{witness.State{}, "a", 1, false}, // no record yet
		{st(9, "a", ""), "b", 5, true},   // a newer term than the one to claim
	} {
		if got := conceded(tc.st, tc.self, tc.claim); got != tc.want {
			t.Errorf("conceded(%+v, %s, %d) = %v, want %v", tc.st, tc.self, tc.claim, got, tc.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	var l Latencies
	for i := 100; i >= 1; i-- {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0.001: time.Millisecond} {
		if got := l.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if Latencies(nil).Quantile(0.5) != 0 {
		t.Error("the quantile of nothing is not 0")
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP etcd_mvcc_put_total Total number of puts seen by this member.
# TYPE etcd_mvcc_put_total counter
etcd_mvcc_put_total 12
etcd_mvcc_put_total_other 99
grpc_server_handled_total{grpc_code="OK",grpc_method="Txn"} 3
grpc_server_handled_total{grpc_code="OK",grpc_method="Range key"} 4
process_resident_memory_bytes 5.0331648e+07
`
	got, err := parseMetrics(strings.NewReader(text), "etcd_mvcc_put_total", "grpc_server_handled_total", "process_resident_memory_bytes")
	if err != nil {
		t.Fatal(err)
	}
	if got["etcd_mvcc_put_total"] != 12 || got["grpc_server_handled_total"] != 7 || got["process_resident_memory_bytes"] != 50331648 {
		t.Errorf("got %v", got)
	}
	if _, err := parseMetrics(strings.NewReader(text), "etcd_mvcc_delete_total"); err == nil {
		t.Error("a missing series read as a value")
	}
}

// The picture is well-formed SVG and shows every measured value.
func TestWriteSVG(t *testing.T) {
	var b strings.Builder
	pts := []Point{{10, 12 * time.Millisecond, 30 * time.Millisecond}, {100, 40 * time.Millisecond, 95500 * time.Microsecond}, {1000, 210 * time.Millisecond, 640 * time.Millisecond}}
	if err := WriteSVG(&b, pts, "3 members & a test"); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(b.String()))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed: %v\n%s", err, b.String())
			}
			break
		}
	}
	for _, want := range []string{">12<", ">30<", ">95.5<", ">640<", ">1000<", "goal: p99 &lt; 500 ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the picture lacks %q", want)
		}
	}
}
