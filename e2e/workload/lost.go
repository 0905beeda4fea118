package workload

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// KV names one write for the split-brain archive: a key and the value it
// was set to, or, with Deleted, a deletion of the key at resourceVersion
// Of (the revision the deletion removed: the delete's precondition, Kine's
// prev_revision of the deletion row). Values are unique per write;
// deletions are not, so without Of the deletion of one revision named
// every deletion of the key: measured, a delete acknowledged and
// replicated before a split was taken for an archived one (the loser had
// deleted the same key again in the split) and set aside, and the history
// without the loser's branch lost a delete it needed.
type KV struct {
	Key     string `json:"key"`
	Value   string `json:"value,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	Of      string `json:"of,omitempty"`
}

// Archive is the set of writes found in the losing node's split-brain
// archive (nil: none).
type Archive map[KV]bool

// Has reports whether write op is in the archive.
func (a Archive) Has(op Op) bool {
	if a == nil {
		return false
	}
	if op.Kind == KindDelete {
		return a[KV{Key: op.Key, Deleted: true, Of: op.IfRV}]
	}
	return a[KV{Key: op.Key, Value: op.Value}]
}

// Add adds kv.
func (a Archive) Add(kv KV) { a[kv] = true }

// DecodeStored turns one archived Kine row of a ConfigMap into a KV:
// name is the Kine key (/registry/configmaps/<namespace>/<name>), value
// the stored object as the API server wrote it (protobuf with the "k8s\x00"
// envelope, or JSON), deleted the row's deleted flag and prevRev its
// prev_revision (for a deletion, the revision it removed). ok is false for
// rows that are not ConfigMaps (other objects in the archive).
func DecodeStored(name string, value []byte, deleted bool, prevRev int64) (kv KV, ok bool, err error) {
	const prefix = "/registry/configmaps/"
	if !strings.HasPrefix(name, prefix) {
		return KV{}, false, nil
	}
	parts := strings.Split(strings.TrimPrefix(name, prefix), "/")
	if len(parts) != 2 {
		return KV{}, false, fmt.Errorf("workload: unexpected configmap key %q", name)
	}
	if deleted {
		return KV{Key: parts[1], Deleted: true, Of: strconv.FormatInt(prevRev, 10)}, true, nil
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(value, nil, nil)
	if err != nil {
		return KV{}, false, fmt.Errorf("workload: decode %s: %w", name, err)
	}
	cm, isCM := obj.(*corev1.ConfigMap)
	if !isCM {
		return KV{}, false, fmt.Errorf("workload: %s holds a %T", name, obj)
	}
	return KV{Key: parts[1], Value: cm.Data[DataKey]}, true, nil
}

// LostReport is the result of Lost.
type LostReport struct {
	Checked     int  // acknowledged writes whose effect had to be visible
	Missing     []Op // of those, the ones not visible in the final state
	Archived    []Op // of Missing, the ones found in the archive (excused)
	Unexplained []Op // Missing minus Archived: lost for good
}

// OK reports whether nothing was lost for good.
func (r LostReport) OK() bool { return len(r.Unexplained) == 0 }

// Lost checks that every acknowledged write (create, update or delete)
// whose effect must be visible in final (key -> value; an absent key is
// deleted or never created) is visible, and sorts the ones that are not
// into archived (in the split-brain archive: set aside for an operator, not
// destroyed) and unexplained.
//
// An acknowledged write W is checked unless it is superseded: another
// acknowledged write on the same key was invoked after W completed. A
// checked W is visible if the final state of its key is W's own effect or
// the effect of another write on the key that took or may have taken effect
// (ok or unknown) and could be ordered after W (it completed after W was
// invoked; an unknown one never completes). Values are unique per write, so
// "the final value is V" names the write. Result.Lost is len(Missing),
// Result.Archived is len(Archived); a run passes if Lost == Archived.
func Lost(final map[string]string, ops []Op, archive Archive) LostReport {
	byKey := map[string][]Op{}
	for _, op := range ops {
		if op.MayHaveHappened() {
			byKey[op.Key] = append(byKey[op.Key], op)
		}
	}
	var rep LostReport
	for _, op := range ops {
		if !op.Acked() {
			continue
		}
		others := byKey[op.Key]
		superseded := false
		for _, o := range others {
			if o.ID != op.ID && o.Acked() && o.Call.After(op.Return) {
				superseded = true
				break
			}
		}
		if superseded {
			continue
		}
		rep.Checked++
		if visible(op, final) {
			continue
		}
		explained := false
		for _, o := range others {
			if o.ID != op.ID && mayFollow(o, op) && visible(o, final) {
				explained = true
				break
			}
		}
		if explained {
			continue
		}
		rep.Missing = append(rep.Missing, op)
		if archive.Has(op) {
			rep.Archived = append(rep.Archived, op)
		} else {
			rep.Unexplained = append(rep.Unexplained, op)
		}
	}
	return rep
}

// visible reports whether the final state is write op's effect.
func visible(op Op, final map[string]string) bool {
	v, present := final[op.Key]
	if op.Kind == KindDelete {
		return !present
	}
	return present && v == op.Value
}

// mayFollow reports whether write o can be ordered after write w: o's
// latest possible effect (its completion; never for an unknown outcome) is
// not before w's invocation.
func mayFollow(o, w Op) bool {
	if o.Outcome == Unknown {
		return true
	}
	return !o.Return.Before(w.Call)
}

// AddStored decodes one archived Kine row (see DecodeStored) and adds it if
// it is a ConfigMap; for example, with the harness's archive reader:
//
//	for _, r := range rows { err = archive.AddStored(r.Name, r.Value, r.Deleted, r.PrevRevision) }
func (a Archive) AddStored(name string, value []byte, deleted bool, prevRev int64) error {
	kv, ok, err := DecodeStored(name, value, deleted, prevRev)
	if ok {
		a.Add(kv)
	}
	return err
}
