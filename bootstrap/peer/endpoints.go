package peer

import (
	"context"
	"errors"
	"net/http"
	"time"
)

func (s *server) status(ctx context.Context, _ []byte) (int, any) {
	st := s.h.Status(ctx)
	if st.Now == 0 {
		// The agent fills Now from its own clock (which may carry a test
		// offset); this is only a fallback so the peer never reads 1970.
		st.Now = time.Now().UnixNano()
	}
	return http.StatusOK, st
}

func (s *server) pause(ctx context.Context, body []byte) (int, any) {
	r, err := decodePause(body)
	if err != nil {
		return http.StatusBadRequest, errorReply{err.Error()}
	}
	s.log.Info("peer asks to pause failover", "by", r.By, "for", time.Duration(r.For))
	if err := s.h.Pause(ctx, r); err != nil {
		return s.failed("pause", err)
	}
	return http.StatusOK, okReply{OK: true}
}

func (s *server) resume(ctx context.Context, body []byte) (int, any) {
	r, err := decodeResume(body)
	if err != nil {
		return http.StatusBadRequest, errorReply{err.Error()}
	}
	s.log.Info("peer asks to resume failover", "by", r.By)
	if err := s.h.Resume(ctx, r); err != nil {
		return s.failed("resume", err)
	}
	return http.StatusOK, okReply{OK: true}
}

func (s *server) handover(ctx context.Context, body []byte) (int, any) {
	r, err := decodeHandover(body)
	if err != nil {
		return http.StatusBadRequest, errorReply{err.Error()}
	}
	s.log.Info("peer hands over leadership", "by", r.By, "term", r.Term, "lsn", r.LSN)
	resp, err := s.h.Handover(ctx, r)
	if err != nil {
		return s.failed("handover", err)
	}
	return http.StatusOK, resp
}

func (s *server) follow(ctx context.Context, body []byte) (int, any) {
	r, err := decodeFollow(body)
	if err != nil {
		return http.StatusBadRequest, errorReply{err.Error()}
	}
	s.log.Info("peer follows this node's term", "by", r.By, "term", r.Term)
	if err := s.h.Follow(ctx, r); err != nil {
		return s.failed("follow", err)
	}
	return http.StatusOK, okReply{OK: true}
}

// failed maps a handler error: a refusal of state is 409, anything else 500.
// The message goes to the peer, which is authenticated and logs it.
func (s *server) failed(what string, err error) (int, any) {
	code := http.StatusInternalServerError
	if errors.Is(err, ErrConflict) {
		code = http.StatusConflict
	}
	s.log.Warn("peer API: "+what+" failed", "status", code, "err", err)
	return code, errorReply{err.Error()}
}
