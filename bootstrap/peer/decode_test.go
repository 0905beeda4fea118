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
	if _, err := decodeHandover([]byte(`{"term":3,"by":"a"}`)); err == nil || !strings.Contains(err.Error(), "lsn: required") {
		t.Fatalf("missing lsn: %v", err)
	}
	if _, err := decodeHandover([]byte(`{"term":18446744073709551615,"lsn":5,"by":"a"}`)); err == nil || !strings.Contains(err.Error(), "term: required, 1..") {
		t.Fatalf("huge term: %v", err)
	}
	if r, err := decodeFollow([]byte(`{"term":4,"by":"b"}`)); err != nil || r != (FollowRequest{Term: 4, By: "b"}) {
		t.Fatalf("follow: %+v %v", r, err)
	}
	if r, err := decodeResume([]byte(`{"by":"b"}`)); err != nil || r.By != "b" {
		t.Fatalf("resume: %+v %v", r, err)
	}
	if _, err := decodeResume([]byte(`{}`)); err == nil {
		t.Fatal("resume without by accepted")
	}
}

// A status no correct agent sends is not believed (issue: a process
// holding the secret answered with a term near 2^64 and a last commit an
// hour ahead; the leader stopped its writes to rejoin it).
func TestCheckStatusBounds(t *testing.T) {
	ok := Status{Name: "b", State: "follower", Term: 4, TermRole: "follower", Now: 1}
	if err := CheckStatus(ok); err != nil {
		t.Fatalf("valid status refused: %v", err)
	}
	bad := map[string]func(*Status){
		"term":        func(s *Status) { s.Term = 1<<64 - 2 },
		"state":       func(s *Status) { s.State = "king" },
		"term_role":   func(s *Status) { s.TermRole = "boss" },
		"high_rev":    func(s *Status) { s.HighRev = 1<<63 - 1 },
		"fork_rev":    func(s *Status) { s.ForkRev = -1 },
		"fenced_past": func(s *Status) { s.FencedPast = 1 << 60 },
		"paused_for":  func(s *Status) { s.PausedFor = int64(MaxPause) + 1 },
		"pair_offset": func(s *Status) { s.PairOffset = -int64(48 * time.Hour) },
		"last_commit": func(s *Status) { s.LastCommit = -5 },
		"now":         func(s *Status) { s.Now = 0 },
		"name":        func(s *Status) { s.Name = "b\n" },
		"oldest_wal":  func(s *Status) { s.OldestWAL = 1 << 24 }, // from a node that is no primary
	}
	for field, f := range bad {
		s := ok
		f(&s)
		err := CheckStatus(s)
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), "_ns", ""), field) {
			t.Errorf("%s: got %v, want an error naming it", field, err)
		}
	}
}
