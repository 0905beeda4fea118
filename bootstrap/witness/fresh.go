package witness

import "context"

// Claimer is the one call ClaimFresh needs (*Client; the agent's
// simulation and the fleet's timing wrap their own).
type Claimer interface {
	Claim(ctx context.Context, from State, term uint64, held Lease) (bool, State, Lease, error)
}

// ClaimFresh claims term from what self last read (from). A swap refused
// while the answer shows nobody ahead of self was refused only because
// from was stale (a steady node's view is one member's copy, up to a
// healthy read's age old): the answer is the witness's own state, so it
// claims once more, at once, from that answer rather than a tick later.
// Refused twice with nobody ahead means an earlier claim of self's, whose
// answer was lost, landed in between; the caller's next attempt is
// idempotent.
func ClaimFresh(ctx context.Context, c Claimer, self string, from State, term uint64, held Lease) (bool, State, Lease, error) {
	won, st, l, err := c.Claim(ctx, from, term, held)
	if err == nil && !won && !st.Ahead(self, term) {
		won, st, l, err = c.Claim(ctx, st, term, held)
	}
	return won, st, l, err
}
