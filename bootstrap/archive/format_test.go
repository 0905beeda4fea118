package archive

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// TestReadWhatIsWritten: the rows as postgres.Manager.Archive encodes
// them (NULLs as null) come back as they were, sealed or not.
func TestReadWhatIsWritten(t *testing.T) {
	hdr := Header{Kind: HeaderKind, Node: "a", Winner: "b", Term: 7, ForkRev: 120, Count: 2, Created: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	rows := []Row{
		{ID: 121, Name: ptr("/registry/configmaps/default/k"), Created: ptr[int64](1), Deleted: ptr[int64](0),
			CreateRevision: ptr[int64](121), PrevRevision: ptr[int64](0), Lease: ptr[int64](0), Value: []byte("v1\x00\xff")},
		{ID: 122, Name: ptr("/registry/configmaps/default/k"), Deleted: ptr[int64](1), PrevRevision: ptr[int64](121), OldValue: []byte{}},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(hdr); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(buf.String(), `"created":null`) || !strings.Contains(buf.String(), `"value_b64":null`) {
		t.Fatalf("NULLs are not written as null:\n%s", buf.String())
	}
	path := filepath.Join(t.TempDir(), "split-term7-1"+Ext)
	seal(t, path, buf.String())
	for _, read := range []func() (Header, []Row, error){
		func() (Header, []Row, error) { return Read(bytes.NewReader(buf.Bytes())) },
		func() (Header, []Row, error) { return ReadFile(path, secret) },
	} {
		h, got, err := read()
		if err != nil || h != hdr || len(got) != 2 {
			t.Fatalf("read: %+v %d rows %v", h, len(got), err)
		}
		if got[0].Key() != "/registry/configmaps/default/k" || !got[0].IsCreated() || got[0].IsDeleted() ||
			string(got[0].Value) != "v1\x00\xff" || got[0].CreateRev() != 121 {
			t.Fatalf("row 0: %+v", got[0])
		}
		if !got[1].IsDeleted() || got[1].PrevRev() != 121 || got[1].Created != nil || got[1].Value != nil || got[1].OldValue == nil {
			t.Fatalf("row 1: %+v", got[1])
		}
	}
	if _, _, err := ReadFile(path, []byte("another secret")); err == nil {
		t.Fatal("read with another secret")
	}
}

func TestReadRefuses(t *testing.T) {
	for name, text := range map[string]string{
		"no header":        `{"id":1}` + "\n",
		"empty":            "",
		"a row too few":    `{"kind":"header","count":2}` + "\n" + `{"id":1}` + "\n",
		"a row too many":   `{"kind":"header","count":0}` + "\n" + `{"id":1}` + "\n",
		"a row not JSON":   `{"kind":"header","count":1}` + "\n" + `{"id":` + "\n",
		"a flag not a 0/1": `{"kind":"header","count":1}` + "\n" + `{"id":1,"deleted":true}` + "\n",
	} {
		if _, _, err := Read(strings.NewReader(text)); err == nil {
			t.Errorf("%s: read without an error", name)
		}
	}
}
