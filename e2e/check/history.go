package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/twonode-edge/twonode/e2e/workload"
)

// History is what the checks of one run need, as the fault matrix
// records it once the run is over.
type History struct {
	Scenario string `json:"scenario"`
	// Note says, in a file of testdata/, what the recording shows.
	Note  string    `json:"note,omitempty"`
	Fault time.Time `json:"fault"`
	// Final is the state read at the end (key -> value; an absent key is
	// deleted or was never created), as workload.ReadFinal reads it; its
	// reads are among Ops.
	Final map[string]string `json:"final"`
	// Archive: the ConfigMap writes found in both nodes' archives (see
	// workload.DecodeStored); ArchivedRows counts every row, other
	// objects' included.
	Archive      []workload.KV `json:"archive,omitempty"`
	ArchivedRows int           `json:"archived_rows"`
	Archives     []ArchiveFile `json:"archives,omitempty"`
	// Watch: what the matrix's watch checker was given (see
	// workload.WatchStep).
	Watch   []workload.WatchStep `json:"watch,omitempty"`
	Samples Samples              `json:"samples"`
	Ops     []workload.Op        `json:"ops"`
}

// ArchiveSet is h.Archive as the lost-write check takes it.
func (h History) ArchiveSet() workload.Archive {
	a := workload.Archive{}
	for _, kv := range h.Archive {
		a.Add(kv)
	}
	return a
}

// Lost is the lost-write accounting (workload.Lost) of h.
func (h History) Lost() workload.LostReport {
	return workload.Lost(h.Final, h.Ops, h.ArchiveSet())
}

// WatchVerdict judges h.Watch again (workload.JudgeWatch): the counts of
// what went backwards.
func (h History) WatchVerdict() workload.WatchReport {
	return workload.JudgeWatch(h.Watch)
}

// Linearizability is the verdict of History.Linearizability.
type Linearizability struct {
	Whole workload.LinResult
	// Branches: when the whole history is not linearizable, the losers'
	// branches that may explain it (none: nothing does, the run fails).
	Branches []Branch
	// Split: the history without those branches (nil without branches).
	Split *Split
}

// Split is what the history without the losers' branches gave; its JSON
// is the matrix's SPLIT line.
type Split struct {
	Branches     int                `json:"branches"`
	SetAside     int                `json:"ops_set_aside"`
	Linearizable bool               `json:"linearizable_without_branches"`
	Kept         []workload.Op      `json:"-"`
	Result       workload.LinResult `json:"-"`
}

// Linearizability checks the whole history; if it is not linearizable,
// it finds the losers' branches (one per archive; with no archived row,
// a deposed leader's, see Deposed) and checks the history without them
// (WithoutBranches), with opts.Timeout. err is only about writing the
// whole history's visualization (opts.VisualizePath).
func (h History) Linearizability(opts workload.CheckOptions) (Linearizability, error) {
	var v Linearizability
	var err error
	v.Whole, err = workload.CheckLinearizable(h.Ops, opts)
	if v.Whole.Linearizable() {
		return v, err
	}
	v.Branches = Branches(h.Archives, h.Samples)
	if b, ok := Deposed(h.Fault, h.Samples); h.ArchivedRows == 0 && ok {
		v.Branches = append(v.Branches, b)
	}
	if len(v.Branches) == 0 {
		return v, err
	}
	kept := WithoutBranches(h.Ops, h.ArchiveSet(), v.Branches, h.Samples.DBOf)
	res, _ := workload.CheckLinearizable(kept, workload.CheckOptions{Timeout: opts.Timeout})
	v.Split = &Split{Branches: len(v.Branches), SetAside: len(h.Ops) - len(kept), Linearizable: res.Linearizable(), Kept: kept, Result: res}
	return v, err
}

// Load reads a History saved by Save.
func Load(path string) (History, error) {
	var h History
	b, err := os.ReadFile(path)
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("check: %s: %w", path, err)
	}
	return h, nil
}

// Save writes h to path as JSON, one operation, sample and watch step a
// line (readable, and a diff of two shows what changed), with only the
// samples that changed (Samples.Changes).
func (h History) Save(path string) error {
	ops, samples, steps := h.Ops, h.Samples.Changes(), h.Watch
	h.Ops, h.Samples, h.Watch = nil, nil, nil
	head, err := json.Marshal(h)
	if err != nil {
		return err
	}
	// head ends `..."samples":null,"ops":null}`: the two lists replace it.
	tail := []byte(`"samples":null,"ops":null}`)
	if !bytes.HasSuffix(head, tail) {
		return fmt.Errorf("check: unexpected encoding of a history: %s", head)
	}
	var b bytes.Buffer
	b.Write(head[:len(head)-len(tail)])
	b.WriteByte('\n')
	if err := list(&b, "samples", samples); err != nil {
		return err
	}
	b.WriteString(",\n")
	if err := list(&b, "ops", ops); err != nil {
		return err
	}
	if len(steps) > 0 {
		b.WriteString(",\n")
		if err := list(&b, "watch", steps); err != nil {
			return err
		}
	}
	b.WriteString("}\n")
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// list writes "name":[ with one element a line, and the closing ].
func list[T any](b *bytes.Buffer, name string, items []T) error {
	fmt.Fprintf(b, "%q: [", name)
	for i, it := range items {
		e, err := json.Marshal(it)
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n  ")
		b.Write(e)
	}
	b.WriteString("\n]")
	return nil
}
