package peer

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// fakeHandler records what reached it.
type fakeHandler struct {
	mu        sync.Mutex
	calls     int
	pauses    []PauseRequest
	resumes   []ResumeRequest
	handovers []HandoverRequest
	follows   []FollowRequest
	status    Status
	err       error         // returned by the commands
	block     chan struct{} // when set, Status waits for it or ctx
}

func (h *fakeHandler) Status(ctx context.Context) Status {
	h.mu.Lock()
	h.calls++
	st, block := h.status, h.block
	h.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
		}
	}
	return st
}

func (h *fakeHandler) Pause(_ context.Context, r PauseRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	h.pauses = append(h.pauses, r)
	return h.err
}

func (h *fakeHandler) Resume(_ context.Context, r ResumeRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	h.resumes = append(h.resumes, r)
	return h.err
}

func (h *fakeHandler) Handover(_ context.Context, r HandoverRequest) (HandoverResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	h.handovers = append(h.handovers, r)
	if h.err != nil {
		return HandoverResponse{}, h.err
	}
	return HandoverResponse{Term: r.Term, Promoted: true, Message: "promoted"}, nil
}

func (h *fakeHandler) Follow(_ context.Context, r FollowRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	h.follows = append(h.follows, r)
	return h.err
}

func (h *fakeHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// fakeClock is a settable clock for challenge expiry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	h     *fakeHandler
	srv   *server
	ts    *httptest.Server
	clock *fakeClock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{h: &fakeHandler{status: Status{Name: "b", State: "follower", Term: 7, Now: 42, Version: "test"}}, clock: newFakeClock()}
	f.srv = newServer(testSecret, serverNames, f.h, nil, f.clock.now)
	f.ts = httptest.NewServer(f.srv)
	t.Cleanup(f.ts.Close)
	return f
}

func (f *fixture) client() *Client {
	return NewClient(f.ts.URL, testSecret, 2*time.Second, clientNames)
}

// signedRequest builds a request signed with secret over a fresh challenge.
func (f *fixture) signedRequest(t *testing.T, secret []byte, method, path string, body []byte) *http.Request {
	t.Helper()
	ch := f.srv.ch.issue()
	req, err := http.NewRequest(method, f.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(hdrChallenge, ch)
	req.Header.Set(hdrSignature, hex.EncodeToString(requestMAC(secret, clientNames.Self, clientNames.Peer, method, path, ch, body)))
	return req
}

// answer is a raw HTTP answer, for the tests that look below the client.
type answer struct {
	code int
	hdr  http.Header
	body []byte
	err  string
}

func send(t *testing.T, req *http.Request) answer {
	t.Helper()
	// Bodies are replayable: clone so the same request can go out twice.
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	r2 := req.Clone(context.Background())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(r2)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e errorReply
	_ = json.Unmarshal(b, &e)
	return answer{code: resp.StatusCode, hdr: resp.Header, body: b, err: e.Error}
}

// isSigned reports whether an answer carries a valid response signature
// for the request's challenge, and a next challenge.
func isSigned(a answer, challenge string) bool {
	return macMatches(a.hdr.Get(hdrRespSignature), responseMAC(testSecret, serverNames.Self, serverNames.Peer, challenge, a.body)) &&
		wellFormedChallenge(a.hdr.Get(hdrNextChallenge))
}

func nopBody(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// The pair the tests play: the client is node a, the server node b.
var (
	clientNames = Names{Self: "a", Peer: "b"}
	serverNames = Names{Self: "b", Peer: "a"}
)
