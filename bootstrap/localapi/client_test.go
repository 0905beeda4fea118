package localapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestClientHappyPath(t *testing.T) {
	h := &fakeHandler{report: StatusReport{
		Node: "a", Peer: "b", State: "leader", Role: "leader", Term: 7, PeerReachable: true,
		Replication: "sync", PGUp: true, KineEndpoint: "10.99.0.1", Paused: true,
		PausedUntil:      time.Date(2025, 6, 1, 14, 3, 5, 0, time.UTC),
		LastTransitionAt: time.Date(2025, 6, 1, 13, 0, 0, 0, time.UTC),
		LastFailover:     1500 * time.Millisecond, ClockOffset: -3 * time.Millisecond,
		Archives: []Archive{{Path: "/var/lib/twonode/archive/split-term6-1.jsonl", Rows: 3, Term: 6, Winner: "b",
			Created: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)}},
		Version: "test",
	}}
	_, c := serve(t, h)
	ctx := t.Context()

	got, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h.report) {
		t.Fatalf("status round trip:\n got %+v\nwant %+v", got, h.report)
	}
	if msg, err := c.Pause(ctx, 90*time.Minute); err != nil || !strings.HasPrefix(msg, "paused on a and b") {
		t.Fatalf("pause: %q %v", msg, err)
	}
	if len(h.pauses) != 1 || h.pauses[0] != 90*time.Minute {
		t.Fatalf("handler got pauses %v", h.pauses)
	}
	if msg, err := c.Resume(ctx); err != nil || msg != "resumed on a and b" {
		t.Fatalf("resume: %q %v", msg, err)
	}
	// Done on this node only: the message, and an error that says so.
	h.err = ErrPartial
	if msg, err := c.Pause(ctx, time.Minute); !errors.Is(err, ErrPartial) || msg == "" {
		t.Fatalf("partial pause: %q %v", msg, err)
	}
	h.err = nil
	if msg, err := c.Promote(ctx, true); err != nil || msg != "a is the leader (term 8)" {
		t.Fatalf("promote: %q %v", msg, err)
	}
	if len(h.forced) != 1 || !h.forced[0] {
		t.Fatalf("force not passed: %v", h.forced)
	}
	if msg, err := c.Switchover(ctx); err != nil || msg != "b is the leader (term 9)" {
		t.Fatalf("switchover: %q %v", msg, err)
	}
}

func TestStatusHidesCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://kine:hunter2@10.99.0.1:5432/kine?sslmode=disable": "10.99.0.1",
		"kine:hunter2@10.99.0.1": "10.99.0.1",
		"10.99.0.1":              "10.99.0.1",
		"":                       "",
	} {
		_, c := serve(t, &fakeHandler{report: StatusReport{KineEndpoint: in}})
		r, err := c.Status(t.Context())
		if err != nil || r.KineEndpoint != want {
			t.Errorf("%q: got %q %v, want %q", in, r.KineEndpoint, err, want)
		}
		if r.Archives == nil {
			t.Errorf("archives should be [] not null")
		}
	}
}

func TestClientNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	_, err := NewClient(sock).Status(t.Context())
	want := fmt.Sprintf("twonode agent is not running (no socket at %s)", sock)
	if err == nil || err.Error() != want || !errors.Is(err, ErrNotRunning) {
		t.Fatalf("got %v, want %q", err, want)
	}

	// A socket left by a dead agent.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	_, err = NewClient(sock).Pause(t.Context(), time.Hour)
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "nothing answers") {
		t.Fatalf("dead socket: got %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	h := &fakeHandler{err: fmt.Errorf("the leader answers: use --force to promote anyway: %w", ErrConflict)}
	_, c := serve(t, h)
	_, err := c.Promote(t.Context(), false)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusConflict || !errors.Is(err, ErrConflict) ||
		err.Error() != "the leader answers: use --force to promote anyway: conflict" {
		t.Fatalf("got %v", err)
	}
	h.err = context.DeadlineExceeded
	if _, err := c.Resume(t.Context()); !errors.As(err, &ae) || ae.Code != http.StatusGatewayTimeout {
		t.Fatalf("got %v, want 504", err)
	}
	h.err = errors.New("boom")
	if _, err := c.Resume(t.Context()); !errors.As(err, &ae) || ae.Code != http.StatusInternalServerError || ae.Message != "boom" {
		t.Fatalf("got %v, want 500 boom", err)
	}
	// Out of range durations never reach the handler (0 does: it asks for
	// the configured default, as `twonode pause` without --for).
	for _, d := range []time.Duration{-time.Second, 25 * time.Hour} {
		if _, err := c.Pause(t.Context(), d); !errors.As(err, &ae) || ae.Code != http.StatusBadRequest {
			t.Errorf("pause %v: got %v, want 400", d, err)
		}
	}
	if len(h.pauses) != 0 {
		t.Fatalf("handler got %v", h.pauses)
	}
}

func TestServerRequestChecks(t *testing.T) {
	sock, _ := serve(t, &fakeHandler{})
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/v1/pause", "", 405, "needs POST"},
		{"POST", "/v1/status", "", 405, "needs GET"},
		{"GET", "/v1/nope", "", 404, "no such endpoint"},
		{"POST", "/v1/pause", `{"for":"soon"}`, 400, `invalid duration "soon"`},
		{"POST", "/v1/pause", `{}`, 400, `"for" is required`},
		{"POST", "/v1/pause", `{"for":"1h","by":"x"}`, 400, `unknown field "by"`},
		{"POST", "/v1/promote", `{"force":"yes"}`, 400, "malformed request"},
		{"POST", "/v1/promote", `{"force":true} {}`, 400, "trailing data"},
		{"POST", "/v1/switchover", strings.Repeat(" ", maxBodyBytes+1), 413, "over 64 KiB"},
		{"POST", "/v1/resume", ``, 200, ""},
		{"POST", "/v1/switchover", `{}`, 200, ""},
	} {
		code, msg := rawDo(t, sock, tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s %s %.20q: got %d %q, want %d %q", tc.method, tc.path, tc.body, code, msg, tc.code, tc.want)
		}
	}
}

func TestClientDeadline(t *testing.T) {
	h := &fakeHandler{block: make(chan struct{})}
	defer close(h.block)
	_, c := serve(t, h)
	c.longTimeout = 200 * time.Millisecond
	start := time.Now()
	_, err := c.Switchover(t.Context())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("returned after %v", d)
	}
}
