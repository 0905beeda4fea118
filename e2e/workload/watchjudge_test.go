package workload

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/watch"
)

func list(rv string) WatchStep { return WatchStep{Kind: StepList, RV: rv} }
func stream(i int, from string) WatchStep {
	return WatchStep{Kind: StepStream, Stream: i, RV: from}
}
func ev(i int, t watch.EventType, rv string) WatchStep {
	return WatchStep{Kind: StepEvent, Stream: i, Type: t, RV: rv, Name: "k"}
}

func TestJudgeWatch(t *testing.T) {
	for _, tc := range []struct {
		name                            string
		steps                           []WatchStep
		regressions, duplicates, behind int
		unparsable                      int
	}{
		{"in order, resumed", []WatchStep{list("10"), stream(0, "10"), ev(0, watch.Added, "11"), ev(0, watch.Modified, "12"),
			stream(1, "12"), ev(1, watch.Bookmark, "12"), ev(1, watch.Deleted, "14")}, 0, 0, 0, 0},
		{"a regression across a resume", []WatchStep{list("10"), stream(0, "10"), ev(0, watch.Added, "15"),
			stream(1, "15"), ev(1, watch.Modified, "13")}, 1, 0, 0, 0},
		{"an event delivered twice", []WatchStep{list("10"), stream(0, "10"), ev(0, watch.Added, "11"),
			stream(1, "10"), ev(1, watch.Added, "11")}, 0, 1, 0, 0},
		{"a relist behind", []WatchStep{list("10"), stream(0, "10"), ev(0, watch.Added, "20"), list("18"),
			stream(1, "18"), ev(1, watch.Added, "19")}, 0, 0, 1, 0},
		// A watch from "0" sends the current state first, in no order:
		// only what comes after it is compared, with its highest as the
		// baseline.
		{"the current state first", []WatchStep{stream(0, "0"), ev(0, watch.Added, "30"), ev(0, watch.Added, "12"),
			ev(0, watch.Modified, "31"), ev(0, watch.Modified, "29")}, 1, 0, 0, 0},
		{"a streaming list", []WatchStep{list("40"), {Kind: StepStream, Stream: 0, Initial: true}, ev(0, watch.Added, "35"), ev(0, watch.Added, "33"),
			{Kind: StepEvent, Stream: 0, Type: watch.Bookmark, RV: "41", Initial: true}, ev(0, watch.Modified, "41"), ev(0, watch.Modified, "42")}, 0, 1, 0, 0},
		{"not a number", []WatchStep{list("x"), stream(0, "1"), ev(0, watch.Added, "y")}, 0, 0, 0, 2},
	} {
		r := JudgeWatch(tc.steps)
		if r.Regressions != tc.regressions || r.Duplicates != tc.duplicates || r.ListBehind != tc.behind || r.Unparsable != tc.unparsable {
			t.Errorf("%s: regressions %d duplicates %d behind %d unparsable %d; want %d %d %d %d (%v)", tc.name,
				r.Regressions, r.Duplicates, r.ListBehind, r.Unparsable, tc.regressions, tc.duplicates, tc.behind, tc.unparsable, r.Details)
		}
	}
}

// judgedAgain: what the checker found while it ran is what JudgeWatch
// finds in its recorded steps.
func judgedAgain(t *testing.T, r WatchReport) {
	t.Helper()
	if len(r.Steps) == 0 {
		t.Fatal("no step recorded")
	}
	j := JudgeWatch(r.Steps)
	if j.Regressions != r.Regressions || j.Duplicates != r.Duplicates || j.ListBehind != r.ListBehind ||
		j.Unparsable != r.Unparsable || !slices.Equal(j.Details, r.Details) {
		t.Fatalf("judged again: %+v, while running: %d %d %d %d %v", j, r.Regressions, r.Duplicates, r.ListBehind, r.Unparsable, r.Details)
	}
}
