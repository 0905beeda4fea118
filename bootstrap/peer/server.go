package peer

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/httpserver"
)

type server struct {
	secret []byte
	names  Names
	setup  error // names missing or alike: every request is refused
	h      Handler
	log    *slog.Logger
	// ch holds the challenges issued to anyone; peerCh those issued to
	// requests from the peer's address, so that a flood of unauthenticated
	// requests from the LAN fills ch and never evicts the peer's.
	ch     *challenges
	peerCh *challenges
	peer   netip.Addr // the zero Addr: no reserved store
	limits *sourceLimits
	warn   throttle
	// legacyWarn: a peer of an older version is reported, not once a tick.
	legacyWarn throttle
}

var routes = map[string]httpserver.Route[*server]{
	"/v1/status":   httpserver.On(http.MethodGet, statusDeadline, (*server).status),
	"/v1/pause":    httpserver.On(http.MethodPost, commandDeadline, (*server).pause),
	"/v1/resume":   httpserver.On(http.MethodPost, commandDeadline, (*server).resume),
	"/v1/handover": httpserver.On(http.MethodPost, handoverDeadline, (*server).handover),
	"/v1/follow":   httpserver.On(http.MethodPost, commandDeadline, (*server).follow),
}

// NewServer serves GET /v1/challenge (open) and, authenticated with secret,
// GET /v1/status, POST /v1/pause, /v1/resume, /v1/handover and /v1/follow. Run it in an
// http.Server with timeouts, such as NewHTTPServer's. names are this node's
// and its peer's: only a request the peer signed for this node is served.
//
// peer is the peer's address: challenges fetched from it are kept apart
// from everyone else's (the zero Addr keeps them all together).
func NewServer(secret []byte, names Names, h Handler, log *slog.Logger, peer netip.Addr) http.Handler {
	s := newServer(secret, names, h, log, time.Now)
	s.peer = peer.Unmap()
	return s
}

// newServer takes the clock that times challenges: tests inject one.
func newServer(secret []byte, names Names, h Handler, log *slog.Logger, now func() time.Time) *server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &server{
		names:      names,
		setup:      names.check(),
		secret:     append([]byte(nil), secret...), // the caller may wipe or reuse its slice
		h:          h,
		log:        log,
		ch:         newChallenges(now),
		peerCh:     newChallenges(now),
		limits:     newSourceLimits(now),
		warn:       throttle{every: 30 * time.Second},
		legacyWarn: throttle{every: 10 * time.Minute},
	}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if src := sourceAddr(r.RemoteAddr); !s.fromPeer(src) && !s.limits.allow(src) {
		s.denied(r, "too many requests from one source")
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, errorReply{"too many requests"})
		return
	}
	if r.URL.Path == "/v1/challenge" {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeJSON(w, http.StatusMethodNotAllowed, errorReply{"use GET"})
			return
		}
		writeJSON(w, http.StatusOK, challengeReply{Challenge: s.challengesFor(r).issue()})
		return
	}
	rt, ok := httpserver.Find(routes, w, r, func(code int, msg string) { writeJSON(w, code, errorReply{msg}) })
	if !ok {
		return
	}
	challenge, sig := r.Header.Get(hdrChallenge), r.Header.Get(hdrSignature)
	if challenge == "" || sig == "" {
		s.denied(r, "missing signature")
		writeJSON(w, http.StatusUnauthorized, errorReply{"missing signature: " + hdrChallenge + " and " + hdrSignature + " are required"})
		return
	}
	if !wellFormedChallenge(challenge) {
		s.denied(r, "malformed challenge")
		writeJSON(w, http.StatusUnauthorized, errorReply{"malformed challenge"})
		return
	}
	body, status, msg := readBody(w, r)
	if status != 0 {
		writeJSON(w, status, errorReply{msg})
		return
	}
	if len(s.secret) == 0 {
		s.log.Error("peer API: no cluster secret configured; refusing every request")
		writeJSON(w, http.StatusInternalServerError, errorReply{"no cluster secret configured"})
		return
	}
	if s.setup != nil {
		s.log.Error("peer API: refusing every request", "err", s.setup)
		writeJSON(w, http.StatusInternalServerError, errorReply{"node names not configured"})
		return
	}
	legacy := false
	if !macMatches(sig, requestMAC(s.secret, s.names.Peer, s.names.Self, r.Method, r.URL.Path, challenge, body)) {
		legacy = macMatches(sig, legacyRequestMAC(s.secret, r.Method, r.URL.Path, challenge, body))
		if !legacy {
			// Most likely the two nodes have different secrets (or it is
			// this node's own request, reflected): say so loudly, but not
			// once per probe.
			s.denied(r, "invalid signature (is the cluster secret the same on both nodes, and is each node's peer.name the other's node.name?)")
			writeJSON(w, http.StatusUnauthorized, errorReply{"invalid signature"})
			return
		}
		if n, ok := s.legacyWarn.allow(time.Now()); ok {
			s.log.Warn("peer API: the peer's agent signs without naming the nodes (a version before December 2026): upgrade it", "similar_suppressed", n)
		}
	}
	// Only a correctly signed request uses up its challenge, so that
	// someone who saw a challenge go by cannot burn it with garbage.
	if !s.peerCh.consume(challenge) && !s.ch.consume(challenge) {
		s.log.Debug("peer API: stale or replayed request", "remote", r.RemoteAddr, "path", r.URL.Path)
		writeJSON(w, http.StatusUnauthorized, errorReply{msgStale})
		return
	}

	// Authenticated: every answer from here on is signed.
	code, v := rt.Run(s, r.Context(), body)
	s.writeSigned(w, challenge, legacy, code, v)
}

// challengesFor is the store of the request's source.
func (s *server) challengesFor(r *http.Request) *challenges {
	if s.fromPeer(sourceAddr(r.RemoteAddr)) {
		return s.peerCh
	}
	return s.ch
}

// fromPeer: src is the peer's configured address.
func (s *server) fromPeer(src netip.Addr) bool { return s.peer.IsValid() && src == s.peer }

// sourceAddr is the IP of a "host:port" remote address (the zero Addr if
// it is not one).
func sourceAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// readBody reads at most MaxBodyBytes; status is 0 on success.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, string) {
	if r.Body == nil {
		return nil, 0, ""
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, http.StatusRequestEntityTooLarge, "request body over 64 KiB"
	case err != nil:
		return nil, http.StatusBadRequest, "reading the request body failed"
	}
	return body, 0, ""
}

func (s *server) denied(r *http.Request, why string) {
	if n, ok := s.warn.allow(time.Now()); ok {
		s.log.Warn("peer API: request rejected", "reason", why, "remote", r.RemoteAddr, "path", r.URL.Path, "similar_suppressed", n)
	}
}
