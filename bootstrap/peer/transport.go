package peer

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/pki"
)

// reply is one raw answer and what its signature proved.
type reply struct {
	code     int
	body     []byte
	signed   bool // a response signature header was present
	verified bool // ... and it matched
}

// call runs one authenticated request within timeout, retrying once with a
// fresh challenge when the server found the first one stale (expired,
// evicted, or used by a concurrent call). The retry is safe for the POSTs
// too: a stale request is refused before the handler runs.
func (c *Client) call(ctx context.Context, timeout time.Duration, method, path string, in, out any) (sent, received time.Time, err error) {
	if c.baseErr != nil {
		return sent, received, c.baseErr
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body []byte
	if in != nil {
		if body, err = json.Marshal(in); err != nil {
			return sent, received, fmt.Errorf("peer %s: encoding request: %w", path, err)
		}
	}
	for attempt := 0; ; attempt++ {
		ch, err := c.challenge(ctx, attempt > 0)
		if err != nil {
			return sent, received, err
		}
		sent = c.Now()
		r, err := c.exchange(ctx, method, path, ch, body)
		received = c.Now()
		if err != nil {
			return sent, received, err
		}
		if attempt == 0 && isStale(r) {
			continue
		}
		return sent, received, r.decode(path, out)
	}
}

func isStale(r reply) bool {
	var e errorReply
	return r.code == http.StatusUnauthorized && !r.signed && json.Unmarshal(r.body, &e) == nil && e.Error == msgStale
}

// exchange sends one signed request and checks the answer's signature.
func (c *Client) exchange(ctx context.Context, method, path, ch string, body []byte) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return reply{}, fmt.Errorf("peer %s: %w", path, err)
	}
	req.Header.Set(hdrChallenge, ch)
	req.Header.Set(hdrSignature, hex.EncodeToString(requestMAC(c.secret, c.names.Self, c.names.Peer, method, req.URL.Path, ch, body)))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("peer %s: %w", path, pki.Explain(err))
	}
	defer resp.Body.Close()
	b, err := readLimited(resp.Body, maxReply)
	if err != nil {
		return reply{}, fmt.Errorf("peer %s: reading answer: %w", path, err)
	}
	r := reply{code: resp.StatusCode, body: b}
	if sig := resp.Header.Get(hdrRespSignature); sig != "" {
		r.signed = true
		// Signed by the peer for this node; or the old way, by a peer not
		// yet upgraded (legacyResponseMAC). This version signs the old way
		// only its answers to such a peer's requests, so while no old
		// agent runs no answer of this node's own can pass as the peer's.
		r.verified = macMatches(sig, responseMAC(c.secret, c.names.Peer, c.names.Self, ch, b)) ||
			macMatches(sig, legacyResponseMAC(c.secret, ch, b))
	}
	if next := resp.Header.Get(hdrNextChallenge); r.verified && wellFormedChallenge(next) {
		c.keep(next)
	}
	return r, nil
}

// decode turns an answer into out or an error. Only a verified body is
// believed, and a body that says "error" is an error whatever the status
// code says, since the signature does not cover the status code.
func (r reply) decode(path string, out any) error {
	if !r.verified {
		if r.signed || r.code/100 == 2 {
			what := "missing"
			if r.signed {
				what = "wrong"
			}
			return fmt.Errorf("peer %s: HTTP %d with a %s signature: %w (an impostor, or the nodes' cluster secrets differ)", path, r.code, what, ErrForged)
		}
		var e errorReply
		_ = json.Unmarshal(r.body, &e)
		return fmt.Errorf("peer %s: %w", path, &Error{Code: r.code, Message: truncate(e.Error, 200), Verified: false})
	}
	var e errorReply
	if err := json.Unmarshal(r.body, &e); err != nil {
		return fmt.Errorf("peer %s: malformed answer: %w", path, err)
	}
	if e.Error != "" || r.code/100 != 2 {
		return fmt.Errorf("peer %s: %w", path, &Error{Code: r.code, Message: e.Error, Verified: true})
	}
	if out == nil {
		return nil
	}
	// Lenient on purpose: a newer peer may add fields.
	if err := json.Unmarshal(r.body, out); err != nil {
		return fmt.Errorf("peer %s: malformed answer: %w", path, err)
	}
	return nil
}

// challenge returns the cached challenge when fresh enough, else fetches
// one (always when fresh is set: the retry after a stale one).
func (c *Client) challenge(ctx context.Context, fresh bool) (string, error) {
	c.mu.Lock()
	ch, at := c.cached, c.cachedAt
	c.cached = ""
	c.mu.Unlock()
	if !fresh && ch != "" && time.Since(at) < cacheFor {
		return ch, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/challenge", nil)
	if err != nil {
		return "", fmt.Errorf("peer challenge: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("peer challenge: %w", pki.Explain(err))
	}
	defer resp.Body.Close()
	b, err := readLimited(resp.Body, 4<<10)
	if err != nil {
		return "", fmt.Errorf("peer challenge: %w", err)
	}
	var cr challengeReply
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &cr) != nil || !wellFormedChallenge(cr.Challenge) {
		return "", fmt.Errorf("peer challenge: unexpected answer (HTTP %d): %q", resp.StatusCode, truncate(string(b), 200))
	}
	return cr.Challenge, nil
}

// keep caches the challenge an answer carried, for the next call.
func (c *Client) keep(ch string) {
	c.mu.Lock()
	c.cached, c.cachedAt = ch, time.Now()
	c.mu.Unlock()
}

func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errors.New("answer too large")
	}
	return b, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
