package peer

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientHappyPath(t *testing.T) {
	f := newFixture(t)
	var fetches atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/challenge" {
			fetches.Add(1)
		}
		f.srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	c := NewClient(ts.URL+"/", testSecret, 2*time.Second, clientNames) // a trailing slash is fine
	ctx := t.Context()

	st, sent, recv, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st != f.h.status {
		t.Fatalf("status = %+v, want %+v", st, f.h.status)
	}
	if sent.IsZero() || recv.Before(sent) {
		t.Fatalf("sent %v received %v", sent, recv)
	}
	if err := c.Pause(ctx, PauseRequest{For: int64(time.Hour), By: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(ctx, ResumeRequest{By: "a"}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Handover(ctx, HandoverRequest{Term: 8, LSN: 0x3000060, By: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if resp != (HandoverResponse{Term: 8, Promoted: true, Message: "promoted"}) {
		t.Fatalf("handover answer %+v", resp)
	}
	if err := c.Follow(ctx, FollowRequest{Term: 8, By: "a"}); err != nil {
		t.Fatal(err)
	}
	if len(f.h.follows) != 1 || f.h.follows[0] != (FollowRequest{Term: 8, By: "a"}) {
		t.Fatalf("handler saw follows %v", f.h.follows)
	}
	if len(f.h.pauses) != 1 || f.h.pauses[0] != (PauseRequest{For: int64(time.Hour), By: "a"}) ||
		len(f.h.resumes) != 1 || len(f.h.handovers) != 1 || f.h.handovers[0].LSN != 0x3000060 {
		t.Fatalf("handler saw pauses %v resumes %v handovers %v", f.h.pauses, f.h.resumes, f.h.handovers)
	}
	// Each answer's next challenge served the following call.
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d challenge round trips for 4 calls, want 1", n)
	}
}

func TestClientStatusUsesInjectedClock(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	ahead := 10 * time.Minute
	c.Now = func() time.Time { return time.Now().Add(ahead) }
	_, sent, recv, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(sent); d < ahead-time.Minute {
		t.Fatalf("sent %v is not on the injected clock", sent)
	}
	if recv.Before(sent) {
		t.Fatal("received before sent")
	}
}

func TestClientStatusFillsMissingNow(t *testing.T) {
	f := newFixture(t)
	f.h.status.Now = 0
	st, _, _, err := f.client().Status(t.Context())
	if err != nil || st.Now == 0 {
		t.Fatalf("Now = %d, err %v", st.Now, err)
	}
}

func TestClientRetriesStaleChallenge(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	if _, _, _, err := c.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The cached challenge expires on the server (its clock, not ours).
	f.clock.advance(time.Minute)
	if _, _, _, err := c.Status(t.Context()); err != nil {
		t.Fatalf("no transparent retry: %v", err)
	}
	if f.h.count() != 2 {
		t.Fatalf("handler calls = %d, want 2", f.h.count())
	}
}

// mitm puts a tampering proxy in front of the fixture's server.
func mitm(t *testing.T, f *fixture, tamper func(r *http.Request, rec *httptest.ResponseRecorder)) *Client {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, r)
		if r.URL.Path != "/v1/challenge" {
			tamper(r, rec)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(ts.Close)
	return NewClient(ts.URL, testSecret, 2*time.Second, clientNames)
}

func TestClientRejectsForgedResponses(t *testing.T) {
	cases := map[string]func(r *http.Request, rec *httptest.ResponseRecorder){
		"unsigned": func(_ *http.Request, rec *httptest.ResponseRecorder) {
			rec.Header().Del(hdrRespSignature)
		},
		"body rewritten": func(_ *http.Request, rec *httptest.ResponseRecorder) {
			b := bytes.Replace(rec.Body.Bytes(), []byte(`"term":7`), []byte(`"term":99`), 1)
			rec.Body = bytes.NewBuffer(b)
		},
		"signed with another secret": func(r *http.Request, rec *httptest.ResponseRecorder) {
			sig := responseMAC([]byte("impostor"), serverNames.Self, serverNames.Peer, r.Header.Get(hdrChallenge), rec.Body.Bytes())
			rec.Header().Set(hdrRespSignature, hex.EncodeToString(sig))
		},
		"old answer replayed": func(_ *http.Request, rec *httptest.ResponseRecorder) {
			// A valid signature, but over another request's challenge.
			sig := responseMAC(testSecret, serverNames.Self, serverNames.Peer, strings.Repeat("a", 64), rec.Body.Bytes())
			rec.Header().Set(hdrRespSignature, hex.EncodeToString(sig))
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			_, _, _, err := mitm(t, f, tamper).Status(t.Context())
			if !errors.Is(err, ErrForged) {
				t.Fatalf("got %v, want ErrForged", err)
			}
		})
	}
}

func TestClientDoesNotTrustStatusCode(t *testing.T) {
	// The signature covers the body only: a refusal relabelled 200 is
	// still a refusal, and a success relabelled 409 is not a success.
	f := newFixture(t)
	f.h.err = errors.New("not a follower")
	c := mitm(t, f, func(_ *http.Request, rec *httptest.ResponseRecorder) { rec.Code = http.StatusOK })
	if _, err := c.Handover(t.Context(), HandoverRequest{Term: 2, LSN: 1, By: "a"}); err == nil || !strings.Contains(err.Error(), "not a follower") {
		t.Fatalf("relabelled refusal: got %v", err)
	}

	f = newFixture(t)
	c = mitm(t, f, func(_ *http.Request, rec *httptest.ResponseRecorder) { rec.Code = http.StatusConflict })
	if err := c.Pause(t.Context(), PauseRequest{For: 1, By: "a"}); err == nil {
		t.Fatal("relabelled success accepted as a refusal-free success")
	}
}

func TestClientDeadlineHangingHandler(t *testing.T) {
	f := newFixture(t)
	f.h.block = make(chan struct{})
	defer close(f.h.block)
	c := NewClient(f.ts.URL, testSecret, 200*time.Millisecond, clientNames)
	start := time.Now()
	_, _, _, err := c.Status(t.Context())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("returned after %v, the deadline was 200ms", d)
	}
}

func TestClientDeadlineSilentServer(t *testing.T) {
	// Accepts connections and never answers, like a wedged peer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c := NewClient("http://"+ln.Addr().String(), testSecret, 200*time.Millisecond, clientNames)
	start := time.Now()
	_, _, _, err = c.Status(t.Context())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("returned after %v, the deadline was 200ms", d)
	}
	// A command waits for the peer's agent loop: at least minCommandTimeout.
	start = time.Now()
	err = c.Pause(t.Context(), PauseRequest{For: 1, By: "a"})
	if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d < minCommandTimeout || d > minCommandTimeout+time.Second {
		t.Fatalf("pause: %v after %v, want a deadline error after %v", err, d, minCommandTimeout)
	}
	// The caller's own, shorter deadline wins too.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	c = NewClient("http://"+ln.Addr().String(), testSecret, time.Minute, clientNames)
	start = time.Now()
	if _, err := c.Handover(ctx, HandoverRequest{Term: 1, LSN: 1, By: "a"}); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("caller deadline ignored: %v after %v", err, time.Since(start))
	}
}

func TestClientConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		url    string
		secret []byte
		want   string
	}{
		{"10.99.0.2:8760", testSecret, "peer URL"},
		{"ftp://10.99.0.2", testSecret, "want http://host:port"},
		{"http://", testSecret, "want http://host:port"},
		{"http://10.99.0.2:8760", nil, "no cluster secret"},
	} {
		_, _, _, err := NewClient(tc.url, tc.secret, time.Second, clientNames).Status(t.Context())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.url, err, tc.want)
		}
	}
}

// The agent's PeerClient port (bootstrap/agent/ports.go), restated so that
// this package's tests catch a signature drift on their own.
var _ interface {
	Status(ctx context.Context) (Status, time.Time, time.Time, error)
	Pause(ctx context.Context, r PauseRequest) error
	Resume(ctx context.Context, r ResumeRequest) error
	Handover(ctx context.Context, r HandoverRequest) (HandoverResponse, error)
	Follow(ctx context.Context, r FollowRequest) error
} = (*Client)(nil)
