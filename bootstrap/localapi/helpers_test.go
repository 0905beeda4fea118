package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeHandler struct {
	mu     sync.Mutex
	report StatusReport
	pauses []time.Duration
	forced []bool
	err    error
	block  chan struct{} // when set, Switchover waits for it or ctx
}

func (h *fakeHandler) Status(context.Context) StatusReport { return h.report }

func (h *fakeHandler) Pause(_ context.Context, d time.Duration) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pauses = append(h.pauses, d)
	return "paused on a and b until 14:03:05 UTC", h.err
}

func (h *fakeHandler) Resume(context.Context) (string, error) { return "resumed on a and b", h.err }

func (h *fakeHandler) Promote(_ context.Context, force bool) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forced = append(h.forced, force)
	if h.err != nil {
		return "", h.err
	}
	return "a is the leader (term 8)", nil
}

func (h *fakeHandler) Switchover(ctx context.Context) (string, error) {
	if h.block != nil {
		select {
		case <-h.block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return "b is the leader (term 9)", h.err
}

// serve runs the local API on a socket in a temporary directory.
func serve(t *testing.T, h Handler) (sock string, c *Client) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "run", "agent.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(NewServer(h, nil))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return sock, NewClient(sock)
}

// rawDo sends a request over the socket, for what the typed client never sends.
func rawDo(t *testing.T, sock, method, path, body string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, _ := http.NewRequestWithContext(t.Context(), method, "http://twonode"+path, strings.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e errorReply
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, e.Error
}
