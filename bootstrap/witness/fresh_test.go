package witness

import (
	"context"
	"testing"
)

// answers is a Claimer that refuses with the states it is given, in turn.
type answers struct {
	states []State
	froms  []State
}

func (a *answers) Claim(_ context.Context, from State, _ uint64, _ Lease) (bool, State, Lease, error) {
	a.froms = append(a.froms, from)
	st := a.states[0]
	a.states = a.states[1:]
	return false, st, Lease{}, nil
}

func TestClaimFresh(t *testing.T) {
	stale := State{Term: Seen{Term: Term{Term: 2, By: "a"}, Rev: 5}}
	moved := State{Term: Seen{Term: Term{Term: 2, By: "a"}, Rev: 9}} // nobody ahead of a claiming 2: a's view was stale
	ahead := State{Term: Seen{Term: Term{Term: 3, By: "b"}, Rev: 9}}
	a := &answers{states: []State{moved, moved}}
	if _, st, _, _ := ClaimFresh(context.Background(), a, "a", stale, 2, Lease{ID: 1}); len(a.froms) != 2 || a.froms[1] != moved || st != moved {
		t.Errorf("a swap refused with nobody ahead: claimed from %+v, answered %+v; want a second claim from the answer", a.froms, st)
	}
	a = &answers{states: []State{ahead}}
	if won, _, _, _ := ClaimFresh(context.Background(), a, "a", stale, 2, Lease{ID: 1}); won || len(a.froms) != 1 {
		t.Errorf("a swap refused with b ahead: %d claims, won %v; want one, lost", len(a.froms), won)
	}
}
