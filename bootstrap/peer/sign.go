package peer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

const (
	hdrChallenge     = "X-Twonode-Challenge"
	hdrSignature     = "X-Twonode-Signature"
	hdrNextChallenge = "X-Twonode-Next-Challenge"
	hdrRespSignature = "X-Twonode-Response-Signature"
)

const challengeBytes = 32

// newChallenge returns 32 random bytes as lower-case hex. crypto/rand does
// not fail on supported platforms (it aborts the process instead).
func newChallenge() string {
	b := make([]byte, challengeBytes)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// wellFormedChallenge rejects anything that cannot be one of ours before it
// reaches the map, so garbage headers cost nothing.
func wellFormedChallenge(s string) bool {
	if len(s) != 2*challengeBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func bodyHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Names are the two ends of the pair as this end sees them: every MAC
// binds who sends and who receives, so that a message signed for the peer
// cannot be reflected back to its sender (both hold the one secret), nor
// one end's answer passed off as the other's.
type Names struct {
	Self, Peer string
}

// check: both named, and different (config.Validate already insists; the
// package does not trust its callers to have asked it).
func (n Names) check() error {
	switch {
	case n.Self == "" || n.Peer == "":
		return errors.New("peer API: both node names are required")
	case n.Self == n.Peer:
		return fmt.Errorf("peer API: this node and its peer are both named %q", n.Self)
	case strings.ContainsAny(n.Self+n.Peer, "\n"):
		return errors.New("peer API: a node name contains a newline")
	}
	return nil
}

// requestMAC signs a request from one node to the other: method, path,
// challenge and body, and both names (names cannot hold the newline that
// separates the fields).
func requestMAC(secret []byte, from, to, method, path, challenge string, body []byte) []byte {
	return mac(secret, "req2", from, to, method, path, challenge, bodyHash(body))
}

// responseMAC signs the answer to a request made over challenge.
func responseMAC(secret []byte, from, to, challenge string, body []byte) []byte {
	return mac(secret, "resp2", from, to, challenge, bodyHash(body))
}

// legacyRequestMAC and legacyResponseMAC are the MACs of agents before
// names were bound (2026-12). A server checks a request that fails the
// bound MAC against this one, and answers it in kind, so that a pair
// upgraded one node at a time keeps talking. This version signs no request
// this way, so none of its requests can be reflected through it; its
// answers are signed so only for an old peer's requests, so only while an
// old agent runs could one of them pass for the peer's (and a status would
// still be caught by its name: Client.Status). Remove once no agent of
// before December 2026 runs.
func legacyRequestMAC(secret []byte, method, path, challenge string, body []byte) []byte {
	return mac(secret, "req", method, path, challenge, bodyHash(body))
}

func legacyResponseMAC(secret []byte, challenge string, body []byte) []byte {
	return mac(secret, "resp", challenge, bodyHash(body))
}

func mac(secret []byte, fields ...string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strings.Join(fields, "\n")))
	return m.Sum(nil)
}

// macMatches compares a hex signature header with the expected MAC in
// constant time (hmac.Equal), so timing reveals nothing about the MAC.
func macMatches(header string, want []byte) bool {
	got, err := hex.DecodeString(header)
	if err != nil || len(got) != len(want) {
		return false
	}
	return hmac.Equal(got, want)
}
