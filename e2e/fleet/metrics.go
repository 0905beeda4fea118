package fleet

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The etcd series the simulation reads (etcd v3.7; every member applies
// every write, so each member's counters count them all):
const (
	// Keys written and deleted by the store: a witness write, whatever
	// request carried it (a swap's puts, a lease's alone record expiring).
	// etcd_mvcc_txn_total is no measure of writes: it counts read-only
	// transactions too, and a Read is one.
	mPuts    = "etcd_mvcc_put_total"
	mDeletes = "etcd_mvcc_delete_total"
	// Ranges served by this member: two per Read.
	mRanges = "etcd_mvcc_range_total"
	// Raft entries committed: every write, lease grants and revocations
	// included, and etcd's own entries (an election's empty one).
	mProposals = "etcd_server_proposals_committed_total"
	mGrants    = "etcd_debugging_lease_granted_total"
	mLeader    = "etcd_server_is_leader"
	mCPU       = "process_cpu_seconds_total"
	mRSS       = "process_resident_memory_bytes"
)

var allMetrics = []string{mPuts, mDeletes, mRanges, mProposals, mGrants, mLeader, mCPU, mRSS}

// parseMetrics reads Prometheus' text format and sums the named series
// over their labels. A name that is absent is an error: a renamed metric
// must not read as zero writes.
func parseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if !want[name] {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("no series %s", n)
		}
	}
	return out, nil
}

// delta is after less before, per series, for one member.
func delta(before, after map[string]float64, name string) float64 { return after[name] - before[name] }

// leader is the index of the member that reported itself leader, -1 if
// none did.
func leader(ms []map[string]float64) int {
	for i, m := range ms {
		if m[mLeader] == 1 {
			return i
		}
	}
	return -1
}
