package agent

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

// A promotion logs one "failover timeline" line with every phase, in the
// order the phases happen, each no earlier than the one before.
func TestPromotionLogsItsTimeline(t *testing.T) {
	r := followerRig(t)
	var buf bytes.Buffer
	r.a.log = slog.New(slog.NewTextHandler(&buf, nil))
	r.tick(1) // the peer answers: the last good probe
	r.peer.up, r.pgUp = false, false
	if s := r.tick(3); s != fsm.LeaderAlone {
		t.Fatalf("state %s after 3 failed probes", s)
	}
	var line string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, `msg="failover timeline"`) {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no timeline logged:\n%s", buf.String())
	}
	want := []string{phaseLastProbeOK, phaseFirstFailed, phaseDetected, phaseDecided, phaseKineStopped,
		phasePromoteAsked, phasePromoted, phaseFenced, phaseTermSaved, phaseKineReady, phaseAddress, phaseSlot}
	prev, at := -1.0, -1
	for _, p := range want {
		i := strings.Index(line, " "+p+"=")
		if i < 0 || i < at {
			t.Fatalf("phase %s missing or out of order in %s", p, line)
		}
		at = i
		v := strings.Fields(line[i+len(p)+2:])[0]
		ms, err := strconv.ParseFloat(strings.Trim(v, `"`), 64)
		if err != nil || ms < prev {
			t.Fatalf("phase %s at %q, before the previous one (%.1f ms): %s", p, v, prev, line)
		}
		prev = ms
	}
	if !strings.Contains(line, "term=4") {
		t.Fatalf("the timeline does not name the new term: %s", line)
	}
}

// Decisions that promote nothing record nothing, at no cost.
func TestNoTimelineWithoutAPromotion(t *testing.T) {
	r0 := time.Now()
	var tl *timeline
	tl.mark(phaseDecided, r0)
	tl.action(fsm.KineStop)
	if newTimeline(fsm.Decision{Actions: []fsm.Action{{Kind: fsm.KinePeer}}}, r0, r0, r0) != nil {
		t.Fatal("a decision without Promote started a timeline")
	}
}
