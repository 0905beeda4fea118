package workload

import (
	"fmt"

	"k8s.io/apimachinery/pkg/watch"
)

// WatchStep is one thing the WatchChecker's reflector was given, in the
// order given: a list, the start of a watch stream, or one event of a
// stream (errors aside). WatchReport.Steps records them and JudgeWatch
// judges them again, as the checker did while it ran: a recorded watch is
// a test case.
type WatchStep struct {
	Kind   string `json:"kind"`             // StepList, StepStream or StepEvent
	Stream int    `json:"stream,omitempty"` // stream, event: the stream's index in WatchReport.Streamed
	// RV: a list's resourceVersion, the one a stream started from, or an
	// event's object's.
	RV string `json:"rv"`
	// Initial: a stream that is a streaming list (sendInitialEvents); an
	// event that is the bookmark ending its initial events.
	Initial  bool            `json:"initial,omitempty"`
	Type     watch.EventType `json:"type,omitempty"` // event
	Name     string          `json:"name,omitempty"` // event: the object's
	Endpoint int             `json:"endpoint"`
}

// The kinds of WatchStep.
const (
	StepList   = "list"
	StepStream = "stream"
	StepEvent  = "event"
)

// JudgeWatch judges a recorded watch (WatchReport.Steps) as the checker
// does: the returned report has only Regressions, Duplicates, ListBehind,
// Unparsable and Details set.
func JudgeWatch(steps []WatchStep) WatchReport {
	var rep WatchReport
	j := newWatchJudge(&rep)
	for _, s := range steps {
		j.step(s)
	}
	return rep
}

// watchJudge checks that resourceVersions never go backwards: each event
// above the baseline, which is the last list's or the last compared
// event's; a relist may not be below what was delivered before. A stream
// that begins with the current state (a streaming list, until its
// initial-events bookmark, or a watch from resourceVersion "" or "0",
// until its first event that is not ADDED, as the reflector assumes)
// sends it as ADDED events in no resourceVersion order: those are not
// compared, and the highest of them (or the bookmark) is the baseline
// after them.
type watchJudge struct {
	rep     *WatchReport
	maxRV   int64
	streams map[int]*judgedStream
}

type judgedStream struct {
	endpoint int
	startRV  string
	initial  bool  // a streaming list
	phase    bool  // still in the current state's events
	phaseMax int64 // the highest resourceVersion among them
}

func newWatchJudge(rep *WatchReport) *watchJudge {
	return &watchJudge{rep: rep, streams: map[int]*judgedStream{}}
}

func (j *watchJudge) detail(format string, args ...any) {
	j.rep.Details = append(j.rep.Details, fmt.Sprintf(format, args...))
}

func (j *watchJudge) step(s WatchStep) {
	switch s.Kind {
	case StepList:
		j.listAt(s.RV)
	case StepStream:
		j.streams[s.Stream] = &judgedStream{endpoint: s.Endpoint, startRV: s.RV, initial: s.Initial,
			phase: s.Initial || s.RV == "" || s.RV == "0"}
		if s.Initial {
			j.maxRV = 0 // the baseline comes with the initial-events bookmark
		}
	case StepEvent:
		j.event(s)
	}
}

// listAt makes a list at rvs the baseline: events after it must be above
// it.
func (j *watchJudge) listAt(rvs string) {
	rv, ok := parseRV(rvs)
	if !ok {
		j.rep.Unparsable++
		j.detail("list resourceVersion %q is not an integer", rvs)
		return
	}
	if rv < j.maxRV {
		j.rep.ListBehind++
		j.detail("relist at resourceVersion %d, below %d delivered before", rv, j.maxRV)
	}
	j.maxRV = rv
}

func (j *watchJudge) event(s WatchStep) {
	st := j.streams[s.Stream]
	if st == nil {
		st = &judgedStream{endpoint: s.Endpoint}
		j.streams[s.Stream] = st
	}
	rv, ok := parseRV(s.RV)
	if !ok {
		j.rep.Unparsable++
		j.detail("stream %d: %s %s resourceVersion %q is not an integer", s.Stream, s.Type, s.Name, s.RV)
	}
	if st.phase && st.initial {
		if s.Initial {
			st.phase = false
			if ok {
				j.listAt(s.RV)
			}
		}
		return
	}
	if !ok {
		return
	}
	if st.phase {
		if s.Type == watch.Added {
			st.phaseMax = max(st.phaseMax, rv)
			return
		}
		st.phase = false
		j.maxRV = st.phaseMax
	}
	switch {
	case rv < j.maxRV:
		j.rep.Regressions++
		j.detail("stream %d (endpoint %d, from rv %s): %s %s at resourceVersion %d after %d",
			s.Stream, st.endpoint, st.startRV, s.Type, s.Name, rv, j.maxRV)
	case rv == j.maxRV && s.Type != watch.Bookmark:
		j.rep.Duplicates++
		j.detail("stream %d (endpoint %d, from rv %s): %s %s at resourceVersion %d delivered before",
			s.Stream, st.endpoint, st.startRV, s.Type, s.Name, rv)
	default:
		j.maxRV = rv
	}
}
