package httpserver

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A request with headers over the shared limit is refused before the
// handler runs; Serve is quiet about a shutdown and logs any other stop.
func TestLimitsAndServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	srv := New(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }), time.Second, nil)
	done := make(chan struct{})
	go func() { Serve(log, "test API", srv, ln); close(done) }()

	url := "http://" + ln.Addr().String() + "/"
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2*MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers of %d bytes: status %d, want 431", 2*MaxHeaderBytes, resp.StatusCode)
	}
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a plain request: status %d", resp.StatusCode)
	}

	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	if logged.Len() != 0 {
		t.Errorf("a shutdown was logged: %s", logged.String())
	}

	// A listener that fails is not a shutdown.
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	ln2.Close()
	Serve(log, "test API", New(http.NotFoundHandler(), time.Second, nil), ln2)
	if !strings.Contains(logged.String(), "test API stopped") {
		t.Errorf("a failed listener was not logged: %q", logged.String())
	}
}
