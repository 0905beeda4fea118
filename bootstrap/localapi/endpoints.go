package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/peer"
)

func (s *server) status(ctx context.Context, _ []byte) (int, any) {
	r := s.h.Status(ctx)
	r.KineEndpoint = hostOnly(r.KineEndpoint)
	if r.Archives == nil {
		r.Archives = []Archive{} // "archives": [] reads better than null to scripts
	}
	return http.StatusOK, r
}

func (s *server) pause(ctx context.Context, body []byte) (int, any) {
	var req pauseRequest
	if err := decode(body, &req); err != nil {
		return http.StatusBadRequest, errorReply{err.Error()}
	}
	d, err := parsePause(req.For)
	if err != nil {
		return http.StatusBadRequest, errorReply{err.Error()}
	}
	s.log.Info("operator: pause failover", "for", d)
	return s.message("pause", func() (string, error) { return s.h.Pause(ctx, d) })
}

func (s *server) resume(ctx context.Context, body []byte) (int, any) {
	if err := decode(body, &emptyRequest{}); err != nil {
		return http.StatusBadRequest, errorReply{err.Error()}
	}
	s.log.Info("operator: resume failover")
	return s.message("resume", func() (string, error) { return s.h.Resume(ctx) })
}

func (s *server) promote(ctx context.Context, body []byte) (int, any) {
	var req promoteRequest
	if err := decode(body, &req); err != nil {
		return http.StatusBadRequest, errorReply{err.Error()}
	}
	s.log.Info("operator: promote", "force", req.Force)
	return s.message("promote", func() (string, error) { return s.h.Promote(ctx, req.Force) })
}

func (s *server) switchover(ctx context.Context, body []byte) (int, any) {
	if err := decode(body, &emptyRequest{}); err != nil {
		return http.StatusBadRequest, errorReply{err.Error()}
	}
	s.log.Info("operator: switchover")
	return s.message("switchover", func() (string, error) { return s.h.Switchover(ctx) })
}

func (s *server) message(what string, f func() (string, error)) (int, any) {
	msg, err := f()
	if errors.Is(err, ErrPartial) {
		return http.StatusOK, messageReply{Message: msg, Partial: true}
	}
	if err != nil {
		return s.failed(what, err)
	}
	return http.StatusOK, messageReply{Message: msg}
}

// parsePause accepts a Go duration up to the peer API's limit (a pause
// applies to both nodes, and the peer refuses longer ones); 0 asks for the
// agent's configured pause_expiry, which is what `twonode pause` sends
// without --for.
func parsePause(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New(`"for" is required, e.g. {"for":"1h"}`)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf(`"for": %w`, err)
	}
	if d < 0 || d > peer.MaxPause {
		return 0, fmt.Errorf(`"for": %s is outside [0, %s] (0: the configured pause_expiry)`, d, peer.MaxPause)
	}
	return d, nil
}

// decode reads one JSON object strictly; an empty body is an empty object,
// so `curl -X POST` works for the commands without options.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed request: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed request: trailing data after the JSON object")
	}
	return nil
}

// hostOnly keeps credentials out of the status even if a handler passed a
// whole DSN: status output ends up in tickets and chat.
func hostOnly(s string) string {
	if strings.Contains(s, "://") {
		if u, err := url.Parse(s); err == nil {
			return u.Hostname()
		}
		return "(unparseable endpoint hidden)"
	}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		return s[i+1:]
	}
	return s
}
