package workload

import (
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvInput is a porcupine operation input.
type kvInput struct {
	Kind  Kind
	Key   string
	Value string // create, update
	IfRV  string // update, delete
}

// kvOutput is a porcupine operation output.
type kvOutput struct {
	Outcome Outcome
	Reason  string
	Value   string // get ok
	RV      string // create/update/get ok
}

// kvState is the model's state of one key (the model is partitioned by
// key). RV "" while Exists means "some resourceVersion we have not seen":
// the object was written by an operation whose outcome is unknown, so its
// resourceVersion was never returned; the next read binds it.
type kvState struct {
	Exists bool
	Value  string
	RV     string
}

// Model is the porcupine model of a set of ConfigMaps as the Kubernetes
// API serves them, partitioned by key:
//
//	create(k, v)          ok iff k is absent; fails AlreadyExists iff present
//	update(k, v, if rv)   ok iff k exists with resourceVersion rv; fails
//	                      Conflict iff it exists with another, NotFound iff absent
//	delete(k, if rv)      the same preconditions as update
//	get(k)                ok (value, rv) iff k holds them; NotFound iff absent
//
// An operation with an unknown outcome is given an infinite completion
// time by CheckLinearizable (porcupine may linearize it anywhere after its
// invocation, including after everything else, which is the same as "it
// never happened"); the model applies it if its precondition holds at that
// point. Definite failures with other reasons are no-ops that say nothing.
func Model() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			parts := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range history {
				k := op.Input.(kvInput).Key
				if _, ok := parts[k]; !ok {
					keys = append(keys, k)
				}
				parts[k] = append(parts[k], op)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, parts[k])
			}
			return out
		},
		Init: func() interface{} { return kvState{} },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			return step(state.(kvState), input.(kvInput), output.(kvOutput))
		},
		Hash: func(state interface{}) uint64 {
			s := state.(kvState)
			h := fnv.New64a()
			fmt.Fprintf(h, "%t\x00%s\x00%s", s.Exists, s.Value, s.RV)
			return h.Sum64()
		},
		DescribeOperation: func(input, output interface{}) string {
			in, out := input.(kvInput), output.(kvOutput)
			var call string
			switch in.Kind {
			case KindCreate:
				call = fmt.Sprintf("create(%s, %s)", in.Key, in.Value)
			case KindUpdate:
				call = fmt.Sprintf("update(%s, %s, if rv=%s)", in.Key, in.Value, in.IfRV)
			case KindDelete:
				call = fmt.Sprintf("delete(%s, if rv=%s)", in.Key, in.IfRV)
			default:
				call = fmt.Sprintf("get(%s)", in.Key)
			}
			switch {
			case out.Outcome == OK && in.Kind == KindGet:
				return fmt.Sprintf("%s -> %s rv=%s", call, out.Value, out.RV)
			case out.Outcome == OK && out.RV != "":
				return fmt.Sprintf("%s -> ok rv=%s", call, out.RV)
			case out.Outcome == OK:
				return call + " -> ok"
			case out.Outcome == Failed:
				return fmt.Sprintf("%s -> %s", call, out.Reason)
			default:
				return fmt.Sprintf("%s -> unknown (%s)", call, out.Reason)
			}
		},
		DescribeState: func(state interface{}) string {
			s := state.(kvState)
			switch {
			case !s.Exists:
				return "absent"
			case s.RV == "":
				return fmt.Sprintf("%s rv=?", s.Value)
			default:
				return fmt.Sprintf("%s rv=%s", s.Value, s.RV)
			}
		},
	}
}

func step(s kvState, in kvInput, out kvOutput) (bool, kvState) {
	// matches: the resourceVersion precondition holds (an unseen RV can be
	// anything; the real server's answer tells).
	matches := s.Exists && (s.RV == "" || s.RV == in.IfRV)
	conflicts := s.Exists && (s.RV == "" || s.RV != in.IfRV)
	switch out.Outcome {
	case Unknown:
		switch in.Kind {
		case KindCreate:
			if !s.Exists {
				return true, kvState{Exists: true, Value: in.Value}
			}
		case KindUpdate:
			if matches {
				return true, kvState{Exists: true, Value: in.Value}
			}
		case KindDelete:
			if matches {
				return true, kvState{}
			}
		}
		return true, s // did not apply (its precondition failed), or a read
	case OK:
		switch in.Kind {
		case KindCreate:
			return !s.Exists, kvState{Exists: true, Value: in.Value, RV: out.RV}
		case KindUpdate:
			return matches, kvState{Exists: true, Value: in.Value, RV: out.RV}
		case KindDelete:
			return matches, kvState{}
		case KindGet:
			if !s.Exists || s.Value != out.Value || (s.RV != "" && s.RV != out.RV) {
				return false, s
			}
			return true, kvState{Exists: true, Value: s.Value, RV: out.RV}
		}
	case Failed:
		switch {
		case out.Reason == ReasonNotFound:
			return !s.Exists, s
		case out.Reason == ReasonAlreadyExists && in.Kind == KindCreate:
			return s.Exists, s
		case out.Reason == ReasonConflict && (in.Kind == KindUpdate || in.Kind == KindDelete):
			return conflicts, s
		}
		return true, s
	}
	return false, s
}

// informative reports whether op belongs in the porcupine history: reads
// with unknown outcome and definite failures the model cannot interpret
// say nothing about the state and only slow the search.
func informative(op Op) bool {
	switch op.Outcome {
	case Unknown:
		return op.IsWrite()
	case Failed:
		switch op.Reason {
		case ReasonNotFound:
			return true
		case ReasonAlreadyExists:
			return op.Kind == KindCreate
		case ReasonConflict:
			return op.Kind == KindUpdate || op.Kind == KindDelete
		}
		return false
	}
	return op.Outcome == OK
}

// ToPorcupine converts a history: times in nanoseconds since the first
// invocation; an unknown outcome completes at the end of the history (after
// every other timestamp). Each client's operations after an unknown one
// get a new porcupine client id (a client that gave up on an operation goes
// on while it may still be in flight, as a new Jepsen process would), so
// the visualization never overlaps two operations of one id.
func ToPorcupine(ops []Op) []porcupine.Operation {
	var kept []Op
	for _, op := range ops {
		if informative(op) {
			kept = append(kept, op)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Call.Before(kept[j].Call) })
	if len(kept) == 0 {
		return nil
	}
	epoch := kept[0].Call
	var end int64
	for _, op := range kept {
		if t := op.Return.Sub(epoch).Nanoseconds(); t > end {
			end = t
		}
		if t := op.Call.Sub(epoch).Nanoseconds(); t > end {
			end = t
		}
	}
	end++

	type proc struct{ client, gen int }
	gen := map[int]int{}
	ids := map[proc]int{}
	out := make([]porcupine.Operation, 0, len(kept))
	for _, op := range kept {
		p := proc{op.Client, gen[op.Client]}
		id, ok := ids[p]
		if !ok {
			id = len(ids)
			ids[p] = id
		}
		ret := op.Return.Sub(epoch).Nanoseconds()
		if op.Outcome == Unknown {
			ret = end
			gen[op.Client]++
		}
		out = append(out, porcupine.Operation{
			ClientId: id,
			Input:    kvInput{Kind: op.Kind, Key: op.Key, Value: op.Value, IfRV: op.IfRV},
			Call:     op.Call.Sub(epoch).Nanoseconds(),
			Output:   kvOutput{Outcome: op.Outcome, Reason: op.Reason, Value: op.OutValue, RV: op.OutRV},
			Return:   ret,
			Metadata: fmt.Sprintf("op %d client %d endpoint %d", op.ID, op.Client, op.Endpoint),
		})
	}
	return out
}

// CheckOptions tunes CheckLinearizable.
type CheckOptions struct {
	// Timeout bounds the search (0: none). On timeout the result is
	// porcupine.Unknown, which Linearizable reports as false.
	Timeout time.Duration
	// VisualizePath, if set, is where porcupine's HTML visualization is
	// written when the result is not Ok.
	VisualizePath string
	// AlwaysVisualize writes the visualization even when the result is Ok.
	AlwaysVisualize bool
}

// LinResult is the outcome of CheckLinearizable.
type LinResult struct {
	Result     porcupine.CheckResult // Ok, Illegal or Unknown (timed out)
	Ops        int                   // operations in the checked history
	Unknown    int                   // of those, writes with unknown outcome
	Elapsed    time.Duration
	Visualized string                      // path of the visualization, if written
	Info       porcupine.LinearizationInfo // only with VisualizePath
}

// Linearizable reports whether the check proved linearizability.
func (r LinResult) Linearizable() bool { return r.Result == porcupine.Ok }

// CheckLinearizable checks ops (from any number of clients, with
// ReadFinal's reads if recorded) against Model. err is only about writing
// the visualization.
func CheckLinearizable(ops []Op, opts CheckOptions) (LinResult, error) {
	hist := ToPorcupine(ops)
	res := LinResult{Ops: len(hist)}
	for _, op := range ops {
		if op.IsWrite() && op.Outcome == Unknown {
			res.Unknown++
		}
	}
	start := time.Now()
	if opts.VisualizePath != "" {
		res.Result, res.Info = porcupine.CheckOperationsVerbose(Model(), hist, opts.Timeout)
	} else {
		res.Result = porcupine.CheckOperationsTimeout(Model(), hist, opts.Timeout)
	}
	res.Elapsed = time.Since(start)
	if opts.VisualizePath != "" && (opts.AlwaysVisualize || res.Result != porcupine.Ok) {
		if err := porcupine.VisualizePath(Model(), res.Info, opts.VisualizePath); err != nil {
			return res, fmt.Errorf("workload: visualization: %w", err)
		}
		res.Visualized = opts.VisualizePath
	}
	return res, nil
}
