package check

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
	"github.com/twonode-edge/twonode/e2e/workload"
)

// want is the verdict a file of testdata/ holds next to its history.
type want struct {
	Linearizable    bool     `json:"linearizable"` // the whole history
	Branches        int      `json:"branches"`
	WithoutBranches bool     `json:"linearizable_without_branches"`
	SetAside        int      `json:"set_aside"` // operations
	Lost            int      `json:"lost"`      // acknowledged writes missing at the end
	Archived        int      `json:"archived"`  // of those, found in an archive
	Unexplained     int      `json:"unexplained"`
	Losers          []string `json:"losers"`
	// WatchClean: the recorded watch (History.Watch) went nowhere
	// backwards; nil: no watch recorded.
	WatchClean *bool `json:"watch_clean"`
}

func load(t *testing.T, path string) (History, want) {
	t.Helper()
	h, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		Want *want `json:"want"`
	}
	if err := json.Unmarshal(b, &w); err != nil || w.Want == nil {
		t.Fatalf("%s: no verdict to hold it to (%v)", path, err)
	}
	if len(h.Ops) == 0 || len(h.Samples) == 0 {
		t.Fatalf("%s: %d operations, %d samples", path, len(h.Ops), len(h.Samples))
	}
	return h, *w.Want
}

// TestRecorded judges each history of testdata/ (each recorded or
// reconstructed from a case the fault matrix met; its note says which) and
// holds the checks to the verdict the file gives.
func TestRecorded(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded histories: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			h, w := load(t, f)
			lost := h.Lost()
			if len(lost.Missing) != w.Lost || len(lost.Archived) != w.Archived || len(lost.Unexplained) != w.Unexplained {
				t.Errorf("lost %d, archived %d, unexplained %d; want %d, %d, %d",
					len(lost.Missing), len(lost.Archived), len(lost.Unexplained), w.Lost, w.Archived, w.Unexplained)
			}
			v, err := h.Linearizability(workload.CheckOptions{Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if v.Whole.Linearizable() != w.Linearizable {
				t.Errorf("the whole history linearizable: %v (%v), want %v", v.Whole.Linearizable(), v.Whole.Result, w.Linearizable)
			}
			if len(v.Branches) != w.Branches {
				t.Errorf("%d branches %+v, want %d", len(v.Branches), v.Branches, w.Branches)
			}
			if !w.Linearizable {
				switch {
				case v.Split == nil:
					t.Errorf("no branch explains the history")
				case v.Split.Linearizable != w.WithoutBranches || v.Split.SetAside != w.SetAside:
					t.Errorf("without the branches: linearizable %v, %d operations set aside; want %v, %d (kept: %v)",
						v.Split.Linearizable, v.Split.SetAside, w.WithoutBranches, w.SetAside, ids(v.Split.Kept))
				}
			}
			if w.WatchClean != nil {
				if len(h.Watch) == 0 {
					t.Error("no watch recorded")
				} else if r := h.WatchVerdict(); r.Clean() != *w.WatchClean {
					t.Errorf("watch clean: %v (%v), want %v", r.Clean(), r.Details, *w.WatchClean)
				}
			}
			var losers []string
			for n := range Losers(h.Archives, h.Samples) {
				losers = append(losers, n)
			}
			slices.Sort(losers)
			if !slices.Equal(losers, w.Losers) && !(len(losers) == 0 && len(w.Losers) == 0) {
				t.Errorf("losers %v, want %v", losers, w.Losers)
			}
		})
	}
}

func ids(ops []workload.Op) []int64 {
	var out []int64
	for _, op := range ops {
		out = append(out, op.ID)
	}
	return out
}

// TestBranchFollowsTheDatabase: in branch-through-other-server.json the
// refusal of op 3 came through b's API server from a's database (b's Kine
// wrote there, as the samples say). Without knowing where each Kine wrote,
// it stays in the history without the branches, and that history does not
// hold: what the fault matrix met before a3e9a07.
func TestBranchFollowsTheDatabase(t *testing.T) {
	h, _ := load(t, filepath.Join("testdata", "branch-through-other-server.json"))
	branches := Branches(h.Archives, h.Samples)
	kept := WithoutBranches(h.Ops, h.ArchiveSet(), branches, nil)
	if !slices.Contains(ids(kept), 3) {
		t.Fatalf("without the samples, op 3 was set aside all the same: kept %v", ids(kept))
	}
	res, _ := workload.CheckLinearizable(kept, workload.CheckOptions{Timeout: 5 * time.Second})
	if res.Linearizable() {
		t.Fatal("the history without the branches holds even with the refusal from a's database in it")
	}
	if kept = WithoutBranches(h.Ops, h.ArchiveSet(), branches, h.Samples.DBOf); slices.Contains(ids(kept), 3) {
		t.Fatalf("with the samples, op 3 stayed: kept %v", ids(kept))
	}
}

// TestDeletionSetsAsideNoRead: an archived deletion has no value, and no
// read that found nothing is set aside for it (deletion-names-revision.json's
// final read of k2, answered by the winner after the loser rejoined).
func TestDeletionSetsAsideNoRead(t *testing.T) {
	h, _ := load(t, filepath.Join("testdata", "deletion-names-revision.json"))
	kept := WithoutBranches(h.Ops, h.ArchiveSet(), Branches(h.Archives, h.Samples), h.Samples.DBOf)
	if !slices.Contains(ids(kept), 8) {
		t.Fatalf("the winner's NotFound read of k2 was set aside: kept %v", ids(kept))
	}
}

func TestSamples(t *testing.T) {
	h, _ := load(t, filepath.Join("testdata", "loser-without-archive.json"))
	ss := h.Samples
	at := func(s float64) time.Time { return ss[0].At.Add(time.Duration(s * float64(time.Second))) }
	if d := ss.DualLeader(); d != 3500*time.Millisecond {
		t.Errorf("dual leader %s, want 3.5 s", d)
	}
	if l := ss.Leader(); l != "a" {
		t.Errorf("leader %q", l)
	}
	if got := ss.BrokeBefore(at(5.5)); !got.Equal(at(1.5)) {
		t.Errorf("broke before 5.5 s: %s", got.Sub(ss[0].At))
	}
	if got := ss.Rejoined("b", at(1.0)); !got.Equal(at(8.0)) {
		t.Errorf("b rejoined %s", got.Sub(ss[0].At))
	}
	if db := ss.DBOf("b", at(2.0)); db != "b" {
		t.Errorf("b's Kine at 2 s wrote to %q", db)
	}
	if db := ss.DBOf("b", at(-1)); db != "" {
		t.Errorf("before the first sample: %q", db)
	}
	if s := ss[1]; !s.Is("a", fsm.LeaderAlone) || !s.Is("b", fsm.Leader, fsm.LeaderAlone) || s.Is("b", fsm.Leader) || !s.Dual() {
		t.Errorf("sample at 1.5 s: %+v", s)
	}
	if got := States(fsm.Leader, fsm.LeaderAlone); !slices.Equal(got, []string{"leader", "leader_alone"}) {
		t.Errorf("states %q", got)
	}
	if _, ok := Deposed(h.Fault, ss); ok {
		t.Error("a led before and after the fault, yet it was deposed")
	}
}

// TestSaveKeepsTheVerdict: a history saved with only the samples that
// changed is judged as the full one (a run's samples are every 100 ms).
func TestSaveKeepsTheVerdict(t *testing.T) {
	h, _ := load(t, filepath.Join("testdata", "branch-through-other-server.json"))
	var dense Samples
	for i, s := range h.Samples[:len(h.Samples)-1] {
		for at := s.At; at.Before(h.Samples[i+1].At); at = at.Add(100 * time.Millisecond) {
			s.At = at
			dense = append(dense, s)
		}
	}
	h.Samples = append(dense, h.Samples[len(h.Samples)-1])
	path := filepath.Join(t.TempDir(), "check.json")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Samples) >= len(h.Samples) || len(back.Ops) != len(h.Ops) || back.Fault != h.Fault || len(back.Archive) != 1 {
		t.Fatalf("saved %d of %d samples, %d of %d operations, fault %s, archive %v",
			len(back.Samples), len(h.Samples), len(back.Ops), len(h.Ops), back.Fault, back.Archive)
	}
	if back.Samples.DualLeader() != h.Samples.DualLeader() {
		t.Errorf("dual leader %s, was %s", back.Samples.DualLeader(), h.Samples.DualLeader())
	}
	for _, hh := range []History{h, back} {
		v, err := hh.Linearizability(workload.CheckOptions{Timeout: 5 * time.Second})
		if err != nil || v.Split == nil || !v.Split.Linearizable || v.Split.SetAside != 2 {
			t.Fatalf("%d samples: %+v %v", len(hh.Samples), v.Split, err)
		}
	}
}
