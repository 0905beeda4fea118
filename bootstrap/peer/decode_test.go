package peer

import (
	"strings"
	"testing"
	"time"
)

func TestDecodePause(t *testing.T) {
	day := int64(24 * time.Hour)
	ok := []struct {
		in   string
		want PauseRequest
	}{
		{`{"for_ns":1,"by":"a"}`, PauseRequest{1, "a"}},
		{` {"by":"node-b","for_ns":86400000000000} ` + "\n", PauseRequest{day, "node-b"}},
		{`{"for_ns":60000000000,"by":"` + strings.Repeat("x", 64) + `"}`, PauseRequest{60e9, strings.Repeat("x", 64)}},
		{`{"for_ns":1,"by":"operator on a"}`, PauseRequest{1, "operator on a"}},
	}
	for _, tc := range ok {
		got, err := decodePause([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, want string }{
		{`null`, "for_ns: must be a positive"},
		{`{"for_ns":1}`, "by: required"},
		{`{"for_ns":-1,"by":"a"}`, "must be a positive"},
		{`{"for_ns":86400000000001,"by":"a"}`, "maximum"},
		{`{"for_ns":1,"by":"` + strings.Repeat("x", 65) + `"}`, "more than 64"},
		{`{"for_ns":1,"by":"é"}`, "not printable ASCII"},
		{`{"for_ns":1,"by":"a\u001b[2J"}`, "not printable ASCII"},
		{`{"for_ns":1,"by":"a"} x`, "trailing data"},
		{`{"for_ns":1,"by":"a","for":1}`, `unknown field "for"`},
		{`{"for_ns":true,"by":"a"}`, `field "for_ns": bool is not a valid int64`},
		{`{"for_ns":1,,}`, "malformed JSON at byte"},
		{`"text"`, "must be a JSON object"},
	}
	for _, tc := range bad {
		if _, err := decodePause([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestDecodeHandoverAndResume(t *testing.T) {
	got, err := decodeHandover([]byte(`{"term":8,"lsn":50331744,"by":"a"}`))
	if err != nil || got != (HandoverRequest{Term: 8, LSN: 50331744, By: "a"}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := decodeHandover([]byte(`{"term":-1,"by":"a"}`)); err == nil || !strings.Contains(err.Error(), `field "term"`) {
		t.Fatalf("negative term: %v", err)
	}
	if _, err := decodeHandover([]byte(`{"lsn":5,"by":"a"}`)); err == nil || !strings.Contains(err.Error(), "term: required") {
		t.Fatalf("missing term: %v", err)
	}
	if r, err := decodeResume([]byte(`{"by":"b"}`)); err != nil || r.By != "b" {
		t.Fatalf("resume: %+v %v", r, err)
	}
	if _, err := decodeResume([]byte(`{}`)); err == nil {
		t.Fatal("resume without by accepted")
	}
}
