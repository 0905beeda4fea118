package peer

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestServerRejectsMissingSignature(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ name, ch, sig string }{
		{"none", "", ""},
		{"no signature", f.srv.ch.issue(), ""},
		{"no challenge", "", strings.Repeat("ab", 32)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/v1/pause", strings.NewReader(`{"for_ns":1,"by":"a"}`))
			if tc.ch != "" {
				req.Header.Set(hdrChallenge, tc.ch)
			}
			if tc.sig != "" {
				req.Header.Set(hdrSignature, tc.sig)
			}
			a := send(t, req)
			if a.code != http.StatusUnauthorized || !strings.Contains(a.err, "missing signature") {
				t.Fatalf("got %d %q, want 401 missing signature", a.code, a.err)
			}
			if a.hdr.Get(hdrRespSignature) != "" || a.hdr.Get(hdrNextChallenge) != "" {
				t.Fatal("a refusal before authentication must not be signed")
			}
		})
	}
	if f.h.count() != 0 {
		t.Fatal("handler called without a signature")
	}
}

func TestServerRejectsWrongSecret(t *testing.T) {
	f := newFixture(t)
	a := send(t, f.signedRequest(t, []byte("another secret"), http.MethodGet, "/v1/status", nil))
	if a.code != http.StatusUnauthorized || a.err != "invalid signature" {
		t.Fatalf("got %d %q", a.code, a.err)
	}
	// Through the client: an unsigned 401, no retry storm, handler untouched.
	c := NewClient(f.ts.URL, []byte("another secret"), time.Second, clientNames)
	_, _, _, err := c.Status(t.Context())
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != 401 || pe.Verified {
		t.Fatalf("client error = %v, want an unverified 401", err)
	}
	if f.h.count() != 0 {
		t.Fatal("handler called with a wrong secret")
	}
}

func TestServerRejectsReplay(t *testing.T) {
	f := newFixture(t)
	req := f.signedRequest(t, testSecret, http.MethodPost, "/v1/pause", []byte(`{"for_ns":60000000000,"by":"a"}`))
	if a := send(t, req); a.code != http.StatusOK || !isSigned(a, req.Header.Get(hdrChallenge)) {
		t.Fatalf("first: %d %s", a.code, a.body)
	}
	a := send(t, req)
	if a.code != http.StatusUnauthorized || a.err != msgStale {
		t.Fatalf("replay: got %d %q, want 401 %q", a.code, a.err, msgStale)
	}
	if n := len(f.h.pauses); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestServerRejectsExpiredChallenge(t *testing.T) {
	f := newFixture(t)
	fresh := f.signedRequest(t, testSecret, http.MethodGet, "/v1/status", nil)
	old := f.signedRequest(t, testSecret, http.MethodGet, "/v1/status", nil)
	f.clock.advance(29 * time.Second)
	if a := send(t, fresh); a.code != http.StatusOK {
		t.Fatalf("29 s old challenge: %d %q", a.code, a.err)
	}
	f.clock.advance(2 * time.Second)
	if a := send(t, old); a.code != http.StatusUnauthorized || a.err != msgStale {
		t.Fatalf("31 s old challenge: got %d %q, want 401 stale", a.code, a.err)
	}
	if f.h.count() != 1 {
		t.Fatalf("handler ran %d times, want 1", f.h.count())
	}
}

func TestServerRejectsUnknownChallenge(t *testing.T) {
	f := newFixture(t)
	ch := strings.Repeat("0", 64) // well formed, never issued
	req, _ := http.NewRequest(http.MethodGet, f.ts.URL+"/v1/status", nil)
	req.Header.Set(hdrChallenge, ch)
	req.Header.Set(hdrSignature, fmt.Sprintf("%x", requestMAC(testSecret, clientNames.Self, clientNames.Peer, "GET", "/v1/status", ch, nil)))
	if a := send(t, req); a.code != http.StatusUnauthorized || a.err != msgStale {
		t.Fatalf("got %d %q", a.code, a.err)
	}
	req.Header.Set(hdrChallenge, "not hex")
	if a := send(t, req); a.code != http.StatusUnauthorized || a.err != "malformed challenge" {
		t.Fatalf("got %d %q", a.code, a.err)
	}
}

func TestServerRejectsOversizedBody(t *testing.T) {
	f := newFixture(t)
	body := append([]byte(`{"by":"`), bytes.Repeat([]byte("a"), MaxBodyBytes)...)
	body = append(body, `"}`...)
	a := send(t, f.signedRequest(t, testSecret, http.MethodPost, "/v1/pause", body))
	if a.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d %q, want 413", a.code, a.err)
	}
	if f.h.count() != 0 {
		t.Fatal("handler called")
	}
}

func TestServerRejectsBadJSON(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/pause", `{"for_ns":1,"by":"a","extra":1}`, `unknown field "extra"`},
		{"/v1/pause", `{"for_ns":"1h","by":"a"}`, `field "for_ns"`},
		{"/v1/pause", `{"for_ns":1,"by":"a"}{}`, "trailing data"},
		{"/v1/pause", `{"for_ns":1,"by":"a"`, "truncated JSON"},
		{"/v1/pause", `{"for_ns":0,"by":"a"}`, "for_ns: must be a positive"},
		{"/v1/pause", `{"for_ns":86400000000001,"by":"a"}`, "longer than the 24h0m0s maximum"},
		{"/v1/resume", `{"by":""}`, "by: required"},
		{"/v1/resume", `{"by":"a\nb"}`, "not printable"},
		{"/v1/handover", `{"term":0,"lsn":1,"by":"a"}`, "term: required"},
		{"/v1/handover", ``, "empty body"},
		{"/v1/handover", `[1]`, "must be a JSON object"},
		{"/v1/follow", `{"term":0,"by":"a"}`, "term: required"},
		{"/v1/follow", `{"term":18446744073709551615,"by":"a"}`, "term: required, 1.."},
		{"/v1/follow", `{"term":3}`, "by: required"},
	} {
		req := f.signedRequest(t, testSecret, http.MethodPost, tc.path, []byte(tc.body))
		a := send(t, req)
		if a.code != http.StatusBadRequest || !strings.Contains(a.err, tc.want) {
			t.Errorf("%s %s: got %d %q, want 400 containing %q", tc.path, tc.body, a.code, a.err, tc.want)
		}
		if !isSigned(a, req.Header.Get(hdrChallenge)) {
			t.Errorf("%s %s: a 400 after authentication must be signed", tc.path, tc.body)
		}
	}
	if f.h.count() != 0 {
		t.Fatal("handler called with a bad body")
	}
}

func TestServerRejectsTampering(t *testing.T) {
	f := newFixture(t)
	// Body swapped after signing.
	req := f.signedRequest(t, testSecret, http.MethodPost, "/v1/pause", []byte(`{"for_ns":60000000000,"by":"a"}`))
	req.Body = nopBody(`{"for_ns":86400000000000,"by":"a"}`)
	if a := send(t, req); a.code != http.StatusUnauthorized || a.err != "invalid signature" {
		t.Fatalf("tampered body: got %d %q", a.code, a.err)
	}
	// A resume's signature used for a pause.
	req = f.signedRequest(t, testSecret, http.MethodPost, "/v1/resume", []byte(`{"by":"a"}`))
	req.URL.Path = "/v1/pause"
	req.Body = nopBody(`{"by":"a"}`)
	if a := send(t, req); a.code != http.StatusUnauthorized || a.err != "invalid signature" {
		t.Fatalf("tampered path: got %d %q", a.code, a.err)
	}
	if f.h.count() != 0 {
		t.Fatal("handler called")
	}
	// The challenge survives a forged attempt: the real sender can still use it.
	if f.srv.ch.len() != 2 {
		t.Fatalf("outstanding challenges = %d, want 2 (forgeries must not burn them)", f.srv.ch.len())
	}
}

func TestServerMethodsAndPaths(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/v1/status", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/pause", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v1/challenge", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/nope", http.StatusNotFound},
		{http.MethodGet, "/v1/challenge", http.StatusOK},
	} {
		req, _ := http.NewRequest(tc.method, f.ts.URL+tc.path, nil)
		a := send(t, req)
		if a.code != tc.code {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, a.code, tc.code)
		}
		if tc.code == http.StatusMethodNotAllowed && a.hdr.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
		if a.hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: content type %q", tc.method, tc.path, a.hdr.Get("Content-Type"))
		}
	}
}

func TestServerHandlerErrors(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	f.h.err = fmt.Errorf("term 9 is not newer than mine: %w", ErrConflict)
	err := c.Pause(t.Context(), PauseRequest{For: int64(time.Minute), By: "a"})
	var pe *Error
	if !errors.Is(err, ErrConflict) || !errors.As(err, &pe) || pe.Code != 409 || !strings.Contains(pe.Message, "term 9") {
		t.Fatalf("got %v, want a signed 409", err)
	}
	f.h.err = errors.New("disk full")
	_, err = c.Handover(t.Context(), HandoverRequest{Term: 9, LSN: 1, By: "a"})
	if errors.Is(err, ErrConflict) || !errors.As(err, &pe) || pe.Code != 500 || !pe.Verified || pe.Message != "disk full" {
		t.Fatalf("got %v, want a signed 500", err)
	}
}

func TestServerWithoutSecretRefuses(t *testing.T) {
	h := &fakeHandler{}
	srv := newServer(nil, serverNames, h, nil, time.Now)
	ch := srv.ch.issue()
	req, _ := http.NewRequest(http.MethodGet, "/v1/status", nil)
	req.Header.Set(hdrChallenge, ch)
	req.Header.Set(hdrSignature, fmt.Sprintf("%x", requestMAC(nil, clientNames.Self, clientNames.Peer, "GET", "/v1/status", ch, nil)))
	rec := newRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError || h.count() != 0 {
		t.Fatalf("got %d, handler calls %d", rec.Code, h.count())
	}
}

// A flood of challenge requests from the LAN fills the shared store and
// evicts its oldest entries, never the peer's: the peer's request, signed
// over a challenge it fetched before the flood, still goes through.
func TestChallengeFloodDoesNotEvictThePeers(t *testing.T) {
	f := newFixture(t)
	f.srv.peer = netip.MustParseAddr("127.0.0.1") // the test client's source
	c := f.client()
	ctx := context.Background()
	if _, _, _, err := c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	// The peer's challenge, fetched over HTTP from its address.
	var got challengeReply
	resp, err := http.Get(f.ts.URL + "/v1/challenge")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for i := range 3 * challengeCap {
		r := httptest.NewRequest(http.MethodGet, "/v1/challenge", nil)
		r.RemoteAddr = fmt.Sprintf("10.9.%d.%d:40000", i/250, i%250)
		f.srv.ServeHTTP(httptest.NewRecorder(), r)
	}
	if n := f.srv.ch.len(); n != challengeCap {
		t.Fatalf("the shared store holds %d challenges, want its cap %d", n, challengeCap)
	}
	req, err := http.NewRequest(http.MethodGet, f.ts.URL+"/v1/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(hdrChallenge, got.Challenge)
	req.Header.Set(hdrSignature, hex.EncodeToString(requestMAC(testSecret, clientNames.Self, clientNames.Peer, http.MethodGet, "/v1/status", got.Challenge, nil)))
	if a := send(t, req); a.code != http.StatusOK {
		t.Fatalf("the peer's request after the flood: %d %q", a.code, a.err)
	}
}

// Each source other than the peer gets sourceBurst requests at once and
// sourceRate a second after that; the peer is never limited; the sources
// remembered are bounded.
func TestRequestsLimitedPerSource(t *testing.T) {
	f := newFixture(t)
	f.srv.peer = netip.MustParseAddr("10.0.0.2")
	get := func(from string) int {
		r := httptest.NewRequest(http.MethodGet, "/v1/challenge", nil)
		r.RemoteAddr = from + ":40000"
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, r)
		return rec.Code
	}
	ok := 0
	for range 3 * sourceBurst {
		if get("10.0.0.9") == http.StatusOK {
			ok++
		}
	}
	if ok != sourceBurst {
		t.Fatalf("%d of %d requests at once from one source answered, want the burst, %d", ok, 3*sourceBurst, sourceBurst)
	}
	if code := get("10.0.0.9"); code != http.StatusTooManyRequests {
		t.Fatalf("over the budget: %d, want 429", code)
	}
	if code := get("10.0.0.8"); code != http.StatusOK {
		t.Fatalf("another source: %d, want 200", code)
	}
	for range 10 * sourceBurst {
		if code := get("10.0.0.2"); code != http.StatusOK {
			t.Fatalf("the peer was limited: %d", code)
		}
	}
	f.clock.advance(time.Second)
	ok = 0
	for range 2 * sourceRate {
		if get("10.0.0.9") == http.StatusOK {
			ok++
		}
	}
	if ok != sourceRate {
		t.Fatalf("%d answered a second later, want the rate, %d", ok, sourceRate)
	}
	for i := range maxSources + 100 {
		get(fmt.Sprintf("10.1.%d.%d", i/250, i%250))
	}
	if n := f.srv.limits.len(); n != maxSources {
		t.Fatalf("%d sources remembered, want at most %d", n, maxSources)
	}
}
