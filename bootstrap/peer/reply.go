package peer

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// writeSigned answers an authenticated request: the body is signed with the
// request's challenge, from this node to its peer (as the request was
// signed: legacy for an agent of before names were bound), and a fresh
// challenge rides along for the next call.
func (s *server) writeSigned(w http.ResponseWriter, challenge string, legacy bool, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set(hdrNextChallenge, s.ch.issue())
	sig := responseMAC(s.secret, s.names.Self, s.names.Peer, challenge, b)
	if legacy {
		sig = legacyResponseMAC(s.secret, challenge, b)
	}
	h.Set(hdrRespSignature, hex.EncodeToString(sig))
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b)
}

// writeJSON answers without a signature (the challenge endpoint and
// refusals before authentication).
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v) // only our own plain structs: cannot fail
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// throttle lets one log line through per period and counts the rest, so a
// misconfigured peer probing every second, or a scanner, cannot flood the log.
type throttle struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (t *throttle) allow(now time.Time) (suppressed int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		t.suppressed++
		return 0, false
	}
	n := t.suppressed
	t.last, t.suppressed = now, 0
	return n, true
}
