// Package httpserver builds the agent's HTTP servers (the peer API, the
// local API, the metrics) in one place, so that they share one set of
// limits: a slow or malicious client cannot hold a connection open by
// trickling its headers or body, nor send large headers. Each server says
// only how long its slowest answer may take.
//
// TLS is not here: where a server needs it (the peer API, with client
// certificates), its listener carries it (tls.NewListener), so that a
// connection limit in front can close a connection before it costs a
// handshake. Likewise the local API's unix socket is its listener's.
package httpserver

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// The limits every server of the agent shares.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 16 << 10
)

// New wraps h in an http.Server with the shared limits; writeTimeout is
// how long the slowest answer may take. log, when not nil, receives the
// server's own complaints (a failed handshake, a bad request) at debug
// level: on a port others can reach they are noise, not news.
func New(h http.Handler, writeTimeout time.Duration, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
	if log != nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	}
	return srv
}

// Serve serves srv on ln until it is shut down, and logs why it stopped
// when that was not a shutdown.
func Serve(log *slog.Logger, what string, srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error(what+" stopped", "err", err)
	}
}
