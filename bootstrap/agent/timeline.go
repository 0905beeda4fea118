package agent

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

// A take-over's phases, in the order they happen. Each is the moment the
// phase ended, on the machine's wall clock (not the config's test offset):
// a benchmark's clients on the same machine read the same clock, so they
// can put the agent's own record beside their first acknowledged write
// rather than guess where the time went (make bench, docs/results.md).
const (
	phaseLastProbeOK  = "last_probe_ok"      // the peer last answered
	phaseFirstFailed  = "first_probe_failed" // the first probe of the outage failed
	phaseDetected     = "detected"           // the probe that filled the detection window returned
	phaseDecided      = "decided"            // the table chose the take-over
	phaseKineStopped  = "kine_stopped"       // Kine, pointed at the old leader, is gone
	phasePromoteAsked = "promote_requested"  // pg_promote called (the inherited settings cleared)
	phasePromoted     = "promoted"           // pg_promote returned: the primary accepts writes
	phaseFenced       = "fenced"             // revisions moved past the old leader's
	phaseTermSaved    = "term_saved"         // the new term is durable
	phaseKineReady    = "kine_ready"         // Kine, pointed here, accepts connections
	phaseAddress      = "address_held"       // the pair's address is here
	phaseSlot         = "slot_ensured"       // the old leader's slot exists (after Kine: not on the first write's path)
)

// actionPhase names the phase an action's end closes.
var actionPhase = map[fsm.ActionKind]string{
	fsm.KineStop:   phaseKineStopped,
	fsm.Promote:    phasePromoted,
	fsm.Fence:      phaseFenced,
	fsm.NewTerm:    phaseTermSaved,
	fsm.EnsureSlot: phaseSlot,
	fsm.KineLocal:  phaseAddress,
}

// timeline is one take-over's record; nil records nothing (every other
// decision), so that marking costs nothing outside a promotion.
type timeline struct {
	marks []mark
}

type mark struct {
	phase string
	at    time.Time
}

// newTimeline starts a record for d if d promotes this node.
func newTimeline(d fsm.Decision, lastOK, firstFailed, detected time.Time) *timeline {
	promotes := false
	for _, act := range d.Actions {
		promotes = promotes || act.Kind == fsm.Promote
	}
	if !promotes {
		return nil
	}
	t := &timeline{}
	t.mark(phaseLastProbeOK, lastOK)
	t.mark(phaseFirstFailed, firstFailed)
	t.mark(phaseDetected, detected)
	t.mark(phaseDecided, time.Now())
	return t
}

// mark records that phase ended at at; zero times (a hand-over has no
// failed probe) and a nil timeline are ignored.
func (t *timeline) mark(phase string, at time.Time) {
	if t == nil || at.IsZero() {
		return
	}
	t.marks = append(t.marks, mark{phase, at})
}

// action marks the end of act, now.
func (t *timeline) action(kind fsm.ActionKind) {
	if p, ok := actionPhase[kind]; ok {
		t.mark(p, time.Now())
	}
}

// origin is the first mark's time: offsets are counted from it.
func (t *timeline) origin() time.Time { return t.marks[0].at }

// attrs are the log line's fields: the origin as a timestamp, then each
// phase as milliseconds after it.
func (t *timeline) attrs(term uint64) []any {
	out := []any{"term", term, "origin", t.origin().UTC().Format(time.RFC3339Nano)}
	for _, m := range t.marks {
		out = append(out, m.phase, fmt.Sprintf("%.1f", float64(m.at.Sub(t.origin()).Microseconds())/1000))
	}
	return out
}

// report logs the record as one line ("failover timeline") and sets the
// phase gauges.
func (t *timeline) report(log *slog.Logger, met *metrics, term uint64) {
	if t == nil || len(t.marks) == 0 {
		return
	}
	log.Info("failover timeline", t.attrs(term)...)
	for _, m := range t.marks {
		met.failoverPhase.WithLabelValues(m.phase).Set(m.at.Sub(t.origin()).Seconds())
	}
}
