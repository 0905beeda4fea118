package workload

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

func check(t *testing.T, h *history) LinResult {
	t.Helper()
	res, err := CheckLinearizable(h.ops, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestLinearizableHistoryAccepted(t *testing.T) {
	h := newHistory()
	h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
	h.op(1, KindCreate, "a", "x", "", 5, 15, Failed, ReasonAlreadyExists, "")
	h.op(1, KindGet, "a", "a1", "", 16, 20, OK, "", "1")
	// Concurrent updates from the same version: one wins, one conflicts.
	h.op(0, KindUpdate, "a", "a2", "1", 30, 50, OK, "", "4")
	h.op(1, KindUpdate, "a", "a3", "1", 31, 49, Failed, ReasonConflict, "")
	// A read concurrent with the update may see either version.
	h.op(2, KindGet, "a", "a1", "", 35, 45, OK, "", "1")
	h.op(2, KindGet, "a", "a2", "", 60, 61, OK, "", "4")
	h.op(0, KindDelete, "a", "", "4", 70, 80, OK, "", "")
	h.op(1, KindGet, "a", "", "", 90, 91, Failed, ReasonNotFound, "")
	h.op(1, KindUpdate, "a", "a4", "4", 92, 93, Failed, ReasonNotFound, "")
	// Another key, independent partition.
	h.op(3, KindCreate, "b", "b1", "", 0, 100, OK, "", "2")
	h.op(3, KindGet, "b", "b1", "", 101, 102, OK, "", "2")
	if res := check(t, h); !res.Linearizable() || res.Ops != 12 {
		t.Fatalf("got %s over %d ops, want Ok over 12", res.Result, res.Ops)
	}
}

// TestStaleReadRejected: a read that returns the value before an update
// acknowledged before the read began is not linearizable; the HTML
// visualization is written.
func TestStaleReadRejected(t *testing.T) {
	h := newHistory()
	h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
	h.op(0, KindUpdate, "a", "a2", "1", 20, 30, OK, "", "2")
	h.op(1, KindGet, "a", "a1", "", 40, 50, OK, "", "1")
	vis := filepath.Join(t.TempDir(), "lin.html")
	res, err := CheckLinearizable(h.ops, CheckOptions{VisualizePath: vis})
	if err != nil {
		t.Fatal(err)
	}
	if res.Result != porcupine.Illegal || res.Linearizable() {
		t.Fatalf("stale read: got %s, want Illegal", res.Result)
	}
	b, err := os.ReadFile(vis)
	if err != nil || !strings.Contains(string(b), "<html") {
		t.Fatalf("visualization not written: %v", err)
	}
}

// TestModelRejections: each rule of the model catches its violation.
func TestModelRejections(t *testing.T) {
	cases := map[string]func(h *history){
		"lost ack read as absent": func(h *history) {
			h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
			h.op(1, KindGet, "a", "", "", 20, 30, Failed, ReasonNotFound, "")
		},
		"read of a value never written": func(h *history) {
			h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
			h.op(1, KindGet, "a", "zz", "", 20, 30, OK, "", "1")
		},
		"same value, other resourceVersion": func(h *history) {
			h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
			h.op(1, KindGet, "a", "a1", "", 20, 30, OK, "", "7")
		},
		"AlreadyExists on an absent key": func(h *history) {
			h.op(0, KindCreate, "a", "a1", "", 0, 10, Failed, ReasonAlreadyExists, "")
		},
		"Conflict although the precondition held": func(h *history) {
			h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
			h.op(0, KindUpdate, "a", "a2", "1", 20, 30, Failed, ReasonConflict, "")
		},
		"update acknowledged against a stale resourceVersion": func(h *history) {
			h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
			h.op(0, KindUpdate, "a", "a2", "1", 20, 30, OK, "", "2")
			h.op(1, KindUpdate, "a", "a3", "1", 40, 50, OK, "", "3")
		},
		"two creates of one key acknowledged": func(h *history) {
			h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
			h.op(1, KindCreate, "a", "a2", "", 5, 15, OK, "", "2")
		},
		"delete acknowledged, key still there": func(h *history) {
			h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
			h.op(0, KindDelete, "a", "", "1", 20, 30, OK, "", "")
			h.op(1, KindGet, "a", "a1", "", 40, 50, OK, "", "1")
		},
		"an unknown write seen, then unseen": func(h *history) {
			h.op(0, KindCreate, "a", "a1", "", 0, 10, Unknown, "Timeout", "")
			h.op(1, KindGet, "a", "a1", "", 20, 30, OK, "", "5")
			h.op(1, KindGet, "a", "", "", 40, 50, Failed, ReasonNotFound, "")
		},
	}
	for name, build := range cases {
		h := newHistory()
		build(h)
		if res := check(t, h); res.Result != porcupine.Illegal {
			t.Errorf("%s: got %s, want Illegal", name, res.Result)
		}
	}
}

// TestUnknownWritesModelled: an unknown write may take effect at any time
// after its invocation (even long after the client gave up), or never.
func TestUnknownWritesModelled(t *testing.T) {
	// Never happened.
	h := newHistory()
	h.op(0, KindCreate, "a", "a1", "", 0, 10, Unknown, "Timeout", "")
	h.op(1, KindGet, "a", "", "", 20, 30, Failed, ReasonNotFound, "")
	h.op(1, KindCreate, "a", "a2", "", 40, 50, OK, "", "3")
	h.op(1, KindGet, "a", "a2", "", 60, 70, OK, "", "3")
	if res := check(t, h); !res.Linearizable() {
		t.Fatalf("unknown write that never happened: %s", res.Result)
	}
	// Happened after the client gave up (absent at 20-30, present at 40):
	// only linearizable if the unknown op's completion is unbounded.
	h = newHistory()
	h.op(0, KindCreate, "a", "a1", "", 0, 10, Unknown, "Timeout", "")
	h.op(1, KindGet, "a", "", "", 20, 30, Failed, ReasonNotFound, "")
	h.op(1, KindGet, "a", "a1", "", 40, 50, OK, "", "9")
	// and its resourceVersion, never returned, is bound by that read.
	h.op(1, KindUpdate, "a", "a2", "9", 60, 70, OK, "", "10")
	h.op(2, KindUpdate, "a", "a3", "8", 80, 90, Failed, ReasonConflict, "")
	if res := check(t, h); !res.Linearizable() {
		t.Fatalf("unknown write that happened late: %s", res.Result)
	}
	// An unknown update whose precondition failed, and an unknown delete
	// that happened.
	h = newHistory()
	h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
	h.op(0, KindUpdate, "a", "a2", "0", 20, 30, Unknown, "Timeout", "")
	h.op(1, KindGet, "a", "a1", "", 40, 50, OK, "", "1")
	h.op(1, KindDelete, "a", "", "1", 60, 70, Unknown, "ConnectionLost", "")
	h.op(2, KindGet, "a", "", "", 80, 90, Failed, ReasonNotFound, "")
	if res := check(t, h); !res.Linearizable() {
		t.Fatalf("unknown update that failed, unknown delete that happened: %s", res.Result)
	}
	// Unknown reads and uninterpretable failures are left out.
	h.op(2, KindGet, "a", "", "", 100, 110, Unknown, "Timeout", "")
	h.op(2, KindCreate, "a", "bad", "", 100, 110, Failed, "Invalid", "")
	if res := check(t, h); !res.Linearizable() || res.Ops != 5 {
		t.Fatalf("got %s over %d ops, want Ok over 5", res.Result, res.Ops)
	}
}

// TestStaleReadDetectedThroughClient: the same violation, produced by an
// API server that serves stale reads, through the real client path.
func TestStaleReadDetectedThroughClient(t *testing.T) {
	api := newFakeAPI()
	_, cfg := api.serve(t)
	w := newTestWorkload(t, "stale", cfg)
	c := w.NewClient(0)
	ctx := context.Background()
	cr := c.Create(ctx, "k", "v1")
	c.Update(ctx, "k", "v2", cr.OutRV)
	if res, _ := CheckLinearizable(w.Ops(), CheckOptions{}); !res.Linearizable() {
		t.Fatalf("before the stale read: %s", res.Result)
	}
	api.setStaleReads(true)
	if g := c.Get(ctx, "k"); g.OutValue != "v1" {
		t.Fatalf("fake did not serve a stale read: %+v", g)
	}
	if res, _ := CheckLinearizable(w.Ops(), CheckOptions{}); res.Result != porcupine.Illegal {
		t.Fatalf("stale read through the client: %s, want Illegal", res.Result)
	}
}
