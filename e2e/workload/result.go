package workload

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/e2e/results"
)

// Result is the one-line summary a fault scenario prints for the report.
type Result struct {
	Scenario     string
	APIRTOms     *int64 // fault -> first acknowledged write invoked after it; nil: none (null)
	Acked        int    // acknowledged writes
	Lost         int    // acknowledged writes missing from the final state (LostReport.Missing)
	Archived     int    // of Lost, those found in the split-brain archive
	DualLeaderMs int64  // how long both nodes accepted writes (filled by the scenario)
	HARestoredMs *int64 // fault -> follower caught up and synchronous again (filled by the scenario); nil: null
	Linearizable bool
	// DualVIPms: how long the pair's address was on both nodes (filled by
	// the scenario); nil: the pair has none.
	DualVIPms *int64
	// VIPMoveMs: fault -> the address on the other node alone (filled by
	// the scenario); nil: it did not move.
	VIPMoveMs *int64
	// VIPRTOms: fault -> the first write sent after it and acknowledged
	// through the pair's address, as a kubeconfig naming it sees (filled
	// by the scenario); nil: none, or no address.
	VIPRTOms *int64
	// The control plane (filled by the scenario; nil: it did not run):
	// the longest time from the fault on that the controller manager's
	// and the scheduler's Leases went unrenewed (2 s undisturbed; at 10 s
	// the leader gives up), how often a component lost its Lease (a k3s
	// restart), and how long a Deployment created after the fault took to
	// get its ReplicaSet and a Pod judged by the scheduler.
	CMRenewGapMs, SchedRenewGapMs *int64
	LeaseLosses                   *int
	ControllersMs                 *int64
}

// NewResult fills a Result from a run's history, the fault time, the lost
// check and the linearizability check; the scenario adds DualLeaderMs and
// HARestoredMs.
func NewResult(scenario string, ops []Op, fault time.Time, lost LostReport, lin LinResult) Result {
	return Result{
		Scenario:     scenario,
		APIRTOms:     APIRTO(ops, fault),
		Acked:        len(Acked(ops)),
		Lost:         len(lost.Missing),
		Archived:     len(lost.Archived),
		Linearizable: lin.Linearizable(),
	}
}

// OK reports whether the scenario passed the workload's checks: every lost
// write is archived, and the history is linearizable.
func (r Result) OK() bool { return r.Lost == r.Archived && r.Linearizable }

// Line returns exactly
//
//	RESULT {"table":"fault-matrix","scenario":"<name>","api_rto_ms":<n or null>,"acked":<n>,"lost":<n>,"archived":<n>,"dual_leader_ms":<n>,"ha_restored_ms":<n or null>,"linearizable":true|false,"dual_vip_ms":<n or null>,"vip_move_ms":<n or null>,"vip_rto_ms":<n or null>,"cm_renew_gap_ms":<n or null>,"sched_renew_gap_ms":<n or null>,"lease_losses":<n or null>,"controllers_ms":<n or null>}
//
// without a newline (results.Write): the format, the address's and
// the control plane's figures added at the end. The field order is the
// struct's below (encoding/json keeps declaration order); the scenario
// name is JSON-escaped.
func (r Result) Line() string {
	var b strings.Builder
	err := results.Write(&b, results.FaultMatrix, r.Scenario, struct {
		APIRTOms     *int64 `json:"api_rto_ms"`
		Acked        int    `json:"acked"`
		Lost         int    `json:"lost"`
		Archived     int    `json:"archived"`
		DualLeaderMs int64  `json:"dual_leader_ms"`
		HARestoredMs *int64 `json:"ha_restored_ms"`
		Linearizable bool   `json:"linearizable"`
		DualVIPms    *int64 `json:"dual_vip_ms"`
		VIPMoveMs    *int64 `json:"vip_move_ms"`
		VIPRTOms     *int64 `json:"vip_rto_ms"`
		CMRenewGap   *int64 `json:"cm_renew_gap_ms"`
		SchedRenew   *int64 `json:"sched_renew_gap_ms"`
		LeaseLosses  *int   `json:"lease_losses"`
		Controllers  *int64 `json:"controllers_ms"`
	}{r.APIRTOms, r.Acked, r.Lost, r.Archived, r.DualLeaderMs, r.HARestoredMs, r.Linearizable, r.DualVIPms, r.VIPMoveMs, r.VIPRTOms,
		r.CMRenewGapMs, r.SchedRenewGapMs, r.LeaseLosses, r.ControllersMs})
	if err != nil { // cannot happen: only numbers and bools, to a strings.Builder
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// PrintResult writes r.Line() and a newline to w.
func PrintResult(w io.Writer, r Result) error {
	_, err := fmt.Fprintln(w, r.Line())
	return err
}

// Ms converts a duration to the *int64 milliseconds of a nullable field.
func Ms(d time.Duration) *int64 {
	ms := d.Milliseconds()
	return &ms
}
