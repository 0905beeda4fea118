package peer

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Both nodes hold the one secret, so before names were bound a message one
// signed for the other was just as good sent back to itself: an attacker
// on the LAN who fed node a its own challenge could reflect a's status or
// hand-over back to a. Each endpoint, reflected and misdirected.

// endpoints is one call of each authenticated endpoint.
var endpoints = map[string]func(ctx context.Context, c *Client) error{
	"status": func(ctx context.Context, c *Client) error { _, _, _, err := c.Status(ctx); return err },
	"pause": func(ctx context.Context, c *Client) error {
		return c.Pause(ctx, PauseRequest{For: int64(time.Minute), By: "a"})
	},
	"resume": func(ctx context.Context, c *Client) error { return c.Resume(ctx, ResumeRequest{By: "a"}) },
	"handover": func(ctx context.Context, c *Client) error {
		_, err := c.Handover(ctx, HandoverRequest{Term: 8, LSN: 1, By: "a"})
		return err
	},
	"follow": func(ctx context.Context, c *Client) error { return c.Follow(ctx, FollowRequest{Term: 7, By: "a"}) },
}

// serverAs is the fixture's server playing the node names says.
func serverAs(t *testing.T, names Names) *fixture {
	t.Helper()
	f := &fixture{h: &fakeHandler{status: Status{Name: names.Self, State: "leader", Term: 7, Now: 42, Version: "test"}}, clock: newFakeClock()}
	f.srv = newServer(testSecret, names, f.h, nil, f.clock.now)
	f.ts = httptest.NewServer(f.srv)
	t.Cleanup(f.ts.Close)
	return f
}

func TestEveryEndpointAnswersItsPeer(t *testing.T) {
	for name, call := range endpoints {
		t.Run(name, func(t *testing.T) {
			f := serverAs(t, serverNames)
			if err := call(t.Context(), f.client()); err != nil {
				t.Fatalf("a to b: %v", err)
			}
			if f.h.count() != 1 {
				t.Fatalf("handler calls = %d, want 1", f.h.count())
			}
		})
	}
}

func TestReflectedAndMisdirectedRequestsAreRefused(t *testing.T) {
	servers := map[string]Names{
		"reflected":   clientNames,            // a's request for b arrives at a's own server
		"misdirected": {Self: "b", Peer: "c"}, // b of another pair with the same secret
	}
	for how, names := range servers {
		for name, call := range endpoints {
			t.Run(how+"/"+name, func(t *testing.T) {
				f := serverAs(t, names)
				err := call(t.Context(), f.client())
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != http.StatusUnauthorized || f.h.count() != 0 {
					t.Fatalf("a's request for b at a server that is %s with peer %s: got %v with %d handler calls, want a 401 and none",
						names.Self, names.Peer, err, f.h.count())
				}
			})
		}
	}
}

// An answer node a signed (for b) is not believed by a's client as b's,
// even over the very challenge a's client sent.
func TestReflectedAnswersAreRefused(t *testing.T) {
	for name, call := range endpoints {
		t.Run(name, func(t *testing.T) {
			f := serverAs(t, serverNames)
			c := mitm(t, f, func(r *http.Request, rec *httptest.ResponseRecorder) {
				sig := responseMAC(testSecret, clientNames.Self, clientNames.Peer, r.Header.Get(hdrChallenge), rec.Body.Bytes())
				rec.Header().Set(hdrRespSignature, hex.EncodeToString(sig))
			})
			if err := call(t.Context(), c); !errors.Is(err, ErrForged) {
				t.Fatalf("an answer signed by a for b, shown to a: got %v, want ErrForged", err)
			}
		})
	}
}

// A pair upgraded one node at a time: the new server serves an old agent's
// requests and answers them the old way; the new client believes an old
// server's answers, but not a status that is not the peer's.
func TestAnOlderPeerIsServedAndBelieved(t *testing.T) {
	f := serverAs(t, serverNames)
	ch := f.srv.ch.issue()
	req, _ := http.NewRequest(http.MethodGet, f.ts.URL+"/v1/status", nil)
	req.Header.Set(hdrChallenge, ch)
	req.Header.Set(hdrSignature, hex.EncodeToString(legacyRequestMAC(testSecret, http.MethodGet, "/v1/status", ch, nil)))
	a := send(t, req)
	if a.code != http.StatusOK || !macMatches(a.hdr.Get(hdrRespSignature), legacyResponseMAC(testSecret, ch, a.body)) {
		t.Fatalf("an old agent's request: got %d %q, want 200 signed the old way", a.code, a.body)
	}

	for _, tc := range []struct {
		name string
		ok   bool
	}{{"b", true}, {"a", false}} {
		old := oldServer(t, Status{Name: tc.name, State: "leader", Term: 7, Now: 42, Version: "old"})
		_, _, _, err := NewClient(old.URL, testSecret, 2*time.Second, clientNames).Status(t.Context())
		switch {
		case tc.ok && err != nil:
			t.Fatalf("an old peer's status: %v", err)
		case !tc.ok && !errors.Is(err, ErrImplausible):
			t.Fatalf("a status signed the old way that names %s, not the peer: got %v, want ErrImplausible", tc.name, err)
		}
	}
}

// oldServer answers /v1/status as an agent before names were bound: any
// well-formed challenge, the answer signed the old way.
func oldServer(t *testing.T, st Status) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/challenge" {
			writeJSON(w, http.StatusOK, challengeReply{Challenge: newChallenge()})
			return
		}
		b, _ := json.Marshal(st)
		b = append(b, '\n')
		w.Header().Set(hdrRespSignature, hex.EncodeToString(legacyResponseMAC(testSecret, r.Header.Get(hdrChallenge), b)))
		w.Header().Set(hdrNextChallenge, newChallenge())
		w.Write(b)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestNamesAreRequired(t *testing.T) {
	for _, n := range []Names{{}, {Self: "a"}, {Self: "a", Peer: "a"}, {Self: "a\nb", Peer: "c"}} {
		if _, _, _, err := NewClient("http://127.0.0.1:1", testSecret, time.Second, n).Status(t.Context()); err == nil {
			t.Errorf("client named %+v: no error", n)
		}
		srv := newServer(testSecret, n, &fakeHandler{}, nil, time.Now)
		ch := srv.ch.issue()
		req := httptest.NewRequest(http.MethodGet, "/v1/status", bytes.NewReader(nil))
		req.Header.Set(hdrChallenge, ch)
		req.Header.Set(hdrSignature, hex.EncodeToString(requestMAC(testSecret, n.Peer, n.Self, http.MethodGet, "/v1/status", ch, nil)))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("server named %+v: HTTP %d, want 500 (refuses every request)", n, rec.Code)
		}
	}
}
