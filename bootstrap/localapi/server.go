package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/httpserver"
)

type server struct {
	h   Handler
	log *slog.Logger
}

var routes = map[string]httpserver.Route[*server]{
	"/v1/status":     httpserver.On(http.MethodGet, serverTimeout, (*server).status),
	"/v1/pause":      httpserver.On(http.MethodPost, serverTimeout, (*server).pause),
	"/v1/resume":     httpserver.On(http.MethodPost, serverTimeout, (*server).resume),
	"/v1/promote":    httpserver.On(http.MethodPost, serverLongTimeout, (*server).promote),
	"/v1/switchover": httpserver.On(http.MethodPost, serverLongTimeout, (*server).switchover),
}

// NewServer serves the local API: GET /v1/status, POST
// /v1/pause {"for":"1h"}, /v1/resume, /v1/promote {"force":bool},
// /v1/switchover. Refusals are {"error":"..."} with a 4xx or 5xx status.
func NewServer(h Handler, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &server{h: h, log: log}
}

// NewHTTPServer wraps h in the agent's http.Server (package httpserver's
// limits) with a write timeout that leaves room for the slowest command (a
// switchover).
func NewHTTPServer(h http.Handler) *http.Server {
	return httpserver.New(h, serverLongTimeout+10*time.Second, nil)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := httpserver.Find(routes, w, r, func(code int, msg string) { writeJSON(w, code, errorReply{msg}) })
	if !ok {
		return
	}
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorReply{"request body over 64 KiB"})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorReply{"reading the request body failed"})
			return
		}
	}
	code, v := rt.Run(s, r.Context(), body)
	writeJSON(w, code, v)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// failed maps a handler's error to a status the CLI can explain.
func (s *server) failed(what string, err error) (int, any) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	s.log.Warn("operator "+what+" failed", "status", code, "err", err)
	return code, errorReply{err.Error()}
}
