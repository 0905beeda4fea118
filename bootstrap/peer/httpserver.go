package peer

import (
	"log/slog"
	"net/http"
	"time"
)

// NewHTTPServer wraps h in an http.Server whose timeouts keep a slow or
// malicious client from holding connections: the port is on the node
// network, reachable by more than the peer. The write timeout leaves room
// for a handover.
func NewHTTPServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      handoverDeadline + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	if log != nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	}
	return srv
}
