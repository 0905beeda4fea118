package workload

import (
	"bytes"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

// history builds synthetic histories; times are milliseconds from t0.
type history struct {
	t0  time.Time
	ops []Op
}

func newHistory() *history { return &history{t0: time.Unix(1_700_000_000, 0)} }

func (h *history) at(ms int) time.Time { return h.t0.Add(time.Duration(ms) * time.Millisecond) }

// op appends an operation; for KindGet, val is the value read.
func (h *history) op(client int, kind Kind, key, val, ifRV string, call, ret int, out Outcome, reason, outRV string) Op {
	op := Op{ID: int64(len(h.ops) + 1), Client: client, Kind: kind, Key: key, IfRV: ifRV,
		Call: h.at(call), Return: h.at(ret), Outcome: out, Reason: reason, OutRV: outRV}
	if kind == KindGet {
		op.OutValue = val
	} else {
		op.Value = val
	}
	h.ops = append(h.ops, op)
	return op
}

func ids(ops []Op) []int64 {
	var out []int64
	for _, op := range ops {
		out = append(out, op.ID)
	}
	return out
}

func TestLostFindsMissingAck(t *testing.T) {
	h := newHistory()
	h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
	h.op(0, KindUpdate, "a", "a2", "1", 20, 30, OK, "", "2") // the last ack on a
	h.op(1, KindCreate, "b", "b1", "", 0, 10, OK, "", "3")
	// The final state shows a's previous value: a2 is lost; b1 is gone.
	rep := Lost(map[string]string{"a": "a1"}, h.ops, nil)
	if got := ids(rep.Missing); len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("missing %v, want [2 3]", got)
	}
	if rep.OK() || len(rep.Unexplained) != 2 || rep.Checked != 2 {
		t.Fatalf("report %+v", rep)
	}
	if rep := Lost(map[string]string{"a": "a2", "b": "b1"}, h.ops, nil); !rep.OK() || len(rep.Missing) != 0 {
		t.Fatalf("intact state reported lost: %+v", rep)
	}
}

func TestLostIgnoresSupersededAndExplained(t *testing.T) {
	h := newHistory()
	// a: a1 superseded by a later acknowledged delete, then re-created.
	h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
	h.op(0, KindDelete, "a", "", "1", 20, 30, OK, "", "")
	h.op(0, KindCreate, "a", "a3", "", 40, 50, OK, "", "5")
	// b: two concurrent acknowledged updates; either may be last.
	h.op(1, KindUpdate, "b", "b1", "7", 0, 100, OK, "", "8")
	h.op(2, KindUpdate, "b", "b2", "7", 10, 90, OK, "", "9")
	// c: an acknowledged write followed by an unknown one that took effect.
	h.op(1, KindCreate, "c", "c1", "", 200, 210, OK, "", "10")
	h.op(1, KindUpdate, "c", "c2", "10", 220, 230, Unknown, "Timeout", "")
	// d: an acknowledged delete; the key stays absent.
	h.op(2, KindCreate, "d", "d1", "", 200, 210, OK, "", "11")
	h.op(2, KindDelete, "d", "", "11", 220, 230, OK, "", "")
	final := map[string]string{"a": "a3", "b": "b1", "c": "c2"}
	rep := Lost(final, h.ops, nil)
	if !rep.OK() || len(rep.Missing) != 0 {
		t.Fatalf("nothing is lost, got missing %v", ids(rep.Missing))
	}
	// superseded: a1 (by the delete), the delete (by a3), c1 (by nothing
	// acknowledged: it is checked and explained by the unknown c2), d1.
	if rep.Checked != 5 { // a3, b1, b2, c1, d's delete
		t.Fatalf("checked %d, want 5", rep.Checked)
	}
	// A write that had to come before the acknowledged one does not explain it.
	final["b"] = "b0"
	if rep := Lost(final, h.ops, nil); len(rep.Missing) != 2 {
		t.Fatalf("b's concurrent acks with a stale final value: missing %v, want both", ids(rep.Missing))
	}
	// A lost delete: d came back.
	delete(final, "b")
	final["b"] = "b2"
	final["d"] = "d1"
	if rep := Lost(final, h.ops, nil); len(rep.Missing) != 1 || rep.Missing[0].Kind != KindDelete {
		t.Fatalf("resurrected d: missing %+v", rep.Missing)
	}
}

func TestLostExcusesArchived(t *testing.T) {
	h := newHistory()
	h.op(0, KindCreate, "a", "a1", "", 0, 10, OK, "", "1")
	h.op(1, KindCreate, "b", "b1", "", 0, 10, OK, "", "2")
	h.op(1, KindDelete, "c", "", "3", 0, 10, OK, "", "")
	archive := Archive{}
	archive.Add(KV{Key: "a", Value: "a1"})
	archive.Add(KV{Key: "b", Value: "other"})
	archive.Add(KV{Key: "c", Deleted: true, Of: "3"})
	// A deletion of another revision of c is another write: it does not
	// stand for this one.
	if (Archive{KV{Key: "c", Deleted: true, Of: "9"}: true}).Has(h.ops[2]) {
		t.Fatal("the archived deletion of revision 9 was taken for the deletion of revision 3")
	}
	rep := Lost(map[string]string{"c": "c0"}, h.ops, archive)
	if len(rep.Missing) != 3 || len(rep.Archived) != 2 || len(rep.Unexplained) != 1 || rep.Unexplained[0].Key != "b" {
		t.Fatalf("missing %v archived %v unexplained %v", ids(rep.Missing), ids(rep.Archived), ids(rep.Unexplained))
	}
	r := NewResult("split", h.ops, h.t0, rep, LinResult{})
	if r.Lost != 3 || r.Archived != 2 || r.OK() {
		t.Fatalf("result %+v", r)
	}
}

// TestDecodeStored: archived Kine rows hold the object as the API server
// stored it: protobuf with the "k8s\x00" envelope (the default) or JSON.
func TestDecodeStored(t *testing.T) {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "w-1", Namespace: "default"},
		Data:       map[string]string{DataKey: "c1-7"},
	}
	var pb bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(cm, &pb); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pb.Bytes(), []byte("k8s\x00")) {
		t.Fatalf("protobuf encoding without envelope: %q", pb.Bytes()[:8])
	}
	a := Archive{}
	for _, v := range [][]byte{pb.Bytes(), encode(cm)} {
		kv, ok, err := DecodeStored("/registry/configmaps/default/w-1", v, false, 0)
		if err != nil || !ok || kv != (KV{Key: "w-1", Value: "c1-7"}) {
			t.Fatalf("decode: %+v %v %v", kv, ok, err)
		}
	}
	if err := a.AddStored("/registry/configmaps/default/w-2", nil, true, 41); err != nil || !a[KV{Key: "w-2", Deleted: true, Of: "41"}] {
		t.Fatalf("deleted row: %v %v", a, err)
	}
	if _, ok, err := DecodeStored("/registry/secrets/default/x", []byte("?"), false, 0); ok || err != nil {
		t.Fatal("a non-ConfigMap row is skipped")
	}
}
