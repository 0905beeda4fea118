package postgres

import (
	"fmt"
	"slices"
	"testing"
)

// fakeRows serves divergentWalk's local side from a slice (ascending ids)
// and counts the rows it handed out.
type fakeRows struct {
	rows []printed
	read int
}

func (f *fakeRows) below(below int64, n int) ([]printed, error) {
	var out []printed
	for i := len(f.rows) - 1; i >= 0 && len(out) < n; i-- {
		if f.rows[i].id < below {
			out = append(out, f.rows[i])
		}
	}
	f.read += len(out)
	return out, nil
}

func winnerOf(rows map[int64]string) func([]int64) (map[int64]string, error) {
	return func(ids []int64) (map[int64]string, error) {
		got := map[int64]string{}
		for _, id := range ids {
			if p, ok := rows[id]; ok {
				got[id] = p
			}
		}
		return got, nil
	}
}

// A crashed leader with a long term: 50,000 rows both nodes have, then the
// rows only it had, one of them in flight below the winner's newest row.
// The walk finds exactly those and reads no further down than the margin.
func TestDivergentWalkReadsOnlyWhatCanDiffer(t *testing.T) {
	local := &fakeRows{}
	winner := map[int64]string{}
	for id := int64(1); id <= 50000; id++ {
		p := fmt.Sprint("row", id)
		local.rows = append(local.rows, printed{id, p})
		if id != 49990 { // committed here after the winner's promotion
			winner[id] = p
		}
	}
	for id := int64(50001); id <= 50005; id++ {
		local.rows = append(local.rows, printed{id, fmt.Sprint("row", id)})
	}
	winner[50003] = "the winner's own row 50003" // same id, other content
	got, err := divergentWalk(local.below, winnerOf(winner))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{49990, 50001, 50002, 50003, 50004, 50005}; !slices.Equal(got, want) {
		t.Fatalf("divergent %v, want %v", got, want)
	}
	if max := archiveLookback + 2*archiveBatch; local.read > max {
		t.Fatalf("read %d rows of 50,005, want at most %d (the margin below the newest common row)", local.read, max)
	}
	t.Logf("read %d rows of 50,005", local.read)
}

// Rows the winner lacks far below the newest common row are ones its
// compaction removed after the promotion, not writes it missed.
func TestDivergentWalkStopsAtTheMargin(t *testing.T) {
	local := &fakeRows{}
	winner := map[int64]string{}
	for id := int64(1); id <= 3*archiveLookback; id++ {
		local.rows = append(local.rows, printed{id, "same"})
		if id > 10 {
			winner[id] = "same" // ids 1-10: compacted on the winner
		}
	}
	got, err := divergentWalk(local.below, winnerOf(winner))
	if err != nil || len(got) != 0 {
		t.Fatalf("divergent %v (%v), want none", got, err)
	}
}

// Without the winner (unreachable, or no table yet) every row is kept.
func TestDivergentWalkWithoutTheWinnerKeepsEveryRow(t *testing.T) {
	local := &fakeRows{}
	for id := int64(1); id <= 4500; id++ {
		local.rows = append(local.rows, printed{id, "x"})
	}
	got, err := divergentWalk(local.below, nil)
	if err != nil || len(got) != 4500 || got[0] != 1 || got[4499] != 4500 {
		t.Fatalf("kept %d rows (%v), want all 4,500 in order", len(got), err)
	}
}
